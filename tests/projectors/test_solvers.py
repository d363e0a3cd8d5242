"""Solvers, step pieces and the stability guard: each changes behaviour the way its docstring says.

Every solver: reaches L-BFGS-B's energy on small convex instances, honours
``steps``, records step 0, commits one ``StepCommitted`` per step and returns
the best accepted state. Direction pieces: normalisation, clipping,
preconditioning with the coupling curvature, a true mirror step,
projected Armijo that never takes a failed step. Stability: a Gershgorin
bound that holds on the whole box, the step cap, the margin and its
warning, the coupling auto-cap.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from complexity_from_constraints import projectors
from complexity_from_constraints.entities import (
    AsymmetricHingeCoupling,
    CompressionModule,
    DampedGateBenefitCoupling,
    DirectedHingeCoupling,
    DirectionConfig,
    GateBenefitCoupling,
    GateModule,
    HomotopyConfig,
    InvalidEntityError,
    LandauModule,
    NashModule,
    PolynomialModule,
    QuadraticCoupling,
    RelaxConfig,
    SequenceModule,
    StabilityConfig,
    System,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import compile_system, energy, energy_and_gradient, hessian_diagonal, lipschitz_rows, relax

EXPECTED_SOLVERS = ("accelerated", "adaptive", "admm", "coordinate", "lbfgsb", "projected_gradient", "proximal")
ALL_SOLVERS = sorted(set(EXPECTED_SOLVERS) | set(projectors.SOLVERS))

# Settings under which each solver is expected to converge on the small instances below.
SOLVER_SETTINGS = {
    "projected_gradient": {"line_search": "armijo", "step_size": 1.0},
    "accelerated": {"step_size": 1.0},
    "adaptive": {"line_search": "armijo", "step_size": 1.0},
}


def test_every_built_in_solver_is_registered():
    assert set(EXPECTED_SOLVERS) <= set(projectors.SOLVERS)


def _run(system, config, seed=0, **kwargs):
    store = InMemoryStore()
    result = relax(system, config, seed=seed, store=store, **kwargs)
    return result, [rec.event for rec in store.read(result.run_id)]


def _of(events, type_name):
    return [e for e in events if e.type == type_name]


def _frames(events):
    return {e.step: np.array(e.eta) for e in _of(events, "EtaRecorded")}


# --------------------------------------------------------------------------- small convex instances

def _chain() -> System:
    """Landau wells with a > 0 on a chain of quadratic couplings; fields push some η onto the bounds."""
    rng = np.random.default_rng(11)
    modules = [LandauModule(id=f"x{k}", a=float(rng.uniform(0.2, 1)), b=float(rng.uniform(0.5, 1.5)), h=h,
                            eta0=float(rng.uniform(0, 1))) for k, h in enumerate([1.5, 0.6, -0.2, 0.3, -1.2, 0.9])]
    couplings = [QuadraticCoupling(id=f"q{k}", i=f"x{k}", j=f"x{k + 1}", weight=float(rng.uniform(0.3, 1.5)))
                 for k in range(5)]
    return System(id="chain", modules=modules, couplings=couplings)


def _graph() -> System:
    """Convex wells on a random graph of quadratic and directed-hinge edges (max(0, ·)² is convex)."""
    rng = np.random.default_rng(12)
    modules = [LandauModule(id=f"y{k}", a=float(rng.uniform(0.1, 1)), b=float(rng.uniform(0.3, 1.5)),
                            h=float(rng.uniform(-1, 1.5)), eta0=float(rng.uniform(0, 1))) for k in range(10)]
    couplings = []
    for e in range(20):
        i, j = rng.choice(10, 2, replace=False)
        cls = QuadraticCoupling if e % 3 else DirectedHingeCoupling
        couplings.append(cls(id=f"c{e}", i=f"y{i}", j=f"y{j}", weight=float(rng.uniform(0.2, 1.2))))
    return System(id="graph", modules=modules, couplings=couplings)


def _mixed() -> System:
    """Convex kinds of every family: wells at a target and at 1, a gate with a linear benefit, hinges."""
    modules = [CompressionModule(id="c", a=1.0, b=0.5, target=0.8, eta0=0.1),
               SequenceModule(id="s", alpha=0.4, beta=0.3, eta0=0.2),
               GateModule(id="g", a=0.3, b=0.2, gain=0.0),
               LandauModule(id="l", a=0.5, b=1.0, h=-0.3, eta0=0.9),
               NashModule.prisoners_dilemma("n", a=0.6, b=0.2, p_row=0.2, p_col=0.3)]
    couplings = [QuadraticCoupling(id="cs", i="c", j="s", weight=0.7),
                 AsymmetricHingeCoupling(id="ah", i="l", j="c", alpha=0.8, beta=1.3, weight=0.9),
                 GateBenefitCoupling(id="gb", i="g", j="l", delta=0.35),
                 DirectedHingeCoupling(id="dh", i="n", j="g", weight=0.5),
                 QuadraticCoupling(id="ln", i="l", j="n", weight=0.4)]
    return System(id="mixed", modules=modules, couplings=couplings, complexity_cost=0.1)


CONVEX = {"chain": _chain, "graph": _graph, "mixed": _mixed}
_REFERENCE: dict[str, float] = {}


def _reference_energy(name: str) -> float:
    """scipy's L-BFGS-B, run directly on the compiled energy to a tight tolerance."""
    if name not in _REFERENCE:
        system = CONVEX[name]()
        cs = compile_system(system)
        x0 = np.array([m.initial_eta() for m in system.modules])
        res = minimize(lambda x: energy_and_gradient(cs, x), x0, jac=True, method="L-BFGS-B",
                       bounds=[(0.0, 1.0)] * cs.n, options={"ftol": 0.0, "gtol": 1e-13, "maxiter": 10_000})
        _REFERENCE[name] = float(res.fun)
    return _REFERENCE[name]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_system_is_not_convex_so_it_is_not_a_reference_instance(seed):
    # a ~ U[−1, 1]: a Landau well with a < 0 has f''(0) = 2a < 0, which the couplings do not outweigh
    cs = compile_system(standard_system(20, seed=seed))
    assert np.linalg.eigvalsh(_dense_hessian(cs, np.full(cs.n, 0.05))).min() < -0.1


