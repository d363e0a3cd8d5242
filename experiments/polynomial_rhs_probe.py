"""Polynomial right-hand-side probe: can the dynamics η̇ = −E′(η) be recovered from samples of the RHS?

The energy is E(η) = Σ c_k P_k(ξ), ξ = 2η − 1 (the seed's c = [0, 0, 0.3, 0, 0.1]).
Its right-hand side −E′ is sampled on ``samples`` grid points of [0, 1], plus
N(0, σ²) noise for each σ of ``noises``, and fitted by least squares in a
degree-``degree`` basis (Legendre, or the APC basis of the grid's ξ). Integrating
the fitted RHS gives a fitted energy (constant chosen so that it equals E at η₀),
written as a Legendre ``PolynomialModule``. Seed s draws its own start η₀ (uniform
in [0.1, 0.9]) and its own noise; the true energy and each fitted one are relaxed
from η₀ by the same fixed steps (explicit Euler with the coordinator's acceptance
test) until converged, and compared through ``v_eta``.

Theory. Without noise the fit is exact whenever −E′ lies in the fitting space
(degree ≥ deg E − 1), so the trajectories agree to rounding. With noise the fitted
RHS errs at η by e(η) = x(η)ᵀ(XᵀX)⁻¹Xᵀε, of variance σ²·x(η)ᵀ(XᵀX)⁻¹x(η) (X the
design matrix, x(η) its row at η); to first order the fitted fixed point moves by
δ = e(η*)/E''(η*), so over seeds δ has mean 0 and sd σ·√(x*ᵀ(XᵀX)⁻¹x*)/E''(η*).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, PolynomialModule, RelaxConfig, System, apc_basis, legendre_monomials

from ._evidence import check, convergence, stat, verdict_of
from ._framework import Job, Progress, Study, eta_traces, fmt, relax_all, result, row, stat_metrics


class RhsProbeConfig(AbstractFrozen):
    """The seed's ``polynomial_rhs_probe`` fit, over seeds (each its own start and noise) and noise levels."""

    coeffs: tuple[float, ...] = Field((0.0, 0.0, 0.3, 0.0, 0.1), min_length=1, description="Legendre energy coefficients")
    degree: int = Field(4, ge=1, le=11, description="degree of the RHS fit")
    basis: Literal["legendre", "apc"] = Field("legendre", description="basis of the fit")
    samples: int = Field(25, ge=2, description="grid points of the RHS")
    noises: tuple[float, ...] = Field((0.0, 0.05), min_length=1, description="std of the Gaussian noise on the sampled "
                                                                           "RHS, one cell each")
    seeds: int = Field(10, ge=1, description="seeds; seed s draws its start η₀ and its noise")
    steps: int = Field(1000, ge=1, description="step cap per relaxation (a run stops once converged)")
    step_size: float = Field(0.1, gt=0, description="fixed step size")
    tol: float = Field(1e-8, gt=0, description="a run has converged when its projected-gradient norm is below this")
    tolerance: float = Field(1e-6, gt=0, description="largest noise-free trajectory gap that counts as reproduced")
    spread: float = Field(0.5, gt=0, lt=1, description="largest relative miss of the fixed-point sd against its "
                                                       "closed form that counts as agreement")


RULE = ("held: without noise every seed's trajectory gap ≤ tolerance, and at each noise σ > 0 the sd over seeds of "
        "the fitted fixed point's error is within ±spread (relative) of σ·√(x*ᵀ(XᵀX)⁻¹x*)/E''(η*); did not hold "
        "otherwise")


def start(seed: int) -> float:
    """The starting η of ``seed``: uniform in [0.1, 0.9] from the seed's own generator."""
    return float(np.random.default_rng([seed, 5]).uniform(0.1, 0.9))


def design(config: RhsProbeConfig, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X, T): the fit's design matrix at ``eta`` and T with X = V(ξ)·Tᵀ, i.e. basis function n = Σ_p T[n, p] ξ^p."""
    grid = np.linspace(0.0, 1.0, config.samples)
    d = config.degree
    if config.basis == "legendre":
        to_monomial = np.array([legendre_monomials(np.eye(d + 1)[k]).tolist() + [0.0] * (d - k) for k in range(d + 1)])
    else:
        to_monomial = apc_basis(2 * grid - 1, d)  # φ_n(ξ) = Σ_p B[n, p] ξ^p, orthonormal on the grid
    return np.vander(2 * eta - 1, d + 1, increasing=True) @ to_monomial.T, to_monomial


