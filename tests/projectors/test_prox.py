"""Proximal splitting and ADMM: each closed form against brute force, the optimum, and the loop's contract."""

from __future__ import annotations

import numpy as np
import pytest
from complexity_from_constraints.entities import (
    AdmmConfig,
    AsymmetricHingeCoupling,
    Candidate,
    DampedGateBenefitCoupling,
    DirectedHingeCoupling,
    ExpansionConfig,
    FreeEnergyConfig,
    GateBenefitCoupling,
    GateModule,
    HomotopyConfig,
    LandauModule,
    ProximalConfig,
    QuadraticCoupling,
    RelaxConfig,
    StabilityConfig,
    System,
    WarmStart,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import Objective, State, compile_system, relax
from complexity_from_constraints.projectors._prox import (
    PairEdges,
    _PairSweep,
    colour_edges,
    colour_nodes,
    minimise_star,
    prox_hinge,
    prox_quadratic,
)

MODES = {
    "pair": dict(solver="proximal"),
    "star": dict(solver="proximal", proximal=ProximalConfig(block="star")),
    "admm": dict(solver="admm"),
}


def _box_min(f):
    """Brute force on [0, 1]²: a 401² grid, then zooms of ±2 cells on 41² grids (f is convex and vectorised)."""
    lo, hi, n = np.zeros(2), np.ones(2), 401
    for _ in range(7):
        u, v = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n), indexing="ij")
        k = np.unravel_index(np.argmin(f(u, v)), u.shape)
        best, cell = np.array([u[k], v[k]]), (hi - lo) / (n - 1)
        lo, hi, n = np.maximum(best - 2 * cell, 0), np.minimum(best + 2 * cell, 1), 41
    return best, float(f(*best))


def _anchors(rng, k):
    """Anchors inside the box and well outside it (the forward step is not clipped before a prox)."""
    inside = rng.uniform(0, 1, (k, 2))
    outside = rng.uniform(-0.8, 1.8, (k, 2))
    return np.concatenate([inside, outside])


def test_quadratic_prox_is_the_exact_box_minimiser():
    rng = np.random.default_rng(0)
    anchors = _anchors(rng, 40)
    t = rng.uniform(0, 3, len(anchors))
    t[:3] = 0.0
    x, y = prox_quadratic(anchors[:, 0], anchors[:, 1], t)
    for k, (a, b) in enumerate(anchors):
        def f(u, v, k=k, a=a, b=b):
            return t[k] * (u - v) ** 2 + 0.5 * ((u - a) ** 2 + (v - b) ** 2)

        point, value = _box_min(f)
        assert f(x[k], y[k]) <= value + 1e-12
        assert np.allclose([x[k], y[k]], point, atol=1e-6)
    inside = np.all((anchors >= 0) & (anchors <= 1), axis=1)
    assert np.allclose((x + y)[inside], anchors[inside].sum(axis=1))  # the sum is kept when nothing clips


@pytest.mark.parametrize("directed", [True, False])
def test_hinge_prox_is_the_exact_box_minimiser(directed):
    rng = np.random.default_rng(1 + directed)
    anchors = _anchors(rng, 40)
    k = len(anchors)
    t = rng.uniform(0, 3, k)
    alpha = np.ones(k) if directed else rng.uniform(0, 3, k)
    beta = np.ones(k) if directed else rng.uniform(0, 3, k)
    if not directed:
        alpha[:4] = 0.0  # a hinge on η_j alone
    x, y = prox_hinge(anchors[:, 0], anchors[:, 1], t, alpha, beta)
    overshoot = 0
    for e, (a, b) in enumerate(anchors):
        def f(u, v, e=e, a=a, b=b):
            return t[e] * np.maximum(0.0, beta[e] * v - alpha[e] * u) ** 2 + 0.5 * ((u - a) ** 2 + (v - b) ** 2)

        point, value = _box_min(f)
        assert f(x[e], y[e]) <= value + 1e-12
        assert np.allclose([x[e], y[e]], point, atol=1e-6)
        g0 = beta[e] * b - alpha[e] * a
        free = a + 2 * t[e] * alpha[e] * g0 / (1 + 2 * t[e] * (alpha[e] ** 2 + beta[e] ** 2))
        overshoot += bool(0 <= a <= 1 and 0 <= b <= 1 and g0 > 0 and free > 1)
    assert directed or overshoot > 0  # the x = 1 side was exercised with anchors in the box


