"""Entity revisions and energy-gated expansion mid-run: events, replay, re-run, the objective."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    Candidate,
    ExpansionConfig,
    GateBenefitCoupling,
    HomotopyConfig,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    SmallGainWeighting,
    StabilityConfig,
    System,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import compile_system, energy, first_difference, relax, replay, rerun


def _events(store, run_id, *types):
    return [r.event for r in store.read(run_id, types=list(types))]


def _lonely(gamma: float = 0.0) -> System:
    return System(id="base", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.7)], complexity_cost=gamma)


NEWCOMER = Candidate(module=LandauModule(id="n", a=-1.0, b=1.0, eta0=0.5))


@pytest.mark.parametrize(("tau", "admitted"), [(0.14, True), (0.16, False)])
def test_expansion_admits_exactly_when_delta_f_is_below_minus_tau(tau, admitted):
    # The newcomer's well bottoms out at −a²/4b = −0.25; with γ = 0.1 its ΔF is about −0.15.
    store = InMemoryStore()
    cfg = RelaxConfig(steps=3, tol=0.0, expansion=ExpansionConfig(every=2, tau=tau, local_steps=200, candidates=(NEWCOMER,)))
    r = relax(_lonely(0.1), cfg, store=store)
    added, refused = _events(store, r.run_id, "ModuleAdded"), _events(store, r.run_id, "ExpansionRejected")
    delta_f = (added or refused)[0].delta_f
    assert delta_f == pytest.approx(-0.15, abs=1e-6)
    assert (len(added), len(refused)) == ((1, 0) if admitted else (0, 1))
    assert (delta_f < -tau) is admitted
    assert r.ids == (("m", "n") if admitted else ("m",))


def test_a_candidates_local_relaxation_runs_to_convergence_by_default():
    # A gate pulled by Δ = 0.01 settles where 2aη + 4bη³ = Δ (η* ≈ 0.05); from its measured η₀ ≈ 0.52 at step
    # 0.1 that takes hundreds of steps, so the old 50-step budget left ΔF_new positive (+1.7e-3), refusing a
    # candidate whose converged ΔF is −Δ²/4a ≈ −2.5e-4. The default now stops on the projected gradient instead.
    from complexity_from_constraints.entities import GateModule

    gate = GateModule(id="g", gain=0.01, cost=0.0, k=10.0, a=0.1, b=0.1)
    offer = Candidate(module=gate, couplings=(GateBenefitCoupling(id="pull", i="g", j="m", delta=0.01),))
    base = _lonely()
    eta = np.roots([4 * gate.b, 0.0, 2 * gate.a, -0.01]).real.max()  # the one real root of 4bη³ + 2aη − Δ
    best = gate.a * eta**2 + gate.b * eta**4 - 0.01 * eta

    def delta_f(expansion):
        store = InMemoryStore()
        r = relax(base, RelaxConfig(steps=2, tol=0.0, expansion=expansion), store=store)
        return (_events(store, r.run_id, "ModuleAdded") + _events(store, r.run_id, "ExpansionRejected"))[0].delta_f

    converged = delta_f(ExpansionConfig(every=1, candidates=(offer,)))
    assert converged == pytest.approx(best, abs=1e-12) and converged < 0
    assert delta_f(ExpansionConfig(every=1, local_steps=50, local_tol=0.0, candidates=(offer,))) > 1e-3
    capped = delta_f(ExpansionConfig(every=1, local_steps=300, candidates=(offer,)))
    assert best < capped < 0  # the cap binds first: not yet at the minimum


def test_module_added_records_the_true_energy_change():
    store = InMemoryStore()
    cfg = RelaxConfig(steps=4, tol=0.0, expansion=ExpansionConfig(every=2, local_steps=30, candidates=(NEWCOMER,)))
    r = relax(_lonely(0.05), cfg, store=store)
    (added,) = _events(store, r.run_id, "ModuleAdded")
    before = replay(store, r.run_id, 1)
    grown = System(id="base", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.7), NEWCOMER.module], complexity_cost=0.05)
    expected = energy(compile_system(grown), np.append(before.eta, added.eta)) - before.energy
    assert added.delta_f == pytest.approx(expected, rel=1e-12)


def test_replay_and_rerun_reproduce_added_modules(store):
    cand = Candidate(module=LandauModule(id="n", a=-0.8, b=1.0),
                     couplings=(QuadraticCoupling(id="mn", i="m", j="n", weight=0.5),))
    cfg = RelaxConfig(steps=12, tol=0.0, expansion=ExpansionConfig(every=5, candidates=(cand,)))
    r = relax(_lonely(), cfg, store=store, flush_every=3)
    assert r.ids == ("m", "n")
    assert replay(store, r.run_id, 4).ids == ("m",) and replay(store, r.run_id, 4).eta.size == 1
    at5 = replay(store, r.run_id, 5)
    assert at5.ids == ("m", "n") and at5.eta.size == 2
    assert replay(store, r.run_id).eta.tobytes() == r.eta.tobytes()
    assert first_difference(store, r.run_id, rerun(store, r.run_id).run_id) is None


def test_parent_is_the_module_whose_coupling_pays_most():
    base = System(id="b", modules=[LandauModule(id="m", a=-1.0, eta0=0.9), LandauModule(id="k", a=-1.0, eta0=0.1)])
    cand = Candidate(module=LandauModule(id="n", a=-1.0),
                     couplings=(QuadraticCoupling(id="kn", i="k", j="n", weight=0.1),))
    store = InMemoryStore()
    relax(base, RelaxConfig(steps=2, tol=0.0, expansion=ExpansionConfig(every=1, candidates=(cand,))), store=store)
    (added,) = _events(store, store.runs()[0].run_id, "ModuleAdded")
    assert added.parent_id is None  # a quadratic coupling costs energy: nobody pays
    from complexity_from_constraints.entities import GateModule

    gated = System(id="g", modules=[LandauModule(id="m", a=-1.0), GateModule(id="gate", gain=1.0)])
    cand = Candidate(module=LandauModule(id="n", a=-1.0),
                     couplings=(GateBenefitCoupling(id="pull", i="gate", j="n", delta=0.4),))
    relax(gated, RelaxConfig(steps=2, tol=0.0, expansion=ExpansionConfig(every=1, candidates=(cand,))), store=store)
    (added,) = _events(store, store.runs()[1].run_id, "ModuleAdded")
    assert added.parent_id == "gate"


def test_a_proposer_offers_candidates_from_the_live_state():
    seen = []

    def propose(step, ids, eta):
        seen.append((step, ids, float(eta[0])))
        return Candidate(module=LandauModule(id=f"p{step}", a=-1.0)) if step == 4 else None

    r = relax(_lonely(), RelaxConfig(steps=6, tol=0.0, expansion=ExpansionConfig(every=2)), proposer=propose)
    assert [s for s, _, _ in seen] == [2, 4, 6] and seen[2][1] == ("m", "p4")
    assert r.ids == ("m", "p4")


def test_invalid_candidates_fail_before_the_run_starts():
    bad = Candidate(module=LandauModule(id="n"), couplings=(QuadraticCoupling(id="x", i="n", j="ghost"),))
    store = InMemoryStore()
    with pytest.raises(InvalidEntityError, match="ghost"):
        relax(_lonely(), RelaxConfig(expansion=ExpansionConfig(candidates=(bad,))), store=store)
    assert store.runs() == []
    with pytest.raises(InvalidEntityError, match="expansion"):
        relax(_lonely(), RelaxConfig(), proposer=lambda step, ids, eta: None)


def test_a_revision_is_an_event_and_replay_shows_both_versions(store):
    system = System(id="pair", modules=[LandauModule(id="x", a=-2.0, eta0=0.95), LandauModule(id="y", a=1.0, eta0=0.05)],
                    couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=0.1)])
    cfg = RelaxConfig(steps=20, tol=0.0, revisions=(Revision(step=8, entity_id="xy", changes={"weight": 5.0}),))
    r = relax(system, cfg, store=store)
    (rev,) = _events(store, r.run_id, "EntityRevised")
    assert (rev.step, rev.entity_id, rev.version, rev.entity["weight"]) == (8, "xy", 2, 5.0)
    assert replay(store, r.run_id, 7).version_of("xy") is None
    assert replay(store, r.run_id, 8).version_of("xy") == 2 and replay(store, r.run_id, 8).revised["xy"]["weight"] == 5.0
    # the energy at step 7 is under the old objective; step 8's reference is re-evaluated under the new one
    steps = {s.step: s for s in _events(store, r.run_id, "StepCommitted")}
    revised = system.evolve(couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=5.0, version=2)])
    old_state = replay(store, r.run_id, 7).eta
    assert steps[7].energy == energy(compile_system(system), old_state)
    reference = energy(compile_system(revised), old_state)
    assert reference > steps[7].energy + 1.0  # the revision raised the objective at the same state...
    assert steps[8].accepted and steps[7].energy < steps[8].energy < reference  # ...and step 8 still descends it
    assert first_difference(store, r.run_id, rerun(store, r.run_id).run_id) is None


def test_revisions_are_validated():
    system = _lonely()
    with pytest.raises(InvalidEntityError, match="'b'"):
        relax(system, RelaxConfig(steps=5, tol=0.0, revisions=(Revision(step=2, entity_id="m", changes={"b": -1.0}),)))
    with pytest.raises(InvalidEntityError, match="changes.id"):
        Revision(step=2, entity_id="m", changes={"id": "other"})
    with pytest.raises(InvalidEntityError, match="no such entity"):
        relax(system, RelaxConfig(steps=5, tol=0.0, revisions=(Revision(step=2, entity_id="ghost", changes={"a": 1.0}),)))


def test_system_level_revision_changes_the_complexity_cost():
    store = InMemoryStore()
    cfg = RelaxConfig(steps=4, tol=0.0, revisions=(Revision(step=2, entity_id="base", changes={"complexity_cost": 1.0}),))
    r = relax(_lonely(), cfg, store=store)
    steps = {s.step: s.energy for s in _events(store, r.run_id, "StepCommitted")}
    assert steps[2] - steps[1] == pytest.approx(1.0, abs=0.05)


NOTHING = Candidate(module=LandauModule(id="nothing", a=0.5, b=1.0, eta0=0.0))  # F(0) = 0, no couplings: it adds exactly γ
SCALING_PIECES = {
    "small_gain": {"step_size": 0.02, "weighting": SmallGainWeighting(max_step_change=0.3)},
    "coupling_homotopy": {"homotopy": HomotopyConfig(steps=30, coupling_start=0.1)},
    "coupling_cap": {"stability": StabilityConfig(coupling_target=24.0)},
}


@pytest.mark.parametrize("gamma", [0.0, 0.01])
@pytest.mark.parametrize("piece", sorted(SCALING_PIECES))
def test_expansion_measures_delta_f_on_one_objective_whatever_scales_the_run(piece, gamma):
    # ΔF_new subtracted the scaled objective's energy from the extended System's unscaled one (−0.19 under a
    # small-gain weighting, +1.26 under a coupling homotopy, +2.52 under the coupling cap); a module that adds
    # nothing must cost exactly its complexity cost γ.
    system = standard_system(12, seed=3).evolve(complexity_cost=gamma)
    store = InMemoryStore()
    config = RelaxConfig(steps=12, **({"step_size": 0.1} | SCALING_PIECES[piece]),
                         expansion=ExpansionConfig(every=10, tau=0.0, candidates=(NOTHING,)))
    r = relax(system, config, seed=1, store=store)
    scaled = _events(store, r.run_id, "WeightsAdapted", "ObjectiveScaled", "CouplingsCapped")
    assert scaled and scaled[0].step < 10  # the piece did change the objective before the offer
    (offer,) = _events(store, r.run_id, "ModuleAdded", "ExpansionRejected")
    assert offer.delta_f == pytest.approx(gamma, abs=1e-12)
    assert offer.type == "ExpansionRejected"


def test_diagnostics_follow_a_system_that_grows():
    # The sensitivity window stacked states of different lengths once a module was added (a ValueError mid-run).
    from complexity_from_constraints.entities import DiagnosticsConfig

    store = InMemoryStore()
    helper = Candidate(module=LandauModule(id="helper", a=-1.0, b=1.0, eta0=0.3),
                       couplings=(QuadraticCoupling(id="qh", i="helper", j="m0", weight=0.5),))
    config = RelaxConfig(steps=20, step_size=0.1, diagnostics=DiagnosticsConfig(window=5),
                         expansion=ExpansionConfig(every=4, candidates=(helper,)))
    r = relax(standard_system(12, seed=3), config, seed=1, store=store)
    (added,) = _events(store, r.run_id, "ModuleAdded")
    assert r.status == "max_steps" and "helper" in r.ids
    after = [e for e in _events(store, r.run_id, "StepCommitted") if e.step > added.step and e.accepted]
    assert after and all(np.isfinite(e.diagnostics["dispersion"]) and 0 <= e.diagnostics["confidence"] <= 1 for e in after)