def fitted_energy(config: RhsProbeConfig, true: PolynomialModule, eta0: float, noise: np.ndarray) -> PolynomialModule:
    """The energy whose −E′ is the least-squares fit of the sampled (noisy) RHS, equal to E at ``eta0``."""
    mono = np.asarray(true.monomial)
    grid = np.linspace(0.0, 1.0, config.samples)
    X, to_monomial = design(config, grid)
    fit, *_ = np.linalg.lstsq(X, -derivative(mono, grid) + noise, rcond=None)
    rhs_mono = fit @ to_monomial  # fitted RHS in powers of ξ
    # E_fit'(η) = −rhs(ξ) and d/dη = 2 d/dξ, so E_fit(ξ) = −½ ∫ rhs dξ: m_{p+1} = −r_p / (2 (p + 1))
    energy_mono = np.concatenate([[0.0], -rhs_mono / (2 * np.arange(1, rhs_mono.size + 1))])
    xi0 = 2 * eta0 - 1
    energy_mono[0] = float(np.polyval(mono[::-1], xi0) - np.polyval(energy_mono[::-1], xi0))
    return PolynomialModule(id="energy", coeffs=tuple(np.polynomial.legendre.poly2leg(energy_mono).tolist()), eta0=eta0)


def derivative(mono: np.ndarray, eta: np.ndarray, order: int = 1) -> np.ndarray:
    """dᵏE/dηᵏ of E = Σ_p m_p ξ^p at ``eta`` (ξ = 2η − 1)."""
    return 2.0 ** order * np.polynomial.polynomial.polyval(2 * eta - 1, np.polynomial.polynomial.polyder(mono, order))


def interior_minimum(mono: np.ndarray) -> float | None:
    """η* of the lowest interior minimum of E on (0, 1), or None when E is lowest at an end.

    >>> interior_minimum(np.array([0.0, 0.0, 1.0]))   # E = ξ²: minimum at ξ = 0
    0.5
    """
    roots = np.polynomial.polynomial.polyroots(np.polynomial.polynomial.polyder(mono)) if mono.size > 2 else []
    candidates = [(float(r.real) + 1) / 2 for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and -1 < r.real < 1]
    candidates = [x for x in candidates if derivative(mono, np.array([x]), 2)[0] > 0]
    energy = lambda x: float(np.polynomial.polynomial.polyval(2 * x - 1, mono))  # noqa: E731
    if not candidates or min(map(energy, candidates)) > min(energy(0.0), energy(1.0)):
        return None
    return min(candidates, key=energy)


def predicted_sd(config: RhsProbeConfig, mono: np.ndarray, noise: float) -> float | None:
    """σ·√(x*ᵀ(XᵀX)⁻¹x*)/E''(η*): the sd over seeds of the fitted fixed point's error, to first order in σ."""
    star = interior_minimum(mono)
    if star is None:
        return None
    X, _ = design(config, np.linspace(0.0, 1.0, config.samples))
    x = design(config, np.array([star]))[0][0]
    return float(noise * np.sqrt(x @ np.linalg.pinv(X.T @ X) @ x) / derivative(mono, np.array([star]), 2)[0])