def test_star_minimiser_is_the_exact_1d_minimiser():
    rng = np.random.default_rng(3)
    m = 60
    curvature = rng.uniform(0.2, 30, m)
    pull = rng.uniform(-20, 40, m)
    degree = rng.integers(0, 7, m)
    degree[0] = 40  # one hub
    centre = np.repeat(np.arange(m), degree)
    slope = rng.uniform(-3, 3, centre.size)
    slope[::9] = 0.0
    offset = rng.uniform(-2, 2, centre.size)
    offset[::11] = 0.0
    weight = rng.uniform(0, 5, centre.size)
    x = minimise_star(curvature, pull, centre, slope, offset, weight)
    for c in range(m):
        mine = centre == c

        def h(u, c=c, mine=mine):
            hinge = np.maximum(0, slope[mine] * u[:, None] + offset[mine]) ** 2
            return 0.5 * curvature[c] * u * u - pull[c] * u + hinge @ weight[mine]

        lo, hi, n = 0.0, 1.0, 4001
        for _ in range(6):  # brute force: a fine grid, then zooms of ±2 cells
            grid = np.linspace(lo, hi, n)
            best, cell = grid[np.argmin(h(grid))], (hi - lo) / (n - 1)
            lo, hi, n = max(best - 2 * cell, 0.0), min(best + 2 * cell, 1.0), 101
        assert h(np.array([x[c]]))[0] <= h(np.array([best]))[0] + 1e-11
        assert abs(x[c] - best) < 1e-6


def test_colourings_are_matchings_and_proper():
    system = standard_system(300, seed=4)
    edges = PairEdges.of(compile_system(system))
    colour = colour_edges(edges.i, edges.j, 300)
    for c in np.unique(colour):
        ends = np.concatenate([edges.i[colour == c], edges.j[colour == c]])
        assert len(np.unique(ends)) == len(ends)
    degree = np.bincount(np.concatenate([edges.i, edges.j]))
    assert colour.max() + 1 <= 2 * degree.max() - 1
    nodes = colour_nodes(edges.i, edges.j, 300)
    assert np.all(nodes[edges.i] != nodes[edges.j])


def _hand(seed: int) -> System:
    """Convex Landau wells, gates, every prox-able kind (asymmetric hinges with β > α), gate benefits of both signs."""
    rng = np.random.default_rng(seed)
    modules = [LandauModule(id=f"m{k}", a=float(rng.uniform(0.05, 1)), b=float(rng.uniform(0.2, 1)),
                            h=float(rng.uniform(-0.8, 0.8)), eta0=float(rng.uniform())) for k in range(6)]
    modules += [GateModule(id="g0", a=0.2, b=0.1), GateModule(id="g1", a=0.3, b=0.1)]
    couplings = [
        QuadraticCoupling(id="q01", i="m0", j="m1", weight=2.0),
        QuadraticCoupling(id="q12", i="m1", j="m2", weight=0.5),
        DirectedHingeCoupling(id="h23", i="m2", j="m3", weight=3.0),
        AsymmetricHingeCoupling(id="a34", i="m3", j="m4", alpha=0.5, beta=2.0, weight=1.5),
        AsymmetricHingeCoupling(id="a54", i="m5", j="m4", alpha=2.0, beta=0.7),
        QuadraticCoupling(id="q50", i="m5", j="m0", weight=5.0),
        GateBenefitCoupling(id="gb0", i="g0", j="m1", delta=0.6),
        GateBenefitCoupling(id="gb1", i="g1", j="m2", delta=-0.2),
        DirectedHingeCoupling(id="hg", i="g0", j="m3"),
    ]
    return System(id=f"hand-{seed}", modules=modules, couplings=couplings)


SYSTEMS = {
    "hand-0": lambda: _hand(0),
    "hand-1": lambda: _hand(1),
    "standard-12-2": lambda: standard_system(12, seed=2),
    "standard-40-0": lambda: standard_system(40, seed=0),
}


def _objective_value(system: System, eta, temperature=None) -> float:
    return Objective(compile_system(system), temperature=temperature).evaluate(np.asarray(eta)).value


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_reaches_the_lbfgsb_optimum(mode, name):
    system = SYSTEMS[name]()
    reference = relax(system, RelaxConfig(solver="lbfgsb", steps=3000, tol=1e-12))
    r = relax(system, RelaxConfig(steps=3000, tol=1e-10, **MODES[mode]))
    assert abs(r.energy - reference.energy) <= 1e-6 * abs(reference.energy)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_reaches_the_free_energy_optimum(mode):
    system = _hand(2)
    fe = FreeEnergyConfig(temperature=0.05)
    reference = relax(system, RelaxConfig(solver="lbfgsb", steps=3000, tol=1e-12, free_energy=fe))
    r = relax(system, RelaxConfig(steps=3000, tol=1e-10, free_energy=fe, **MODES[mode]))
    best, mine = _objective_value(system, reference.eta, 0.05), _objective_value(system, r.eta, 0.05)
    assert abs(mine - best) <= 1e-6 * abs(best)


