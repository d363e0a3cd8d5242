"""Landau plot: draw f(η) = aη² + bη⁴ and mark where relaxation settles, from many starts.

The curve is evaluated on ``num`` points of [eta_min, eta_max] with the
``LandauModule`` formula; for a < 0 it is a symmetric double well with minima
at ±√(−a/2b) and depth −a²/4b. Seed s relaxes a ``LandauModule`` from its own
η₀, drawn uniformly in [0.05, 1] (on the box [0, 1] only the positive well
exists; η = 0 is a stationary point), by fixed-step projected gradient until
the projected-gradient norm is below ``tol``. Near the minimum the error
contracts by 1 − lr·f''(η*) per step, with f''(η*) = 2a + 12bη*² (= −4a for
a < 0): the measured contraction is printed beside that closed form. The figure
(``figures``) is the curve with the closed-form minima, each seed's start and
its relaxed η, and the contraction per seed; ``cfc experiment`` writes it.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, LandauModule, RelaxConfig, System

from ._evidence import check, convergence, stat, verdict_of
from ._framework import (Job, Progress, Study, by_run, eta_table, eta_traces, final_eta, fmt, relax_all, result, row,
                         run_summaries, stat_metrics)


class LandauPlotConfig(AbstractFrozen):
    """The seed's ``examples/landau_plot`` curve, with relaxations from a start drawn by each seed."""

    a: float = Field(-0.5, description="quadratic coefficient")
    b: float = Field(1.0, gt=0, description="quartic coefficient")
    eta_min: float = Field(-1.0, description="left end of the curve")
    eta_max: float = Field(1.0, description="right end of the curve")
    num: int = Field(400, ge=3, description="points on the curve")
    seeds: int = Field(10, ge=1, description="relaxations; seed s starts from η₀ drawn uniformly in [0.05, 1]")
    steps: int = Field(2000, ge=1, description="step cap per relaxation (a run stops once converged)")
    step_size: float = Field(0.1, gt=0, description="fixed step size")
    tol: float = Field(1e-10, gt=0, description="a run has converged when its projected-gradient norm is below this")
    tolerance: float = Field(1e-6, gt=0, description="largest |η − η*| that counts as agreement")


RULE = ("held: every seed's relaxed η is within the tolerance of √(−a/2b) (0 for a ≥ 0) and the curve's grid minimum "
        "lies within one grid spacing of ±√(−a/2b); did not hold otherwise")


def minimum(a: float, b: float) -> tuple[float, float, float]:
    """(η*, f(η*), f''(η*)) of aη² + bη⁴ on [0, 1] (for b > 0 and −a/2b ≤ 1).

    >>> minimum(-0.5, 1.0)
    (0.5, -0.0625, 2.0)
    >>> minimum(0.5, 1.0)
    (0.0, 0.0, 1.0)
    """
    star = math.sqrt(-a / (2 * b)) if a < 0 else 0.0
    return star, a * star ** 2 + b * star ** 4, 2 * a + 12 * b * star ** 2


def start(seed: int) -> float:
    """The starting η of ``seed``: uniform in [0.05, 1] from the seed's own generator."""
    return float(np.random.default_rng([seed, 11]).uniform(0.05, 1.0))


def landau(a: float, b: float, eta: np.ndarray) -> np.ndarray:
    """f(η) by the ``LandauModule`` formula."""
    params = {"a": np.full(eta.size, a), "b": np.full(eta.size, b), "h": np.zeros(eta.size)}
    return LandauModule.energy_grad(np, eta, params)[0]


def curve(c: dict) -> tuple[np.ndarray, np.ndarray]:
    """(η, f(η)) on the plotted grid of a config (as a dict: the figure draws from the stored result)."""
    eta = np.linspace(c["eta_min"], c["eta_max"], c["num"])
    return eta, landau(c["a"], c["b"], eta)


def contraction(trace: list[tuple[int, float]], star: float, lo: float = 1e-8, hi: float = 1e-3) -> float | None:
    """The mean per-step ratio |η_{k+1} − η*| / |η_k − η*| while the error lies in [lo, hi] (None: too few steps).

    >>> round(contraction([(k, 0.5 + 1e-3 * 0.8 ** k) for k in range(60)], 0.5), 6)
    0.8
    """
    inside = [(k, abs(x - star)) for k, x in trace if lo <= abs(x - star) <= hi]
    if len(inside) < 3 or inside[-1][0] == inside[0][0]:
        return None
    (k0, e0), (k1, e1) = inside[0], inside[-1]
    return (e1 / e0) ** (1.0 / (k1 - k0))