def run(config: RhsProbeConfig, store, progress: Progress | None = None):
    true = PolynomialModule(id="energy", coeffs=config.coeffs)
    mono = np.asarray(true.monomial)
    relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, tol=config.tol)
    jobs, cells = [], []
    for seed in range(config.seeds):
        eta0 = start(seed)
        z = np.random.default_rng([seed, 3]).standard_normal(config.samples)
        modules = [("true", None, PolynomialModule(id="energy", coeffs=config.coeffs, eta0=eta0))]
        modules += [("fit", sigma, fitted_energy(config, true, eta0, sigma * z)) for sigma in config.noises]
        for energy, sigma, module in modules:
            jobs.append(Job(system=System(id=f"rhs-probe-{energy}", modules=[module]), config=relax_config, seed=seed,
                            labels={"energy": energy, "noise": sigma}))
            cells.append((seed, energy, sigma))
    run_ids = relax_all("polynomial_rhs_probe", jobs, store, progress)
    run_of = dict(zip(cells, run_ids))
    etas = eta_traces(store, run_ids)
    trace = {r: {} for r in run_ids}
    for r, step, _, eta in etas.iter_rows():
        trace[r][step] = eta

    rows, by_noise = [], {}
    for sigma in config.noises:
        for seed in range(config.seeds):
            a, b = trace[run_of[(seed, "true", None)]], trace[run_of[(seed, "fit", sigma)]]
            common = sorted(set(a) & set(b))
            gap = max(abs(a[s] - b[s]) for s in common)
            final_true, final_fit = a[max(a)], b[max(b)]
            by_noise.setdefault(sigma, []).append((gap, final_fit - final_true))
            rows.append(row(noise=sigma, seed=seed, eta0=start(seed), eta_final_true=final_true,
                            eta_final_fit=final_fit, delta=final_fit - final_true, trajectory_gap=gap,
                            steps_true=max(a), steps_fit=max(b)))

    checks, ok, metrics, parts = [], True, {}, []
    for sigma, pairs in by_noise.items():
        gaps, deltas = stat([g for g, _ in pairs]), stat([d for _, d in pairs])
        tag = f"{sigma:g}"
        metrics |= stat_metrics(f"gap_{tag}", gaps) | stat_metrics(f"delta_{tag}", deltas)
        if sigma == 0:
            worst = max(g for g, _ in pairs)
            ok &= worst <= config.tolerance
            checks.append(check("noise-free trajectory gap (exact fit when degree ≥ deg E − 1)", 0.0, gaps,
                                tol=config.tolerance))
            parts.append(f"σ = 0: trajectory gap {gaps} (max {worst:.1e})")
            continue
        sd = predicted_sd(config, mono, sigma)
        metrics[f"delta_sd_predicted_{tag}"] = sd
        agrees = sd is not None and deltas.sd is not None and abs(deltas.sd - sd) <= config.spread * sd
        ok &= agrees
        checks.append(check(f"sd of the fixed point's error at σ = {tag}, σ·√(x*ᵀ(XᵀX)⁻¹x*)/E''(η*)", sd,
                            f"{fmt(deltas.sd, '.3g')} (n={deltas.n})", agrees=agrees))
        checks.append(check(f"mean of the fixed point's error at σ = {tag} (unbiased to first order)", 0.0, deltas,
                            agrees=deltas.lo is not None and deltas.lo <= 0.0 <= deltas.hi))
        parts.append(f"σ = {tag}: fixed-point error η_fit − η_true {deltas}, predicted sd {fmt(sd, '.3g')}; "
                     f"trajectory gap {gaps}")
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of("held" if ok else "did not hold", converged)
    d = config.degree
    return result(
        "polynomial_rhs_probe", config,
        hypothesis=f"a degree-{d} least-squares fit of the RHS −E′ from {config.samples} samples reproduces the "
                   f"relaxation trajectory without noise (max |η_true − η_fit| ≤ {config.tolerance:g}) and, with "
                   "noise, moves the fixed point by the error that linear regression predicts",
        measured="; ".join(parts) + f"; {converged} (cap {config.steps} steps)",
        verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="not logged; a re-run of the seed: fit coeffs [0, −2.4, 0, −1.4, 0], abs error 0, "
                    "η 0.464925, E −0.112120 after 40 steps of 0.05 from η₀ = 0.3, both monotone",
        notes="With noise = 0 the fit is exact by construction: −E′ of a degree-4 energy is a cubic, inside the "
              "fitting space, so that cell only confirms the least-squares machinery (numpy's lstsq, not the "
              "seed's hand-written elimination without pivoting); a lower --degree makes it fail. The noisy cells "
              "test the first-order error propagation of the fit into the fixed point; it is exact as σ → 0, and at σ = 0.05 "
              "the cubic term of E′ already pulls large errors back (a Monte Carlo of the fit alone gives sd 0.027 "
              "against the first-order 0.031), hence the ±spread band. Seeds vary the start and "
              "the noise draw (the same draw, scaled, at every σ); runs go to convergence instead of the seed's 40 "
              "steps, which stopped at η = 0.4649 short of η* = 0.5.",
        metrics={"eta_star": interior_minimum(mono), "converged": converged.converged, **metrics},
        rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """The fitted fixed point's error per seed at each noise, beside its closed-form ±1.96 sd band; the trajectory
    gaps."""
    import matplotlib.pyplot as plt

    noises = list(dict.fromkeys(r["noise"] for r in result.rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, sigma in enumerate(noises):
        cell = [r for r in result.rows if r["noise"] == sigma]
        left.plot([i] * len(cell), [r["delta"] for r in cell], "o", ms=4, alpha=0.7)
        sd = result.metrics.get(f"delta_sd_predicted_{sigma:g}")
        if sd:
            left.fill_between([i - 0.3, i + 0.3], -1.96 * sd, 1.96 * sd, color="0.85", zorder=0,
                              label="closed form ±1.96 sd" if i == len(noises) - 1 else None)
        right.semilogy([r["seed"] for r in cell], [max(r["trajectory_gap"], 1e-17) for r in cell], "o-", ms=4,
                       label=f"σ = {sigma:g}")
    left.set_xticks(range(len(noises)), [f"σ = {s:g}" for s in noises])
    left.axhline(0.0, color="0.5", linewidth=0.8)
    left.set(ylabel="η*_fit − η*_true", title=f"fixed point of the fitted dynamics ({result.seeds} seeds)")
    left.legend(fontsize="small")
    right.axhline(result.config["tolerance"], color="0.5", linestyle="--", label="tolerance")
    right.set(xlabel="seed", ylabel="max |η_true − η_fit| over the run", title="trajectory gap")
    right.legend(fontsize="small")
    return {"fixed_point_and_gap": fig}


STUDY = Study("polynomial_rhs_probe", "recover η̇ = −E′ from samples of the right-hand side", RhsProbeConfig, run,
              figures)