def test_convex_instances_are_convex_on_the_box():
    """The Hessian (finite differences of the gradient) is positive semi-definite at random points."""
    rng = np.random.default_rng(0)
    for name, make in CONVEX.items():
        cs = compile_system(make())
        for _ in range(5):
            x = rng.uniform(0.02, 0.98, cs.n)
            eig = np.linalg.eigvalsh(_dense_hessian(cs, x))
            assert eig.min() > -1e-6, name


@pytest.mark.parametrize("instance", sorted(CONVEX))
@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_every_solver_reaches_the_lbfgsb_energy_on_convex_instances(solver, instance):
    system, best = CONVEX[instance](), _reference_energy(instance)
    config = RelaxConfig(solver=solver, steps=3000, tol=1e-10, **SOLVER_SETTINGS.get(solver, {}))
    result, events = _run(system, config)
    assert abs(result.energy - best) <= 1e-6 * abs(best), (solver, instance, result.status, result.energy, best)
    assert result.energy == energy(compile_system(system), result.eta)


def test_the_lbfgsb_solver_records_scipys_iterations():
    result, events = _run(_graph(), RelaxConfig(solver="lbfgsb", steps=500, tol=1e-10))
    steps = _of(events, "StepCommitted")
    assert all(s.reason in ("initial", "lbfgsb", "stalled") for s in steps)
    assert len(steps) > 5 and result.energy == pytest.approx(_reference_energy("graph"), rel=1e-9)


# --------------------------------------------------------------------------- one contract for every solver