def test_a_pair_sweep_leaves_a_box_kkt_point_where_it_is():
    # The edge-gradient correction makes the optimum a fixed point (plain splitting would move it by O(τ)).
    system = _hand(0)
    optimum = relax(system, RelaxConfig(solver="lbfgsb", steps=3000, tol=1e-13)).eta
    objective = Objective(compile_system(system))
    edges = PairEdges.of(objective.cs)
    sweep = _PairSweep(edges, objective.cs.n)
    moved = sweep.sweep(sweep.bind(edges, objective.cs), objective, State.at(objective, optimum), 0.05, None)
    assert np.max(np.abs(moved - optimum)) < 1e-7
    assert np.any(optimum == 0.0) or np.any(optimum == 1.0)  # some coordinate sits on the box


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_kind_without_a_prox_still_acts(mode):
    # Only a damped gate benefit pulls the gate: a solver that skipped the kind would leave it closed.
    system = System(id="damped", modules=[GateModule(id="g", a=0.1, b=0.1), LandauModule(id="x", a=0.5, eta0=0.5)],
                    couplings=[DampedGateBenefitCoupling(id="d", i="g", j="x", delta=1.0, damping=0.8, eta_power=2.0),
                               QuadraticCoupling(id="q", i="g", j="x", weight=0.05)])
    start = GateModule(id="g", a=0.1, b=0.1).initial_eta()
    reference = relax(system, RelaxConfig(solver="lbfgsb", steps=2000, tol=1e-12))
    r = relax(system, RelaxConfig(steps=2000, tol=1e-10, **MODES[mode]))
    assert r.eta_of("g") > 0.5 > start
    assert abs(r.energy - reference.energy) <= 1e-6 * abs(reference.energy)


def _steps(store, run_id):
    return [rec.event for rec in store.read(run_id, types=["StepCommitted"])]


def test_a_rejected_sweep_halves_tau_and_is_never_returned():
    system = System(id="stiff", modules=[LandauModule(id="x", a=0.1, b=5.0, h=3.0, eta0=0.0),
                                         LandauModule(id="y", a=0.1, b=5.0, h=-3.0, eta0=1.0)],
                    couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=0.2)])
    store = InMemoryStore()
    r = relax(system, RelaxConfig(solver="proximal", steps=60, proximal=ProximalConfig(tau=3.0)), store=store)
    steps = _steps(store, r.run_id)
    rejected = [s for s in steps if not s.accepted and s.reason != "stalled"]
    assert rejected and all(s.reason == "energy_increase" and s.trial_energy > s.energy for s in rejected)
    first = rejected[0]
    assert steps[first.step + 1].step_size == first.step_size / 2
    assert all(s.reason == "prox" for s in steps[1:] if s.accepted)
    assert r.energy == min(s.energy for s in steps if s.accepted)
    frame_steps = {rec.event.step for rec in store.read(r.run_id, types=["EtaRecorded"])}
    assert not frame_steps & {s.step for s in rejected}


def test_admm_keeps_its_iterate_but_returns_the_best_accepted_state():
    system = standard_system(30, seed=3)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(solver="admm", steps=300, eta0="uniform", admm=AdmmConfig(rho=5.0, step_size=0.08)),
              store=store)
    steps = _steps(store, r.run_id)
    above = [s for s in steps if s.reason == "above_best"]
    assert above and all(not s.accepted and s.trial_energy > s.energy for s in above)
    assert all(s.reason == "admm" for s in steps[1:] if s.accepted)
    accepted = [s.energy for s in steps if s.accepted]
    assert r.energy == min(accepted) and accepted == sorted(accepted, reverse=True)
    assert r.energy == pytest.approx(_objective_value(system, r.eta), abs=0)


