"""Coordinate descent and the adaptive switch: the optimum, exact incremental gradients, the loop's contract."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    Candidate,
    CoordinateConfig,
    DirectedHingeCoupling,
    ExpansionConfig,
    FreeEnergyConfig,
    GateBenefitCoupling,
    GateModule,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    RelaxConfig,
    StabilityConfig,
    System,
    WarmStart,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import Objective, compile_system, energy, relax
from complexity_from_constraints.projectors._coordinate_descent import Incidence, coordinate_sweep


def _chain(n: int, seed: int) -> System:
    """A convex chain: Landau wells with a ≥ 0, quadratic agreement and a few directed hinges."""
    rng = np.random.default_rng(seed)
    modules = [LandauModule(id=f"m{k}", a=float(rng.uniform(0.0, 1.0)), b=float(rng.uniform(0.5, 1.5)),
                            h=float(rng.uniform(-1.0, 2.0)), eta0=float(rng.uniform())) for k in range(n)]
    couplings = [QuadraticCoupling(id=f"q{k}", i=f"m{k}", j=f"m{k + 1}", weight=float(rng.uniform(0.1, 2.0)))
                 for k in range(n - 1)]
    couplings += [DirectedHingeCoupling(id=f"h{k}", i=f"m{k}", j=f"m{(k * 7 + 3) % n}", weight=0.5)
                  for k in range(0, n, 5) if (k * 7 + 3) % n != k]
    return System(id=f"chain-{n}-{seed}", modules=modules, couplings=couplings)


def _steps(store, run_id):
    return [r.event for r in store.read(run_id, types=["StepCommitted"])]


def _close(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(b))


@pytest.mark.parametrize("system", [_chain(12, 0), _chain(40, 1), standard_system(30, 0), standard_system(120, 3)],
                         ids=lambda s: s.id)
def test_coordinate_descent_reaches_the_lbfgsb_energy(system):
    cd = relax(system, RelaxConfig(solver="coordinate", steps=400), seed=1)
    ref = relax(system, RelaxConfig(solver="lbfgsb", steps=400), seed=1)
    assert _close(cd.energy, ref.energy), (cd.energy, ref.energy)
    assert cd.energy == energy(compile_system(system), cd.eta)


def test_coordinate_descent_reaches_the_lbfgsb_free_energy():
    system = standard_system(40, seed=2)
    free = FreeEnergyConfig(temperature=0.05)
    finals = []
    for solver in ("coordinate", "lbfgsb"):
        store = InMemoryStore()
        r = relax(system, RelaxConfig(solver=solver, steps=300, free_energy=free), store=store)
        finals.append([s for s in _steps(store, r.run_id) if s.accepted][-1].diagnostics["free_energy"])
    assert _close(*finals)


@pytest.mark.parametrize("temperature", [None, 0.1])
def test_the_incremental_gradient_is_the_full_gradient(toy_system, temperature):
    for system in (toy_system, standard_system(300, seed=5)):
        objective = Objective(compile_system(system), temperature=temperature)
        eta = np.random.default_rng(0).uniform(0, 1, len(system.modules))
        ev = objective.evaluate(eta)
        incidence = Incidence.of(objective.cs)
        for updates in (1, 7, None):
            sweep = coordinate_sweep(objective, incidence, eta, ev.grad, CoordinateConfig(updates=updates))
            after = objective.evaluate(sweep.eta)
            assert sweep.changed > 0 and after.value < ev.value
            np.testing.assert_allclose(sweep.grad, after.grad, rtol=0, atol=1e-12)
            assert sweep.attempts <= (updates or len(system.modules))
        assert np.array_equal(objective.evaluate(eta).grad, ev.grad)  # the inputs were not touched


def test_accepted_energies_never_increase_and_the_best_state_is_returned():
    system = standard_system(80, seed=4)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(solver="coordinate", steps=60, eta0="uniform",
                                  coordinate=CoordinateConfig(updates=20)), seed=3, store=store)
    steps = _steps(store, r.run_id)
    accepted = [s.energy for s in steps if s.accepted]
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    assert all(s.energy <= p.energy for p, s in zip(steps, steps[1:]))
    assert r.energy == min(accepted) == energy(compile_system(system), r.eta)
    assert {s.reason for s in steps[1:]} <= {"coordinate", "energy_increase", "stalled", "no_coordinate_decrease"}
    assert all(0 < s.diagnostics["updates"] <= 20 for s in steps[1:] if s.reason == "coordinate")


def test_steps_stay_in_the_box_even_from_a_negative_curvature():
    # a < 0 and a tiny curvature floor: the Newton step overshoots far past the box and must be clipped.
    system = standard_system(60, seed=6)
    store = InMemoryStore()
    cfg = RelaxConfig(solver="coordinate", steps=40, eta0="uniform", coordinate=CoordinateConfig(curvature_floor=1e-6))
    r = relax(system, cfg, seed=2, store=store)
    frames = [rec.event.eta for rec in store.read(r.run_id, types=["EtaRecorded"])]
    assert len(frames) > 5
    assert all(f.min() >= 0.0 and f.max() <= 1.0 for f in frames)
    # fields that push past both ends: the optimum sits exactly on the bounds
    pushed = System(id="pushed", modules=[LandauModule(id=f"m{k}", a=-1.0, b=0.1, h=(2.0 if k % 2 else -2.0), eta0=0.5)
                                          for k in range(6)],
                    couplings=[QuadraticCoupling(id=f"q{k}", i=f"m{k}", j=f"m{k + 1}", weight=0.1) for k in range(5)])
    r = relax(pushed, cfg)
    assert set(r.eta.tolist()) == {0.0, 1.0}


def test_only_the_active_set_moves_while_the_mask_holds():
    system = standard_system(40, seed=7)
    active = tuple(f"m{k}" for k in range(0, 40, 3))
    eta0 = tuple(np.random.default_rng(1).uniform(0, 1, 40).tolist())
    ws = WarmStart(source="test", eta0=eta0, active=active, active_steps=5)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(solver="coordinate", steps=10, warm_start=ws), store=store)
    frames = {rec.event.step: rec.event.eta for rec in store.read(r.run_id, types=["EtaRecorded"])}
    frozen = np.array([m.id not in active for m in system.modules])
    for step in range(1, 6):
        if step in frames:
            assert np.array_equal(frames[step][frozen], np.array(eta0)[frozen])
    assert any(step in frames for step in range(1, 6))
    assert any(not np.array_equal(f[frozen], np.array(eta0)[frozen]) for s, f in frames.items() if s > 5)


def test_the_stability_cap_bounds_each_move():
    system = System(id="one", modules=[LandauModule(id="x", a=0.5, b=1.0, h=3.0, eta0=0.0)])
    objective = Objective(compile_system(system))
    eta = np.array([0.0])
    ev = objective.evaluate(eta)
    capped = coordinate_sweep(objective, Incidence.of(objective.cs), eta, ev.grad, CoordinateConfig(), step_cap=0.01)
    assert abs(capped.eta[0] - eta[0]) <= 0.01 * abs(ev.grad[0]) + 1e-15
    free = coordinate_sweep(objective, Incidence.of(objective.cs), eta, ev.grad, CoordinateConfig())
    assert free.eta[0] > capped.eta[0]
    # and through the loop: a guarded run still only accepts decreases and ends at the optimum
    r = relax(standard_system(30, 0), RelaxConfig(solver="coordinate", steps=300, stability=StabilityConfig()))
    ref = relax(standard_system(30, 0), RelaxConfig(solver="lbfgsb", steps=300))
    assert _close(r.energy, ref.energy)


@pytest.mark.parametrize("solver", ["coordinate", "adaptive"])
def test_same_seed_same_events(solver):
    system = standard_system(50, seed=0)
    cfg = RelaxConfig(solver=solver, steps=40, eta0="uniform")
    a, b = InMemoryStore(), InMemoryStore()
    ra, rb = relax(system, cfg, seed=1, store=a), relax(system, cfg, seed=1, store=b)
    assert [x.event for x in a.read(ra.run_id)] == [x.event for x in b.read(rb.run_id)]
    assert ra.eta.tobytes() == rb.eta.tobytes()


def test_adaptive_switches_when_the_gradient_stalls_and_reaches_the_same_optimum():
    system = standard_system(60, seed=1)
    store = InMemoryStore()
    cfg = RelaxConfig(solver="adaptive", steps=3000, eta0="uniform", coordinate=CoordinateConfig(switch_patience=3))
    r = relax(system, cfg, seed=1, store=store)
    log = [rec.event for rec in store.read(r.run_id)]
    switched = [e for e in log if e.type == "SolverSwitched"]
    assert switched and all(e.solver == "coordinate" and e.reason for e in switched)
    steps = {e.step: e for e in log if e.type == "StepCommitted"}
    for e in switched:
        assert steps[e.step].diagnostics["switched"] == 1.0
        assert steps[e.step].reason in ("coordinate", "energy_increase", "stalled")
        before = [x for x in log if getattr(x, "step", None) == e.step]
        assert before.index(e) < before.index(steps[e.step])  # the switch is announced before the step
    # patience 3: at least three accepted gradient steps separate two switches
    gaps = np.diff([e.step for e in switched])
    assert (gaps >= 4).all()
    accepted = [s.energy for s in steps.values() if s.accepted]
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    ref = relax(system, RelaxConfig(solver="lbfgsb", steps=500, eta0="uniform"), seed=1)
    assert _close(r.energy, ref.energy)
    plain = relax(system, RelaxConfig(steps=3000, eta0="uniform"), seed=1)
    assert r.energy <= plain.energy + 1e-12


def test_adaptive_never_switches_while_the_gradient_makes_progress():
    system = standard_system(30, seed=2)
    store = InMemoryStore()
    cfg = RelaxConfig(solver="adaptive", steps=20, step_size=0.2, coordinate=CoordinateConfig(switch_delta=1e-12))
    r = relax(system, cfg, store=store)
    assert not store.read(r.run_id, types=["SolverSwitched"])


def test_expansion_rebuilds_the_incidence():
    system = _chain(6, 3)
    newcomer = LandauModule(id="new", a=0.2, b=1.0, h=1.0, eta0=0.5)
    candidate = Candidate(module=newcomer, couplings=(QuadraticCoupling(id="qn", i="new", j="m0", weight=1.0),))
    cfg = RelaxConfig(solver="coordinate", steps=30, tol=0.0,
                      expansion=ExpansionConfig(every=3, tau=0.0, candidates=(candidate,)))
    store = InMemoryStore()
    r = relax(system, cfg, store=store)
    assert store.read(r.run_id, types=["ModuleAdded"]) and len(r.eta) == 7
    grown = system.evolve(modules=[*system.modules, newcomer], couplings=[*system.couplings, *candidate.couplings])
    ref = relax(grown, RelaxConfig(solver="lbfgsb", steps=300))
    assert _close(r.energy, ref.energy)


def test_gates_and_benefits_relax_with_coordinates(toy_system):
    cd = relax(toy_system, RelaxConfig(solver="coordinate", steps=300))
    ref = relax(toy_system, RelaxConfig(solver="lbfgsb", steps=300))
    assert _close(cd.energy, ref.energy) and cd.eta_of("gate") > 0.5


def test_a_system_without_couplings():
    system = System(id="wells", modules=[LandauModule(id=f"m{k}", a=-1.0, b=1.0, eta0=0.1 * k) for k in range(1, 6)])
    r = relax(system, RelaxConfig(solver="coordinate", steps=100))
    assert np.allclose(r.eta, np.sqrt(0.5), atol=1e-7)


@pytest.mark.parametrize("solver", ["coordinate", "adaptive"])
def test_non_numpy_backends_are_refused_clearly(solver, torch):

    with pytest.raises(InvalidEntityError, match="numpy backend only"):
        relax(standard_system(10, 0), RelaxConfig(solver=solver, backend="torch"))


def test_a_gate_pulled_open_by_its_benefit_converges_without_spinning():
    system = System(id="gated",
                    modules=[GateModule(id="g", a=0.1, b=0.1), LandauModule(id="d", a=0.3, b=1.0, eta0=0.2)],
                    couplings=[GateBenefitCoupling(id="b", i="g", j="d", delta=0.5)])
    r = relax(system, RelaxConfig(solver="coordinate", steps=1000))
    ref = relax(system, RelaxConfig(solver="lbfgsb", steps=1000))
    assert r.status in ("converged", "stalled") and r.steps < 1000
    assert _close(r.energy, ref.energy) and r.eta_of("g") > 0.5


def test_no_coordinate_can_decrease_inside_a_converged_active_set():
    # x sits on its bound with the field pushing outwards; only x may move for two steps.
    system = System(id="pair", modules=[LandauModule(id="x", a=0.1, b=1.0, h=6.0), LandauModule(id="y", a=0.1, b=1.0)])
    ws = WarmStart(source="test", eta0=(1.0, 0.9), active=("x",), active_steps=2)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(solver="coordinate", steps=20, min_step_size=0.0, warm_start=ws), store=store)
    steps = _steps(store, r.run_id)
    assert [(s.reason, s.accepted, s.step_size) for s in steps[1:3]] == [("no_coordinate_decrease", False, 0.0)] * 2
    assert steps[3].reason == "coordinate" and steps[3].accepted
    assert r.eta_of("x") == 1.0 and r.eta_of("y") < 0.1