@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_every_solver_honours_steps_records_step_zero_and_commits_one_step_each(solver):
    system = standard_system(12, seed=3)
    for steps in (0, 1, 6):
        config = RelaxConfig(solver=solver, steps=steps, eta0="uniform", **SOLVER_SETTINGS.get(solver, {}))
        result, events = _run(system, config, seed=1)
        committed = _of(events, "StepCommitted")
        finished = _of(events, "RunFinished")
        assert len(finished) == 1 and finished[0].steps == result.steps <= steps
        assert result.status != "converged", "the instance is chosen so that a few steps never converge"
        assert finished[0].steps == steps, (solver, steps, result.status)
        assert [s.step for s in committed] == list(range(steps + 1))
        assert committed[0].reason == "initial" and committed[0].accepted
        frames = _frames(events)
        assert 0 in frames and np.array_equal(frames[0], np.random.default_rng(1).uniform(0, 1, 12))
        assert set(frames) == {s.step for s in committed if s.accepted}


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_every_solver_returns_the_best_accepted_state(solver):
    """on a stiff system that makes naive steps overshoot, the returned state is the best accepted one."""
    system = System(id="stiff", modules=[LandauModule(id="x", a=0.1, b=0.1, eta0=0.9),
                                         LandauModule(id="y", a=0.1, b=0.1, eta0=0.1),
                                         LandauModule(id="z", a=-0.5, b=1.0, h=0.1, eta0=0.4)],
                    couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=10.0),
                               QuadraticCoupling(id="yz", i="y", j="z", weight=3.0)])
    result, events = _run(system, RelaxConfig(solver=solver, steps=40, step_size=1.0))
    committed = _of(events, "StepCommitted")
    accepted = [s.energy for s in committed if s.accepted]
    cs = compile_system(system)
    last_frame = _of(events, "EtaRecorded")[-1]
    assert result.energy == min(accepted) == accepted[-1]
    assert result.energy == energy(cs, last_frame.eta) == energy(cs, result.eta)
    assert np.array_equal(result.eta, last_frame.eta)
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    for s in committed:  # a rejected proposal leaves the state (and its energy) where it was
        if not s.accepted and s.trial_energy is not None:
            assert s.energy == committed[s.step - 1].energy


# --------------------------------------------------------------------------- direction pieces

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _logit(p):
    return np.log(p / (1 - p))


def _first_step(system, direction: DirectionConfig, step_size: float, seed: int = 2):
    config = RelaxConfig(steps=1, step_size=step_size, eta0="uniform", direction=direction)
    result, events = _run(system, config, seed=seed)
    frames = _frames(events)
    step = _of(events, "StepCommitted")[1]
    assert step.accepted, step
    return frames[0], frames[1]


@pytest.mark.parametrize("direction, transform", [
    (DirectionConfig(), lambda g, d: g),
    (DirectionConfig(normalize=True), lambda g, d: g / np.linalg.norm(g)),
    (DirectionConfig(max_norm=0.05), lambda g, d: g * (0.05 / np.linalg.norm(g))),
    (DirectionConfig(max_norm=1e6), lambda g, d: g),  # clipping leaves a short gradient alone
    (DirectionConfig(precondition=True), lambda g, d: g / np.maximum(np.abs(d), 1e-3)),
    (DirectionConfig(precondition=True, max_norm=0.05, normalize=True),
     lambda g, d: (lambda p: p / np.linalg.norm(p))(g / np.maximum(np.abs(d), 1e-3))),
])
def test_direction_pieces_shape_the_step_as_documented(direction, transform):
    system = standard_system(12, seed=3)
    cs = compile_system(system)
    eta0, eta1 = _first_step(system, direction, 0.02)
    _, g = energy_and_gradient(cs, eta0)
    assert np.linalg.norm(g) > 0.05  # so the clip at 0.05 acts
    expected = np.clip(eta0 - 0.02 * transform(g, hessian_diagonal(cs, eta0)), 0, 1)
    np.testing.assert_allclose(eta1, expected, rtol=0, atol=1e-15)


def test_each_direction_piece_changes_the_trajectory():
    system = standard_system(12, seed=3)
    runs = {}
    for name, direction in {"plain": DirectionConfig(), "normalize": DirectionConfig(normalize=True),
                            "max_norm": DirectionConfig(max_norm=0.05), "precondition": DirectionConfig(precondition=True),
                            "mirror": DirectionConfig(update="mirror")}.items():
        result, events = _run(system, RelaxConfig(steps=15, step_size=0.02, eta0="uniform", direction=direction), seed=2)
        runs[name] = _frames(events)
    for name, frames in runs.items():
        if name != "plain":
            assert not np.array_equal(frames[max(frames)], runs["plain"][max(runs["plain"])]), name


def test_mirror_update_without_line_search_is_the_logit_step():
    system = standard_system(12, seed=3)
    cs = compile_system(system)
    eta0, eta1 = _first_step(system, DirectionConfig(update="mirror"), 0.3)
    _, g = energy_and_gradient(cs, eta0)
    np.testing.assert_allclose(eta1, _sigmoid(_logit(eta0) - 0.3 * g), rtol=1e-13, atol=1e-15)


