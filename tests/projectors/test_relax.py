"""The coordinator's contract: monotone accepted energies, the box, the best state, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import LandauModule, QuadraticCoupling, RelaxConfig, System, standard_system
from complexity_from_constraints.events import EtaRecorded, InMemoryStore, RunFinished, RunStarted, StepCommitted
from complexity_from_constraints.projectors import compile_system, energy, energy_and_gradient, hessian_diagonal, relax, state_digest


def _steps(store, run_id):
    return [r.event for r in store.read(run_id, types=["StepCommitted"])]


@pytest.mark.parametrize("line_search", ["none", "armijo"])
def test_accepted_energies_never_increase_and_eta_stays_in_the_box(line_search):
    store = InMemoryStore()
    system = standard_system(200, seed=1)
    r = relax(system, RelaxConfig(steps=150, step_size=0.3, line_search=line_search, eta0="uniform"), seed=5, store=store)
    steps = _steps(store, r.run_id)
    accepted = [s.energy for s in steps if s.accepted]
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    frames = [rec.event.eta for rec in store.read(r.run_id, types=["EtaRecorded"])]
    assert all(f.min() >= 0.0 and f.max() <= 1.0 for f in frames)
    assert accepted[-1] < accepted[0]


def test_a_rejected_proposal_is_never_kept_and_the_best_state_is_returned():
    # w = 10 and α = 1 overshoot wildly: the earlier system returned E = 12 from E0 = 2.81 here.
    system = System(id="stiff", modules=[LandauModule(id="x", a=0.1, b=0.1, eta0=0.9), LandauModule(id="y", a=0.1, b=0.1, eta0=0.1)],
                    couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=10.0)])
    store = InMemoryStore()
    r = relax(system, RelaxConfig(steps=30, step_size=1.0), store=store)
    steps = _steps(store, r.run_id)
    rejected = [s for s in steps if not s.accepted]
    assert rejected and all(s.reason == "energy_increase" and s.trial_energy > s.energy for s in rejected)
    # the step size halves after each rejection
    assert rejected[0].step_size == 1.0 and any(s.step_size == 0.5 for s in steps[1:])
    best = min(s.energy for s in steps if s.accepted)
    assert r.energy == best == energy(compile_system(system), r.eta)
    # a rejected step records no η frame: the state did not change
    frame_steps = {rec.event.step for rec in store.read(r.run_id, types=["EtaRecorded"])}
    assert not frame_steps & {s.step for s in rejected}


def test_armijo_never_takes_a_failed_step():
    system = standard_system(100, seed=2)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=60, step_size=50.0, line_search="armijo", max_backtracks=2, eta0="uniform")
    r = relax(system, cfg, store=store)
    steps = _steps(store, r.run_id)
    failed = [s for s in steps if s.reason == "armijo_failed"]
    assert failed, "the huge step should exhaust the backtracks at least once"
    assert all(not s.accepted for s in failed)
    energies = {s.step: s.energy for s in steps}
    for s in failed:
        assert energies[s.step] == energies[s.step - 1]  # the state stayed where it was
    assert all(s.backtracks <= 2 for s in steps)


def test_armijo_condition_holds_on_every_accepted_step():
    system = standard_system(100, seed=4)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=40, step_size=1.0, line_search="armijo", eta0="uniform")
    r = relax(system, cfg, store=store)
    cs = compile_system(system)
    frames = {rec.event.step: rec.event.eta for rec in store.read(r.run_id, types=["EtaRecorded"])}
    prev = frames[0]
    for s in _steps(store, r.run_id)[1:]:
        if s.accepted:
            e0, g0 = energy_and_gradient(cs, prev)
            assert s.energy <= e0 - cfg.armijo_c * float(g0 @ (prev - frames[s.step])) + 1e-12
            prev = frames[s.step]


def test_convergence_stops_at_the_tolerance_and_finds_the_landau_minimum():
    system = System(id="one", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.2)])
    r = relax(system, RelaxConfig(steps=10_000, step_size=0.1, tol=1e-7))
    assert r.status == "converged" and r.steps < 10_000
    assert r.eta_of("m") == pytest.approx(np.sqrt(0.5), abs=1e-7)


def test_every_step_is_recorded_once_in_order(toy_system):
    store = InMemoryStore()
    r = relax(toy_system, RelaxConfig(steps=25), store=store)
    steps = _steps(store, r.run_id)
    assert [s.step for s in steps] == list(range(r.steps + 1))
    log = store.read(r.run_id)
    assert [rec.seq for rec in log] == list(range(len(log)))
    assert isinstance(log[-1].event, RunFinished) and log[-1].event.final_digest == state_digest(r.eta)
    assert isinstance(log[2].event, EtaRecorded) and log[2].event.step == 0


def test_same_seed_same_events_different_seed_different_start():
    system = standard_system(60, seed=0)
    cfg = RelaxConfig(steps=20, eta0="uniform")
    a, b, c = InMemoryStore(), InMemoryStore(), InMemoryStore()
    ra, rb, rc = relax(system, cfg, seed=1, store=a), relax(system, cfg, seed=1, store=b), relax(system, cfg, seed=2, store=c)
    assert [x.event for x in a.read(ra.run_id)] == [x.event for x in b.read(rb.run_id)]
    assert ra.eta.tobytes() == rb.eta.tobytes() and ra.eta.tobytes() != rc.eta.tobytes()


def test_explicit_initial_state_is_validated(toy_system):
    r = relax(toy_system, RelaxConfig(steps=0, eta0=(0.1, 0.2, 0.3, 0.4)))
    assert r.eta.tolist() == [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(Exception, match="one value per module"):
        relax(toy_system, RelaxConfig(eta0=(0.1, 0.2)))
    with pytest.raises(Exception, match=r"eta0.1"):
        relax(toy_system, RelaxConfig(eta0=(0.1, 1.2, 0.3, 0.4)))


def test_energy_terms_match_a_direct_sum(toy_system):
    cs = compile_system(toy_system)
    eta = np.array([0.3, 0.6, 0.8, 0.4])
    a, b, c, g = eta
    expected = (-1.0 * a**2 + 1.0 * a**4 - 0.05 * a) + (-0.5 * b**2 + 1.5 * b**4) + (0.4 * c**2 + 0.8 * c**4 + 0.1 * c) \
        + (0.1 * g**2 + 0.1 * g**4) + 0.7 * (a - b) ** 2 + 0.4 * max(0.0, b - c) ** 2 - 0.35 * g
    assert energy(cs, eta) == pytest.approx(expected, rel=1e-12)
    # gradient and Hessian diagonal of the whole system against finite differences
    _, grad = energy_and_gradient(cs, eta)
    h = 1e-6
    fd = [(energy(cs, eta + h * e) - energy(cs, eta - h * e)) / (2 * h) for e in np.eye(4)]
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-8)
    fd2 = [(energy_and_gradient(cs, eta + h * e)[1][k] - energy_and_gradient(cs, eta - h * e)[1][k]) / (2 * h)
           for k, e in enumerate(np.eye(4))]
    assert np.allclose(hessian_diagonal(cs, eta), fd2, rtol=1e-5, atol=1e-6)


def test_family_weights_and_complexity_cost_enter_the_energy(toy_system):
    eta = np.array([0.3, 0.6, 0.8, 0.4])
    base = energy(compile_system(toy_system), eta)
    heavier = toy_system.evolve(family_weights={"quadratic": 3.0}, complexity_cost=0.25)
    assert energy(compile_system(heavier), eta) == pytest.approx(base + 2.0 * 0.7 * (0.3 - 0.6) ** 2 + 4 * 0.25)


def test_a_gate_benefit_pulls_a_closed_gate_open(toy_system):
    store = InMemoryStore()
    r = relax(toy_system, RelaxConfig(steps=300, step_size=0.2), store=store)
    opened = [rec.event for rec in store.read(r.run_id, types=["GateOpened"])]
    assert opened and opened[0].gate_id == "gate" and opened[0].eta >= 0.5
    without = toy_system.evolve(couplings=[c for c in toy_system.couplings if c.kind != "gate_benefit"])
    r2 = relax(without, RelaxConfig(steps=300, step_size=0.2))
    assert r2.eta_of("gate") < 0.5 < r.eta_of("gate")


def test_step_committed_has_no_step_beyond_the_budget():
    system = standard_system(30, seed=0)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(steps=7, tol=0.0, eta0="uniform"), store=store)
    steps = [rec.event for rec in store.read(r.run_id) if isinstance(rec.event, StepCommitted)]
    assert r.status == "max_steps" and r.steps == 7 and steps[-1].step == 7


def test_a_run_below_the_floating_point_floor_ends_stalled_not_spinning():
    system = System(id="one", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.2)])
    store = InMemoryStore()
    r = relax(system, RelaxConfig(steps=100_000, step_size=0.1, tol=0.0), store=store)
    assert r.status == "stalled" and r.steps < 100_000
    assert r.eta_of("m") == pytest.approx(np.sqrt(0.5), abs=1e-7)
    last = _steps(store, r.run_id)[-1]
    assert last.reason == "stalled" and not last.accepted


def test_a_run_whose_energy_stopped_changing_ends_stalled():
    # The accelerated solver kept moving η by rounding-sized amounts that left the energy exactly unchanged:
    # this run reached its final energy at step 166 and went on to step 15,349.
    from complexity_from_constraints.entities import StabilityConfig

    store = InMemoryStore()
    r = relax(standard_system(2000, seed=2), RelaxConfig(solver="accelerated", step_size=10.0, steps=20000,
                                                         stability=StabilityConfig(cap_fraction=0.99)), store=store)
    steps = _steps(store, r.run_id)
    last_change = max(s.step for s, before in zip(steps[1:], steps) if s.energy != before.energy)
    assert r.status == "stalled" and r.steps <= last_change + 30
    assert r.energy == min(s.energy for s in steps)
    assert steps[-1].diagnostics["unchanged_steps"] == 10  # the recorded reason: ten unchanged accepted steps in a row


def test_a_solver_with_inner_state_is_not_stalled_by_an_unchanged_energy(toy_system):
    r = relax(toy_system, RelaxConfig(solver="admm", steps=300, tol=0.0))
    assert r.status == "max_steps" and r.steps == 300


def _floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _floats(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _floats(v)


@pytest.mark.parametrize("module", [
    LandauModule(id="m", a=1e308, b=1e308, eta0=0.3),    # η reaches 0, where the gradient is 0 · ∞
    LandauModule(id="m", a=-1e308, b=1.0, h=1e308, eta0=0.5),  # η reaches 1, where the energy is −∞
], ids=["nan-gradient", "minus-infinite-energy"])
@pytest.mark.parametrize("backend", ["memory", "duckdb"])
def test_a_run_that_stops_being_finite_is_recorded_diverged_then_raises(module, backend):
    from complexity_from_constraints.adapters import DuckDBStore
    from complexity_from_constraints.entities import CfcError, DivergedError

    store = InMemoryStore() if backend == "memory" else DuckDBStore(":memory:")
    with np.errstate(all="ignore"), pytest.raises(DivergedError) as raised:
        relax(System(id="x", modules=[module]), RelaxConfig(steps=3), store=store)
    assert isinstance(raised.value, CfcError) and raised.value.step == 1
    events = [rec.event for rec in store.read(raised.value.run_id)]
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.status == "diverged" and finished.best_step == 0
    last = [e for e in events if isinstance(e, StepCommitted)][-1]
    assert (last.step, last.accepted, last.reason) == (1, False, "not_finite")
    for event in events:
        if isinstance(event, EtaRecorded):
            assert np.isfinite(event.eta).all()
        elif not isinstance(event, RunStarted):
            assert all(np.isfinite(list(_floats(event.model_dump())))), event
    store.close()


@pytest.mark.parametrize("where", ["step_size", "diagnostics"])
def test_a_step_holding_a_non_finite_number_never_reaches_the_store(where, monkeypatch):
    """A non-finite diagnostics entry is left out; any other non-finite number ends the run diverged before it."""
    import math
    from dataclasses import replace

    from complexity_from_constraints.entities import DivergedError
    from complexity_from_constraints.projectors._solvers import ProjectedGradient

    propose = ProjectedGradient.propose

    def odd(self, ctx):
        p = propose(self, ctx)
        if ctx.step != 2:
            return p
        if where == "step_size":
            return replace(p, step_size=math.inf)
        return replace(p, diagnostics={"margin": math.nan, "spread": -math.inf, "kept": 1.0})

    monkeypatch.setattr(ProjectedGradient, "propose", odd)
    store = InMemoryStore()
    config = RelaxConfig(steps=4, step_size=0.05)
    if where == "step_size":
        with pytest.raises(DivergedError):
            relax(standard_system(6, seed=0), config, store=store)
    else:
        relax(standard_system(6, seed=0), config, store=store)
    events = [rec.event for rec in store.read(store.runs()[0].run_id)]
    steps = [e for e in events if isinstance(e, StepCommitted)]
    if where == "step_size":
        assert events[-1].status == "diverged" and steps[-1].step == 1
    else:
        assert events[-1].status == "max_steps" and steps[2].step == 2 and steps[2].diagnostics == {"kept": 1.0}
    assert all(np.isfinite(e.eta).all() if isinstance(e, EtaRecorded) else all(np.isfinite(list(_floats(e.model_dump()))))
               for e in events if not isinstance(e, RunStarted))


def _bad_inputs():
    from complexity_from_constraints.entities import CustomWeighting, HomotopyConfig, NoiseConfig, StabilityConfig, WarmStart

    s = standard_system(6, seed=0)
    return {
        "numpy-only solver on torch": (s, RelaxConfig(solver="lbfgsb", backend="torch"), 0),
        "weighting with no implementation": (s, RelaxConfig(weighting=CustomWeighting(name="nobody_registered_this")), 0),
        "negative seed with noise": (s, RelaxConfig(noise=NoiseConfig(magnitude=0.1)), -1),
        "negative seed with a uniform start": (s, RelaxConfig(eta0="uniform"), -1),
        "eta0 of the wrong length": (s, RelaxConfig(eta0=(0.5, 0.5)), 0),
        "eta0 out of range": (s, RelaxConfig(eta0=(0.5,) * 5 + (1.5,)), 0),
        "unknown warm-start active id": (s, RelaxConfig(warm_start=WarmStart(source="t", eta0=(0.5,) * 6, active=("nope",),
                                                                             active_steps=3)), 0),
        "unknown homotopy key": (s, RelaxConfig(homotopy=HomotopyConfig(steps=5, kind_starts={"landua": 0.1})), 0),
        "unreachable coupling target": (s, RelaxConfig(stability=StabilityConfig(coupling_target=1e-3)), 0),
        "initial energy not finite": (System(id="x", modules=[LandauModule(id="m", a=1e308, b=1e308, eta0=1.0)]),
                                      RelaxConfig(), 0),
    }


@pytest.mark.parametrize("case", sorted(_bad_inputs()))
def test_bad_input_leaves_no_trace_in_the_store(case, monkeypatch):
    from complexity_from_constraints.adapters import DuckDBStore
    from complexity_from_constraints.entities import CfcError

    system, config, seed = _bad_inputs()[case]
    store = DuckDBStore(":memory:")
    with np.errstate(all="ignore"), pytest.raises(CfcError):
        relax(system, config, seed=seed, store=store)
    assert store.runs() == []
    store.close()


def test_a_revision_that_makes_the_objective_infinite_ends_the_run_diverged_on_its_last_finite_state():
    from complexity_from_constraints.entities import DivergedError, Revision

    system = System(id="two", modules=[LandauModule(id=m, a=-1.0, b=1.0, eta0=0.9) for m in ("p", "q")])
    huge = {"a": -1e308, "h": 1e308}  # each module's energy stays finite; their sum is −∞
    config = RelaxConfig(steps=10, revisions=[Revision(step=3, entity_id=m, changes=huge) for m in ("p", "q")])
    store = InMemoryStore()
    with np.errstate(all="ignore"), pytest.raises(DivergedError) as raised:
        relax(system, config, store=store)
    events = [rec.event for rec in store.read(raised.value.run_id)]
    finished, steps = events[-1], [e for e in events if isinstance(e, StepCommitted)]
    assert finished.status == "diverged" and finished.steps == 3 and steps[-1].step == 2
    assert finished.final_energy == steps[-1].energy and np.isfinite(finished.final_energy)
    assert [e.type for e in events[-3:]] == ["EntityRevised", "EntityRevised", "RunFinished"]
