"""Run diff: empty on itself, symmetric under mirror, exact about what changed, right about divergence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from complexity_from_constraints.entities import GateModule, LandauModule, QuadraticCoupling, RelaxConfig, System, UnknownRunError
from complexity_from_constraints.events import EtaRecorded, GateOpened, InMemoryStore, Recorded, RunFinished, RunStarted, StepCommitted
from complexity_from_constraints.projectors import RunDiff, diff_runs, package_version, relax, rerun


def with_weight(system: System, coupling_id: str, weight: float) -> System:
    couplings = [c.model_dump() | {"weight": weight} if c.id == coupling_id else c for c in system.couplings]
    return System(id=system.id, modules=system.modules, couplings=couplings)


def test_a_run_against_itself_and_its_rerun_is_empty(store, toy_system):
    a = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), store=store).run_id
    assert diff_runs(store, a, a).is_empty
    b = rerun(store, a).run_id
    d = diff_runs(store, a, b)
    assert d.is_empty and (d.run_a, d.run_b) == (a, b)
    assert d.energy and all(ea == eb for _, ea, eb in d.energy)
    assert json.loads(d.to_json())["is_empty"] is True


def test_one_coupling_weight_shows_up_as_exactly_that_field(store, toy_system):
    a = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), store=store).run_id
    b = relax(with_weight(toy_system, "ab", 0.9), RelaxConfig(steps=30, step_size=0.3), store=store).run_id
    d = diff_runs(store, a, b)
    assert d.entities == {"ab": {"weight": (0.7, 0.9)}}
    assert (d.config, d.system, d.seed, d.only_in_a, d.only_in_b) == ({}, {}, None, (), ())
    assert d.first_divergence == 1 and d.max_eta_gap > 0  # the coupling acts from the first step
    assert d.first_energy_difference == 0  # the initial energies already differ
    assert not d.is_empty


def test_config_seed_system_and_entity_changes_are_listed(store, toy_system):
    extra = System(id="toy2", modules=[*toy_system.modules, LandauModule(id="d")],
                   couplings=[c for c in toy_system.couplings if c.id != "bc"], family_weights={"landau": 2.0})
    a = relax(toy_system, RelaxConfig(steps=10), seed=1, store=store).run_id
    b = relax(extra, RelaxConfig(steps=12, line_search="armijo"), seed=2, store=store).run_id
    d = diff_runs(store, a, b)
    assert d.config == {"line_search": ("none", "armijo"), "steps": (10, 12)}
    assert d.seed == (1, 2)
    assert d.system == {"id": ("toy", "toy2"), "family_weights.landau": (None, 2.0)}
    assert (d.only_in_a, d.only_in_b, d.entities) == (("bc",), ("d",), {})
    assert d.energy[-1][0] == 12 and d.energy[-1][1] is None  # B ran longer: A has no energy there


@pytest.mark.parametrize("change", ["config", "seed", "weight", "module", "gate"])
def test_mirror_is_the_diff_the_other_way_round(store, toy_system, change):
    config_a, config_b, seed_b, system_b = RelaxConfig(steps=25, eta0="uniform"), None, 0, toy_system
    if change == "config":
        config_b = RelaxConfig(steps=40, step_size=0.2, eta0="uniform")
    elif change == "seed":
        seed_b = 5
    elif change == "weight":
        system_b = with_weight(toy_system, "benefit", 3.0)
    elif change == "module":
        system_b = System(id="other", modules=[*toy_system.modules[:3], GateModule(id="g2", gain=1.0)],
                          couplings=toy_system.couplings[:2])
    else:
        system_b = System(id="toy", modules=[m.evolve(threshold=0.01) if m.id == "gate" else m for m in toy_system.modules],
                          couplings=toy_system.couplings)
    a = relax(toy_system, config_a, store=store).run_id
    b = relax(system_b, config_b or config_a, seed=seed_b, store=store).run_id
    ab, ba = diff_runs(store, a, b), diff_runs(store, b, a)
    assert ab.mirror() == ba and ba.mirror() == ab
    assert not ab.is_empty and ab.as_dict()["run_a"] == a
    if change == "gate":
        assert ab.entities == {"gate": {"threshold": (0.5, 0.01), "version": (1, 2)}}
        assert ab.gates_only_in_a or ab.gates_only_in_b


def hand_built(store: InMemoryStore, run_id: str, frames: dict[int, list[float]], steps: int,
               gates: tuple[tuple[str, int], ...] = ()) -> None:
    """A run of two modules whose η frames (and gate openings) are written by hand."""
    system = System(id="hand", modules=[LandauModule(id="x"), LandauModule(id="y")])
    started = RunStarted(system=system, config=RelaxConfig(steps=steps), seed=0, package_version=package_version(),
                         system_digest=system.digest())
    events: list = [started]
    for step in range(steps + 1):
        events.append(StepCommitted(step=step, energy=float(-step), pg_norm=1.0, step_size=0.1, backtracks=0,
                                    accepted=step in frames, reason="initial" if step == 0 else
                                    "decrease" if step in frames else "energy_increase"))
        if step in frames:
            events.append(EtaRecorded(step=step, eta=np.array(frames[step])))
        events.extend(GateOpened(gate_id=g, step=s, eta=0.6) for g, s in gates if s == step)
    events.append(RunFinished(status="max_steps", steps=steps, final_energy=float(-steps), best_step=steps,
                              final_digest="-"))
    store.append(run_id, [Recorded(run_id, seq, ev) for seq, ev in enumerate(events)])


def test_first_divergence_on_a_hand_built_pair():
    store = InMemoryStore()
    # B rejects step 2 (keeps its step-1 state) and rejoins A at step 3; the energies are the same.
    hand_built(store, "a-1", {0: [0.1, 0.2], 1: [0.2, 0.3], 2: [0.3, 0.4], 3: [0.4, 0.5], 4: [0.5, 0.6]}, 4,
               gates=(("g", 1),))
    hand_built(store, "b-1", {0: [0.1, 0.2], 1: [0.2, 0.3], 3: [0.4, 0.5], 4: [0.5, 0.6]}, 4, gates=(("g", 3),))
    # C follows A exactly but for 1e-7 on y at step 4.
    hand_built(store, "c-1", {0: [0.1, 0.2], 1: [0.2, 0.3], 2: [0.3, 0.4], 3: [0.4, 0.5], 4: [0.5, 0.6 + 1e-7]}, 4,
               gates=(("g", 1),))
    d = diff_runs(store, "a-1", "b-1")
    assert d.first_divergence == 2 and d.max_eta_gap == pytest.approx(0.1)
    assert diff_runs(store, "a-1", "b-1", tol=0.2).first_divergence is None
    c = diff_runs(store, "a-1", "c-1")
    assert c.first_divergence == 4 and c.max_eta_gap == pytest.approx(1e-7) and c.gates_only_in_b == ()
    assert diff_runs(store, "a-1", "c-1", tol=1e-6).is_empty
    assert d.first_energy_difference is None and d.energy[2] == (2, -2.0, -2.0)
    assert (d.gates_only_in_a, d.gates_only_in_b) == ((("g", 1, "opened"),), (("g", 3, "opened"),))
    assert (d.config, d.system, d.entities) == ({}, {}, {})


def test_unknown_run_is_a_clear_error(store, toy_system):
    a = relax(toy_system, RelaxConfig(steps=3), store=store).run_id
    with pytest.raises(UnknownRunError, match="nope-1"):
        diff_runs(store, a, "nope-1")


def test_json_round_trips_every_field(store, toy_system):
    a = relax(toy_system, RelaxConfig(steps=10), store=store).run_id
    b = relax(with_weight(toy_system, "ab", 0.1), RelaxConfig(steps=10), seed=3, store=store).run_id
    data = json.loads(diff_runs(store, a, b).to_json())
    assert set(data) == {f for f in RunDiff.__dataclass_fields__} | {"is_empty"}
    assert data["entities"] == {"ab": {"weight": [0.7, 0.1]}} and data["seed"] == [0, 3]
    assert data["energy"][0][0] == 0 and len(data["energy"][0]) == 3