def test_mirror_with_armijo_takes_true_mirror_steps():
    """with line search too, η' = σ(logit η − s·g) at the accepted s, not a rescaled Euclidean step."""
    system = standard_system(12, seed=3)
    cs = compile_system(system)
    config = RelaxConfig(steps=25, step_size=4.0, line_search="armijo", eta0="uniform",
                         direction=DirectionConfig(update="mirror"))
    result, events = _run(system, config, seed=2)
    frames = _frames(events)
    committed = _of(events, "StepCommitted")
    assert any(s.backtracks > 0 for s in committed[1:] if s.accepted), "α = 4 should need backtracking"
    previous = frames[0]
    checked = 0
    for s in committed[1:]:
        if not s.accepted:
            continue
        e0, g = energy_and_gradient(cs, previous)
        mirror = _sigmoid(_logit(np.clip(previous, 1e-9, 1 - 1e-9)) - s.step_size * g)
        np.testing.assert_allclose(frames[s.step], np.where(g == 0, previous, mirror), rtol=1e-12, atol=1e-15)
        # a Euclidean step of the same size lands elsewhere
        assert not np.allclose(frames[s.step], np.clip(previous - s.step_size * g, 0, 1), atol=1e-6)
        # … and Armijo measured the decrease the mirror step predicts, ⟨g, η − η'⟩
        assert s.energy <= e0 - config.armijo_c * float(g @ (previous - frames[s.step])) + 1e-12
        previous = frames[s.step]
        checked += 1
    assert checked >= 5


def test_preconditioning_uses_coupling_curvature_so_a_flat_module_does_not_jump():
    """a module with zero local curvature (Landau a = 0 at η = 0) is scaled by its coupling's curvature."""
    system = System(id="flat-system", modules=[LandauModule(id="flat", a=0.0, b=1.0, h=0.5, eta0=0.0),
                                        LandauModule(id="other", a=1.0, b=1.0, eta0=0.5)],
                    couplings=[QuadraticCoupling(id="q", i="flat", j="other", weight=1.0)])
    cs = compile_system(system)
    eta0 = np.array([0.0, 0.5])
    assert LandauModule.hessian_diagonal(np, eta0[:1], {"a": np.array([0.0]), "b": np.array([1.0])})[0] == 0.0
    _, g = energy_and_gradient(cs, eta0)
    result, events = _run(system, RelaxConfig(steps=1, step_size=1.0, direction=DirectionConfig(precondition=True)))
    eta1 = _frames(events)[1]
    # D = f''(0) + 2w = 2: the Newton-like step moves η by −g/2 = 0.75, not to the boundary
    assert g[0] == pytest.approx(-1.5) and eta1[0] == pytest.approx(0.75)
    assert 0 < eta1[0] < 1 and _of(events, "StepCommitted")[1].accepted


def test_preconditioning_a_compression_module_takes_its_newton_step():
    """The case that showed it: a compression module at 0.3 jumped to 1.0; its curvature 2a now scales the step."""
    system = System(id="one-compression", modules=[CompressionModule(id="c", a=1.0, b=0.0, target=0.6, eta0=0.3)])
    result, events = _run(system, RelaxConfig(steps=1, step_size=1.0, direction=DirectionConfig(precondition=True)))
    assert _frames(events)[1][0] == pytest.approx(0.6)
    assert _of(events, "StepCommitted")[1].accepted


# --------------------------------------------------------------------------- projected Armijo

def _armijo_holds_on_every_accepted_step(system, config, events):
    cs = compile_system(system)
    frames = _frames(events)
    previous = frames[0]
    for s in _of(events, "StepCommitted")[1:]:
        if s.accepted:
            e0, g = energy_and_gradient(cs, previous)
            assert s.energy <= e0 - config.armijo_c * float(g @ (previous - frames[s.step])) + 1e-15, s
            previous = frames[s.step]
        else:
            assert s.step not in frames


def test_armijo_with_normalised_directions_near_the_optimum_does_not_end_early():
    """normalised steps near the optimum made every backtrack fail; the fallback took the step and the run ended."""
    system = standard_system(12, seed=3)
    best = relax(system, RelaxConfig(solver="lbfgsb", steps=200, tol=1e-12, eta0="uniform"), seed=1)
    start = np.clip(best.eta + 1e-3 * np.random.default_rng(0).standard_normal(12), 0, 1)
    config = RelaxConfig(steps=300, step_size=0.05, line_search="armijo", eta0=tuple(start.tolist()),
                         direction=DirectionConfig(normalize=True))
    result, events = _run(system, config)
    assert result.status == "converged"
    assert result.energy <= best.energy + 1e-12 * abs(best.energy)
    _armijo_holds_on_every_accepted_step(system, config, events)
    committed = _of(events, "StepCommitted")
    assert all(s.backtracks > 0 for s in committed[-3:])  # the step did shrink as the gradient vanished