def test_admm_residuals_are_recorded_and_shrink():
    store = InMemoryStore()
    r = relax(_hand(0), RelaxConfig(solver="admm", steps=400), store=store)
    steps = _steps(store, r.run_id)[1:]
    primal = [s.diagnostics["primal_residual"] for s in steps]
    dual = [s.diagnostics["dual_residual"] for s in steps]
    assert len(primal) == len(dual) == len(steps)
    assert primal[-1] < 1e-3 * max(primal) and dual[-1] < 1e-3 * max(dual)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_same_seed_same_events(mode):
    system = standard_system(50, seed=5)
    cfg = RelaxConfig(steps=40, eta0="uniform", **MODES[mode])
    a, b = InMemoryStore(), InMemoryStore()
    ra, rb = relax(system, cfg, seed=3, store=a), relax(system, cfg, seed=3, store=b)
    assert [x.event for x in a.read(ra.run_id)] == [x.event for x in b.read(rb.run_id)]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_only_the_active_set_moves_while_the_mask_holds(mode):
    system = _hand(1)
    active = ("m0", "m3", "g0")
    eta0 = tuple(np.random.default_rng(2).uniform(0, 1, len(system.modules)).tolist())
    ws = WarmStart(source="test", eta0=eta0, active=active, active_steps=5)
    store = InMemoryStore()
    r = relax(system, RelaxConfig(steps=10, warm_start=ws, **MODES[mode]), store=store)
    frames = {rec.event.step: rec.event.eta for rec in store.read(r.run_id, types=["EtaRecorded"])}
    frozen = np.array([m.id not in active for m in system.modules])
    assert any(step in frames for step in range(1, 6))
    for step in range(1, 6):
        if step in frames:
            assert np.array_equal(frames[step][frozen], np.array(eta0)[frozen])
    assert any(not np.array_equal(f[frozen], np.array(eta0)[frozen]) for s, f in frames.items() if s > 5)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_stability_cap_bounds_the_step(mode):
    huge = {"proximal": ProximalConfig(tau=10.0, block="star" if mode == "star" else "pair"),
            "admm": AdmmConfig(step_size=10.0)}
    store = InMemoryStore()
    cfg = RelaxConfig(steps=20, stability=StabilityConfig(cap_fraction=0.1), **(MODES[mode] | huge))
    r = relax(_hand(0), cfg, store=store)
    (bound,) = [rec.event for rec in store.read(r.run_id, types=["StabilityBounded"])]
    assert all(s.step_size <= bound.step_cap for s in _steps(store, r.run_id)[1:])


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_changing_objective_resets_the_solver(mode):
    # The homotopy ramps every coupling, so the solver is reset each step; it must still end at the optimum.
    system = _hand(0)
    reference = relax(system, RelaxConfig(solver="lbfgsb", steps=3000, tol=1e-12))
    store = InMemoryStore()
    r = relax(system, RelaxConfig(steps=3000, tol=1e-10, homotopy=HomotopyConfig(steps=20, coupling_start=0.1),
                                  **MODES[mode]), store=store)
    assert len([rec for rec in store.read(r.run_id, types=["ObjectiveScaled"])]) >= 10
    assert abs(r.energy - reference.energy) <= 1e-6 * abs(reference.energy)


def test_non_numpy_backends_are_refused(torch):

    from complexity_from_constraints.entities import InvalidEntityError

    for mode in MODES.values():
        with pytest.raises(InvalidEntityError, match="numpy backend only"):
            relax(_hand(0), RelaxConfig(steps=2, backend="torch", **mode))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_module_added_mid_run_is_relaxed_with_the_rest(mode):
    # Expansion changes the edge structure: the colourings and the ADMM split are rebuilt at the reset.
    system = _hand(0)
    newcomer = LandauModule(id="new", a=0.3, b=0.5, h=0.6, eta0=0.5)
    ties = (QuadraticCoupling(id="q-new", i="new", j="m0", weight=1.5), DirectedHingeCoupling(id="h-new", i="m2", j="new"))
    grown = System(id="grown", modules=[*system.modules, newcomer], couplings=[*system.couplings, *ties])
    reference = relax(grown, RelaxConfig(solver="lbfgsb", steps=3000, tol=1e-12))
    store = InMemoryStore()
    offer = ExpansionConfig(every=3, candidates=(Candidate(module=newcomer, couplings=ties),))
    cfg = RelaxConfig(steps=3000, tol=1e-10, expansion=offer, **MODES[mode])
    r = relax(system, cfg, store=store)
    assert [rec.event.step for rec in store.read(r.run_id, types=["ModuleAdded"])] == [3]
    assert r.ids == grown.module_ids
    assert abs(r.energy - reference.energy) <= 1e-6 * abs(reference.energy)


def test_admm_does_not_stall_where_its_first_iterate_stays_on_a_face():
    """From η₀ = (1, 0) the first ADMM iterate equals the state while s and u move: that is progress, not a stall."""
    from complexity_from_constraints.entities import LandauModule, QuadraticCoupling, RelaxConfig, System
    from complexity_from_constraints.projectors import relax

    system = System(id="face", modules=[LandauModule(id="m", a=0.0, b=1.0, h=5.0, eta0=1.0),
                                        LandauModule(id="n", a=0.0, b=1.0, h=-5.0, eta0=0.0)],
                    couplings=[QuadraticCoupling(id="q", i="m", j="n", weight=2.0)])
    reference = relax(system, RelaxConfig(solver="lbfgsb", steps=200))
    admm = relax(system, RelaxConfig(solver="admm", steps=2000))
    assert admm.steps > 1
    assert admm.energy == pytest.approx(reference.energy, rel=1e-6)