def run(config: LandauPlotConfig, store, progress: Progress | None = None):
    star, depth, curvature = minimum(config.a, config.b)
    relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, tol=config.tol)
    starts = [start(s) for s in range(config.seeds)]
    jobs = [Job(system=System(id="landau-plot", modules=[LandauModule(id="m", a=config.a, b=config.b, eta0=eta0)]),
                config=relax_config, seed=s, labels={"start": eta0}) for s, eta0 in enumerate(starts)]
    run_ids = relax_all("landau_plot", jobs, store, progress)
    finals = eta_table(final_eta(store, run_ids))
    summary = by_run(run_summaries(store, run_ids))
    traces = eta_traces(store, run_ids)
    relaxed = [finals[r]["m"] for r in run_ids]
    energies = [summary[r]["final_energy"] for r in run_ids]
    rates = []
    for r in run_ids:
        trace = traces.filter(traces["run_id"] == r).select("step", "eta").rows()
        rates.append(contraction(trace, star))

    eta, f = curve(config.model_dump())
    spacing = (config.eta_max - config.eta_min) / (config.num - 1)
    k = int(np.argmin(f))
    grid_min = float(eta[k])
    asymmetry = float(np.abs(f - landau(config.a, config.b, -eta)).max())
    errors = [abs(x - star) for x in relaxed]
    grid_ok = abs(abs(grid_min) - star) <= spacing
    outcome = "held" if grid_ok and max(errors) <= config.tolerance else "did not hold"
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of(outcome, converged)
    eta_s, energy_s, rate_s = stat(relaxed), stat(energies), stat([r for r in rates if r is not None])
    rate = 1 - config.step_size * curvature
    checks = [
        check("η*, √(−a/2b) (0 for a ≥ 0)", star, eta_s, tol=config.tolerance),
        check("depth f(η*), −a²/4b (0 for a ≥ 0)", depth, energy_s, tol=1e-9),
        check("grid minimum |η|, within one spacing of η*", star, abs(grid_min), tol=spacing),
        check("max |f(η) − f(−η)| on the grid (f is even)", 0.0, asymmetry, tol=1e-12),
        check("contraction per step near η*, 1 − lr·f''(η*)", rate, rate_s, tol=1e-3),
    ]
    measured = (f"relaxed η {eta_s} (max |η − η*| {max(errors):.1e}); final f {energy_s}; contraction per step "
                f"{rate_s}; grid minimum at η = {grid_min:+.4f} (spacing {spacing:.2g}), f = {float(f[k]):.5f}; "
                f"{converged} (cap {config.steps} steps)")
    return result(
        "landau_plot", config,
        hypothesis=f"f = aη² + bη⁴ (a = {config.a:g}, b = {config.b:g}) has its minima at ±√(−a/2b) = ±{star:.4g} "
                   f"with depth −a²/4b = {depth:.4g} (one minimum at 0 for a ≥ 0), and relaxation from any start in "
                   "(0, 1] settles in the positive well",
        measured=measured, verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="the seed's example drew the curve only (double well for a < 0, no numbers); the single-seed "
                    "version relaxed from 0.05, 0.3 and 0.9 (200 steps) to η = 0.500000",
        notes="The curve and its minima are exact; the seeds vary the start of the relaxation. The figure is drawn "
              "from the result (the curve from a and b, the marks from the rows) and written by `cfc experiment` "
              "(--figures DIR); the study writes no file itself. η = 0 is a stationary point of the double well, "
              "so a start at 0 would stay there: starts are drawn from [0.05, 1].",
        metrics={"eta_star": star, "depth": depth, "curvature": curvature, "rate_predicted": rate,
                 "grid_min_eta": grid_min, "grid_min_f": float(f[k]), "max_error": max(errors),
                 "converged": converged.converged, **stat_metrics("eta", eta_s), **stat_metrics("rate", rate_s)},
        rows=[row(seed=s, start=x0, eta_final=x, error=e, energy_final=en, steps=summary[r]["steps"], contraction=c)
              for s, (r, x0, x, e, en, c) in enumerate(zip(run_ids, starts, relaxed, errors, energies, rates))],
        run_ids=run_ids)


def figures(result) -> dict:
    """The double well with its closed-form minima, each seed's start and relaxed η; the contraction per seed."""
    import matplotlib.pyplot as plt

    c = result.config
    eta, f = curve(c)
    star, depth = result.metrics["eta_star"], result.metrics["depth"]
    fig, (ax, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    ax.plot(eta, f, linewidth=1.8, label="f(η) = aη² + bη⁴")
    ax.axvspan(0.0, 1.0, color="grey", alpha=0.08, label="the box [0, 1]")
    for x in {star, -star}:
        ax.axvline(x, color="0.5", linestyle="--", linewidth=0.8)
    ax.axhline(depth, color="0.5", linestyle=":", linewidth=0.8, label=f"closed form: ±{star:.3g}, depth {depth:.3g}")
    energy = lambda x: c["a"] * x * x + c["b"] * x ** 4  # noqa: E731
    starts = [r["start"] for r in result.rows]
    finals = [r["eta_final"] for r in result.rows]
    ax.scatter(starts, [energy(x) for x in starts], facecolors="none", edgecolors="0.3", s=25,
               label=f"starts ({len(starts)} seeds)")
    ax.scatter(finals, [energy(x) for x in finals], color="crimson", zorder=3, s=20, label="relaxed η")
    ax.set(xlabel="η", ylabel="f(η)", title=f"a = {c['a']:g}, b = {c['b']:g}")
    ax.legend(fontsize="small")
    rates = [(r["seed"], r["contraction"]) for r in result.rows if r["contraction"] is not None]
    right.axhline(result.metrics["rate_predicted"], color="0.5", label="1 − lr·f''(η*)")
    right.plot([s for s, _ in rates], [x for _, x in rates], "o", ms=4, label="measured")
    right.set(xlabel="seed", ylabel="|η − η*| ratio per step", title="contraction near η*")
    right.ticklabel_format(axis="y", useOffset=False)
    right.legend(fontsize="small")
    return {"double_well": fig}


STUDY = Study("landau_plot", "the Landau double well, drawn, with relaxations from many starts", LandauPlotConfig, run,
              figures)