def test_a_failed_armijo_search_is_rejected_and_not_repeated():
    """After a failed search the next one starts below its last trial: at the floor the run stalls, never spins."""
    system = _graph()
    config = RelaxConfig(steps=400, step_size=1.0, line_search="armijo", tol=1e-12, max_backtracks=5)
    result, events = _run(system, config)
    committed = _of(events, "StepCommitted")
    failed = [s for s in committed if s.reason == "armijo_failed"]
    assert failed and all(not s.accepted for s in failed)
    for a, b in zip(committed, committed[1:]):
        if a.reason == "armijo_failed" and b.reason == "armijo_failed":
            assert b.step_size < a.step_size  # never the same failing proposal again
    assert result.status == "stalled" and result.steps < 400
    assert result.energy == pytest.approx(_reference_energy("graph"), rel=1e-12)
    _armijo_holds_on_every_accepted_step(system, config, events)


# --------------------------------------------------------------------------- stability: the bound, the cap, the margin

def _dense_hessian(cs, x, h=1e-6):
    n = cs.n
    out = np.zeros((n, n))
    for k in range(n):
        e = np.zeros(n)
        e[k] = h
        out[:, k] = (energy_and_gradient(cs, x + e)[1] - energy_and_gradient(cs, x - e)[1]) / (2 * h)
    return (out + out.T) / 2


def _every_kind() -> System:
    return System(
        id="every-kind",
        modules=[LandauModule(id="a", a=-1.0, b=1.0, h=0.1), LandauModule(id="b", a=0.5, b=0.7),
                 GateModule(id="g", a=0.3, b=0.2), CompressionModule(id="c", a=1.0, b=0.5, target=0.3),
                 SequenceModule(id="s", alpha=0.5, beta=0.4), PolynomialModule(id="p", coeffs=(0.1, -0.3, 0.5, 0.2)),
                 NashModule.prisoners_dilemma("n", a=0.5, b=0.3)],
        couplings=[QuadraticCoupling(id="ab", i="a", j="b", weight=0.8),
                   DirectedHingeCoupling(id="bc", i="b", j="c", weight=1.2),
                   AsymmetricHingeCoupling(id="cs", i="c", j="s", alpha=1.5, beta=0.7),
                   GateBenefitCoupling(id="gb", i="g", j="a", delta=0.4),
                   DampedGateBenefitCoupling(id="dg", i="g", j="p", delta=-0.6, eta_power=3.0),
                   QuadraticCoupling(id="pn", i="p", j="n", weight=2.0),
                   QuadraticCoupling(id="an", i="a", j="n", weight=0.5)],
        family_weights={"quadratic": 1.5, "landau": 0.8})


def test_gershgorin_bound_holds_for_the_true_hessian_everywhere_in_the_box():
    """L bounds the spectral radius at any point of the box, not just the current one."""
    cs = compile_system(_every_kind())
    rows = lipschitz_rows(cs)
    rng = np.random.default_rng(1)
    points = [rng.uniform(0.01, 0.99, cs.n) for _ in range(40)] + [np.full(cs.n, 0.99), np.full(cs.n, 0.01)]
    radius = max(float(np.max(np.abs(np.linalg.eigvalsh(_dense_hessian(cs, x))))) for x in points)
    assert radius <= rows.lipschitz
    # and each row bounds that row's absolute Hessian sum at those points
    for x in points[:10]:
        assert np.all(np.abs(_dense_hessian(cs, x)).sum(axis=1) <= rows.total + 1e-6)
    # the local curvature at one point is not a bound: L at the box's worst point is larger
    assert rows.lipschitz > float(np.max(np.abs(hessian_diagonal(cs, np.full(cs.n, 0.3)))))


@pytest.mark.parametrize("solver", ["projected_gradient", "accelerated"])
def test_step_is_capped_at_a_fraction_of_two_over_l_and_the_margin_is_recorded(solver):
    system = standard_system(12, seed=3)
    lipschitz = lipschitz_rows(compile_system(system)).lipschitz
    config = RelaxConfig(solver=solver, steps=30, step_size=5.0, eta0="uniform",
                         stability=StabilityConfig(cap_fraction=0.6))
    result, events = _run(system, config, seed=1)
    bounded = _of(events, "StabilityBounded")
    assert len(bounded) == 1 and bounded[0].lipschitz == lipschitz
    cap = bounded[0].step_cap
    assert cap == pytest.approx(0.6 * 2 / lipschitz, rel=1e-15)
    steps = _of(events, "StepCommitted")[1:]
    assert all(s.step_size <= cap for s in steps) and any(s.step_size == cap for s in steps)
    assert all(s.diagnostics["margin"] == pytest.approx(2 / lipschitz - s.step_size, rel=1e-12) for s in steps)
    assert all(s.accepted for s in steps)  # below 2/L gradient steps are descent steps
    assert not _of(events, "MarginWarning")
    if solver == "projected_gradient":  # without the guard α = 5 overshoots and is rejected
        unguarded, events = _run(system, config.evolve(stability=None), seed=1)
        assert not _of(events, "StepCommitted")[1].accepted


def test_margin_warning_appears_exactly_when_the_margin_is_below_its_threshold():
    # homotopy raises the coupling scale, so L grows and the margin 2/L − α shrinks during the run
    system = standard_system(12, seed=3)
    full = lipschitz_rows(compile_system(system)).lipschitz
    warn = 0.1 * 2 / full * 1.5  # between the margin at the start (small L) and at full strength
    config = RelaxConfig(steps=30, step_size=5.0, eta0="uniform",
                         stability=StabilityConfig(cap_fraction=0.9, warn_margin=warn),
                         homotopy=HomotopyConfig(steps=10, coupling_start=0.1))
    result, events = _run(system, config, seed=1)
    lipschitz, margins, warnings = math.nan, {}, {}
    for e in events:
        if e.type == "StabilityBounded":
            lipschitz = e.lipschitz
            assert e.step_cap == pytest.approx(0.9 * 2 / lipschitz, rel=1e-15)
        elif e.type == "StepCommitted" and e.step > 0:
            assert e.step_size <= 0.9 * 2 / lipschitz * (1 + 1e-15)
            assert e.diagnostics["margin"] == pytest.approx(2 / lipschitz - e.step_size, rel=1e-12)
            margins[e.step] = e.diagnostics["margin"]
        elif e.type == "MarginWarning":
            warnings[e.step] = e
            assert e.threshold == warn and e.margin == margins[e.step] and e.lipschitz == lipschitz
    assert set(warnings) == {k for k, m in margins.items() if m < warn}
    assert warnings and len(warnings) < len(margins)
    assert len(_of(events, "StabilityBounded")) > 5  # the bound follows the objective as it is re-scaled


def test_coupling_target_caps_the_couplings_and_changes_the_result():
    system = _every_kind()
    rows = lipschitz_rows(compile_system(system))
    kinds = {"quadratic", "directed_hinge", "asymmetric_hinge", "gate_benefit", "damped_gate_benefit"}
    local = max(sum(r for k, r in rows.rows.items() if k not in kinds))
    target = (local + rows.lipschitz) / 2
    base = RelaxConfig(steps=60, step_size=0.02, stability=StabilityConfig())
    capped, events = _run(system, base.evolve(stability=StabilityConfig(coupling_target=target)))
    (event,) = _of(events, "CouplingsCapped")
    assert 0 < event.scale < 1 and event.target == target
    assert event.lipschitz_before == rows.lipschitz and event.lipschitz_after <= target + 1e-12
    assert _of(events, "StabilityBounded")[0].lipschitz == event.lipschitz_after
    uncapped, events = _run(system, base)
    assert not _of(events, "CouplingsCapped")
    assert capped.energy != pytest.approx(uncapped.energy, rel=1e-6)
    # a target at or above L changes nothing
    same, events = _run(system, base.evolve(stability=StabilityConfig(coupling_target=rows.lipschitz)))
    assert not _of(events, "CouplingsCapped") and same.energy == uncapped.energy
    # a target below the module terms' own bound cannot be reached by scaling couplings
    with pytest.raises(InvalidEntityError) as info:
        relax(system, base.evolve(stability=StabilityConfig(coupling_target=local * 0.9)))
    assert info.value.field == "coupling_target"
