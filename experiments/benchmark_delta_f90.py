"""The ΔF90 benchmark: solver presets on the seed's dense (and baseline) scenario, on one fixed objective.

Each seed draws a starting η uniform in [0, 1] (the same for every preset of that seed), and every
preset relaxes from it to convergence (capped). Presets with a weighting change the objective
while they run, so their recorded energies, and a ΔF90 read from them, are of a moving objective,
each against its own minimum. Here every recorded state (``v_eta``) is evaluated on the System's
own, fixed objective and measured against a target common to all presets of a seed: with
E₀ the starting energy and E_best the lowest fixed-objective energy any preset reached from it,
ΔF_q is the first step with E_k ≤ E₀ − q·(E₀ − E_best) (q = 0.9, 0.99) and "to best" the first
step with E_k ≤ E_best + 1e-6·(E₀ − E_best). The returned state (``RunFinished.best_step``) is
evaluated on the same objective. Wall time (rows only; it varies with the machine) is the median
of ``repeats`` unrecorded runs of seed 0 (``events.NullStore``; none by default).

Scenarios (the seed's harness): **baseline**, two gates (seq: gain 0, cost
0.1, a 0.2, b 0.3; gate: gain 0.1, cost 0.05, a 0.25, b 0.35), a quadratic
coupling 0.7 and a gate benefit 0.8 with Δ = 0.08 (E₀ = 0.213087 at the measured start); **dense**
(n), n gates (a 0.15, b 0.05, gain 0.02·(i mod 5), cost 0.1) on a ring of
quadratic couplings 0.6, skip couplings (i, i+2) 0.3 and gate benefits
(i+1 → i) 0.4 with Δ = 0.05 (E₀ = 0.343396 for n = 16 at the measured start).

Theory (dense): every term is convex on the box, so the minimum is unique; every gate is pulled
by one benefit w·Δ = 0.02, so the uniform η that minimises aη² + bη⁴ − w·Δ·η for one gate leaves
every spring at zero and is the minimum: E* = n·min_η(aη² + bη⁴ − w·Δ·η) (−0.010651 for n = 16).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from complexity_from_constraints.entities import (
    AbstractFrozen,
    AdmmConfig,
    AgmPhaseWeighting,
    DirectionConfig,
    GateBenefitCoupling,
    GateModule,
    GradNormWeighting,
    ProximalConfig,
    QuadraticCoupling,
    RelaxConfig,
    SmallGainWeighting,
    StabilityConfig,
    System,
)
from complexity_from_constraints.events import NullStore
from complexity_from_constraints.projectors import relax

from ._evidence import check, compare, convergence, share, stat, verdict_of
from ._framework import (
    Job,
    Progress,
    Study,
    by_run,
    first_step_at_or_below,
    fixed_energy_traces,
    relax_all,
    result,
    returned_eta,
    row,
    run_summaries,
    stat_metrics,
)

_NORMALIZED = dict(line_search="armijo", direction=DirectionConfig(normalize=True))

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "analytic": ("projected gradient, fixed step (the seed's default / analytic)", {}),
    "vect": ("projected gradient, Armijo, normalised directions", dict(_NORMALIZED)),
    "accelerated": ("FISTA-style accelerated gradient with restarts", dict(solver="accelerated")),
    "coord": ("Gauss–Southwell coordinate descent", dict(solver="coordinate")),
    "adaptive": ("gradient steps, a coordinate step on stalls; Armijo", dict(solver="adaptive", line_search="armijo")),
    "prox": ("operator splitting, pair proxes, τ = 0.05", dict(solver="proximal", proximal=ProximalConfig(tau=0.05))),
    "prox_star": ("operator splitting, star proxes, τ = 0.05",
                  dict(solver="proximal", proximal=ProximalConfig(tau=0.05, block="star"))),
    "admm": ("ADMM, ρ = 1, η-step 0.05", dict(solver="admm", admm=AdmmConfig(rho=1.0, step_size=0.05))),
    "gradnorm": ("vect + GradNorm weighting", dict(_NORMALIZED, weighting=GradNormWeighting())),
    "agm": ("vect + AGM phase weighting", dict(_NORMALIZED, weighting=AgmPhaseWeighting())),
    "smallgain": ("vect + SmallGain weighting + stability cap", dict(_NORMALIZED, weighting=SmallGainWeighting(),
                                                                   stability=StabilityConfig())),
    "lbfgsb": ("scipy L-BFGS-B with bounds (reference)", dict(solver="lbfgsb")),
}

# The seed's re-run at HEAD (what the seed's own code gave when run again at its last commit), ΔF90 (energy_final), keyed by
# (preset, scenario, dense size or None, steps): the baseline and dense n=16 at 60 steps, dense n=32 at 80.
_SEED_60 = {
    "analytic": ("22 (−0.000385)", "40 (+0.018582)"), "vect": ("9 (−0.002507)", "17 (−0.010650)"),
    "coord": ("18 (+0.003431)", "45 (+0.146901)"), "adaptive": ("25 (−0.001886)", "64 (+0.013016)"),
    "prox": ("18 (−0.000407)", "38 (+0.018580)"), "prox_star": ("10 (−0.002393)", "12 (−0.010649)"),
    "gradnorm": ("10 (−0.005014)", "20 (−0.021296)"), "agm": ("9 (−0.002399)", "17 (−0.012169)"),
    "smallgain": ("9 (−0.020204)", "12 (−0.094778)"), "admm": ("17 (−0.001529)", "37 (+0.009136)"),
}
_SEED_DENSE32_80 = {
    "vect": "24 (−0.021302)", "prox": "38 (+0.037670)", "prox_star": "12 (−0.021300)", "gradnorm": "28 (−0.042604)",
    "agm": "28 (−0.069786)", "smallgain": "12 (−0.189521)",
}
SEED = {(p, "baseline", None, 60): b for p, (b, _) in _SEED_60.items()} \
    | {(p, "dense", 16, 60): d for p, (_, d) in _SEED_60.items()} \
    | {(p, "dense", 32, 80): v for p, v in _SEED_DENSE32_80.items()}


RULE = ("held: the 95 % CI of the paired difference (SmallGain − GradNorm) in common-target ΔF90 on the fixed objective "
        "lies below 0 with ≥ 80 % of seeds sooner, and in ≥ 80 % of seeds SmallGain's returned state is no higher than "
        "GradNorm's + 1e-6 of the drop; did not hold: the CI lies above 0, ≤ 20 % of seeds are sooner, or ≤ 20 % "
        "end no higher; else inconclusive")


class BenchmarkConfig(AbstractFrozen):
    """Presets, scenarios, seeds and the step cap (the seed's reference numbers were recorded at 60 steps from the
    measured start; every preset on both scenarios is ``--presets`` with all names and ``--scenarios baseline,dense``)."""

    presets: tuple[str, ...] = Field(("vect", "gradnorm", "smallgain"), min_length=1,
                                     description=f"presets: {', '.join(PRESETS)}")
    scenarios: tuple[Literal["baseline", "dense"], ...] = Field(("dense",), min_length=1,
                                                                description="scenarios to run")
    dense_size: int = Field(16, ge=3, description="gates in the dense scenario")
    seeds: int = Field(10, ge=1, description="seeds; seed s draws the starting η (uniform) shared by every preset")
    steps: int = Field(3000, ge=1, description="step cap of every run (a run stops once converged)")
    tol: float = Field(1e-8, gt=0, description="converged when the projected-gradient norm is below this")
    step_size: float = Field(0.05, gt=0, description="step size (initial step for Armijo)")
    repeats: int = Field(0, ge=0, description="unrecorded runs of seed 0 timed per cell (median wall time, in the cells rows only; 0: none)")

    @field_validator("presets")
    @classmethod
    def _known(cls, presets: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown preset {unknown[0]!r}; known: {', '.join(PRESETS)}")
        return presets


def baseline() -> System:
    """The seed harness's baseline: two gates, a quadratic coupling and a gate benefit (E₀ = 0.213087)."""
    return System(id="df90-baseline", modules=[
        GateModule(id="seq_mod", gain=0.0, cost=0.1, k=10.0, a=0.2, b=0.3),
        GateModule(id="gate_mod", gain=0.1, cost=0.05, k=10.0, a=0.25, b=0.35),
    ], couplings=[
        QuadraticCoupling(id="q", i="seq_mod", j="gate_mod", weight=0.7),
        GateBenefitCoupling(id="gb", i="gate_mod", j="seq_mod", weight=0.8, delta=0.08),
    ])


def dense(n: int) -> System:
    """The seed harness's dense scenario of n gates (E₀ = 0.343396 for n = 16)."""
    modules = [GateModule(id=f"g{i}", gain=0.02 * (i % 5), cost=0.1, a=0.15, b=0.05) for i in range(n)]
    couplings = []
    for i in range(n):
        couplings += [QuadraticCoupling(id=f"ring{i}", i=f"g{i}", j=f"g{(i + 1) % n}", weight=0.6),
                      GateBenefitCoupling(id=f"gb{i}", i=f"g{(i + 1) % n}", j=f"g{i}", weight=0.4, delta=0.05),
                      QuadraticCoupling(id=f"skip{i}", i=f"g{i}", j=f"g{(i + 2) % n}", weight=0.3)]
    return System(id=f"df90-dense-{n}", modules=modules, couplings=couplings)


def dense_minimum(n: int, a: float = 0.15, b: float = 0.05, pull: float = 0.4 * 0.05) -> float:
    """E* of ``dense(n)``: n times the minimum of aη² + bη⁴ − pull·η (the uniform η leaves every spring at 0).

    >>> round(dense_minimum(16), 6)
    -0.010651
    """
    lo, hi = 0.0, 1.0
    for _ in range(200):  # 2aη + 4bη³ = pull, increasing in η
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 2 * a * mid + 4 * b * mid ** 3 < pull else (lo, mid)
    eta = (lo + hi) / 2
    return n * (a * eta ** 2 + b * eta ** 4 - pull * eta)


def relax_config(config: BenchmarkConfig, preset: str) -> RelaxConfig:
    return RelaxConfig(steps=config.steps, step_size=config.step_size, tol=config.tol, eta0="uniform",
                       **PRESETS[preset][1])


def run(config: BenchmarkConfig, store, progress: Progress | None = None):
    systems = {"baseline": baseline(), "dense": dense(config.dense_size)}
    seeds = range(config.seeds)
    jobs = [Job(system=systems[sc], config=relax_config(config, p), seed=s, labels={"scenario": sc, "preset": p})
            for sc in config.scenarios for p in config.presets for s in seeds]
    run_ids = relax_all("benchmark_delta_f90", jobs, store, progress)
    ids = {(j.labels["scenario"], j.labels["preset"], j.seed): r for j, r in zip(jobs, run_ids)}
    traces = fixed_energy_traces(store, {r: systems[sc] for (sc, _, _), r in ids.items()})
    returned_step = {r: k for r, k in returned_eta(store, run_ids).select("run_id", "step").unique().iter_rows()}
    summary = by_run(run_summaries(store, run_ids))

    runs: dict[tuple[str, str, int], dict] = {}
    for sc in config.scenarios:
        for s in seeds:
            mine = {p: traces[ids[(sc, p, s)]] for p in config.presets}
            e0 = mine[config.presets[0]][0][1]
            best = min(e for tr in mine.values() for _, e in tr)
            drop = e0 - best
            for p, tr in mine.items():
                r = ids[(sc, p, s)]
                back = returned_step[r]
                fixed = next(e for k, e in reversed(tr) if k <= back)
                runs[(sc, p, s)] = dict(
                    e0=tr[0][1], best=best, drop=drop, fixed=fixed, gap=(fixed - best) / drop if drop > 0 else 0.0,
                    f90=first_step_at_or_below(tr, e0 - 0.9 * drop), f99=first_step_at_or_below(tr, e0 - 0.99 * drop),
                    to_best=first_step_at_or_below(tr, best + 1e-6 * drop), steps=summary[r]["steps"],
                    status=summary[r]["status"], backtracks=summary[r]["total_backtracks"],
                    own_f90=summary[r]["delta_f90"], trace=tr)

    rows, cells = [], {}
    for sc in config.scenarios:
        for p in config.presets:
            xs = [runs[(sc, p, s)] for s in seeds]
            st = {k: stat([x[k] for x in xs if x[k] is not None]) for k in ("f90", "f99", "to_best", "gap", "fixed",
                                                                           "steps", "own_f90")}
            cells[(sc, p)] = st
            times = []
            for _ in range(config.repeats):
                start = time.perf_counter()
                relax(systems[sc], relax_config(config, p), seed=0, store=NullStore())
                times.append(time.perf_counter() - start)
            for s, x in zip(seeds, xs):
                rows.append(row(table="runs", scenario=sc, preset=p, seed=s, e0=x["e0"], e_best=x["best"],
                                delta_f90=x["f90"], delta_f99=x["f99"], steps_to_best=x["to_best"],
                                own_delta_f90=x["own_f90"], final_energy_fixed=x["fixed"], gap=x["gap"],
                                steps=x["steps"], backtracks=x["backtracks"], status=x["status"]))
            rows.append(row(table="cells", scenario=sc, preset=p, delta_f90_mean=st["f90"].mean,
                            delta_f90_sd=st["f90"].sd, delta_f99_mean=st["f99"].mean, to_best_mean=st["to_best"].mean,
                            reached_best=share([x["to_best"] is not None for x in xs]), gap_mean=st["gap"].mean,
                            final_energy_fixed_mean=st["fixed"].mean, steps_mean=st["steps"].mean,
                            wall_ms=1000 * statistics.median(times) if times else None,
                            seed=SEED.get((p, sc, config.dense_size if sc == "dense" else None, 60))))
            if sc == "dense" and p in ("gradnorm", "smallgain"):
                for s, x in zip(seeds, xs):
                    rows += [row(table="trace", preset=p, seed=s, step=k, gap=max((e - x["best"]) / x["drop"], 0.0))
                             for k, e in x["trace"]]

    checks, claim = [], None
    if "dense" in config.scenarios:
        e_star = dense_minimum(config.dense_size)
        checks.append(check(f"lowest energy reached on dense (n = {config.dense_size}), E* = n·min(aη² + bη⁴ − wΔη) "
                            "(convex; uniform η)", e_star, stat([runs[("dense", config.presets[0], s)]["best"]
                                                                for s in seeds]), tol=1e-6 * abs(e_star)))
    if "dense" in config.scenarios and {"gradnorm", "smallgain"} <= set(config.presets):
        sg, gn = ([runs[("dense", p, s)] for s in seeds] for p in ("smallgain", "gradnorm"))
        cap = config.steps + 1  # a run that never reaches the target counts as after the cap
        speed = compare([x["f90"] if x["f90"] is not None else cap for x in sg],
                        [x["f90"] if x["f90"] is not None else cap for x in gn], larger=False)
        lower = share([a["fixed"] <= b["fixed"] + 1e-6 * a["drop"] for a, b in zip(sg, gn)])
        v = speed.verdict()
        outcome = ("held" if v == "held" and lower >= 0.8
                   else "did not hold" if v == "did not hold" or lower <= 0.2 else "inconclusive")
        claim = (speed, lower)
    else:
        outcome = "inconclusive"
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of(outcome, converged)
    if claim is None and verdict == "inconclusive" and converged.all:
        reason = "the claim needs the dense scenario with gradnorm and smallgain"

    def cell_text(sc: str, p: str) -> str:
        st = cells[(sc, p)]
        return f"{p} ΔF90 {st['f90'].mean:.3g} ± {st['f90'].sd:.2g}, to best {st['to_best'].mean if st['to_best'].n else float('nan'):.3g} (n={st['to_best'].n})"

    parts = []
    if claim:
        speed, lower = claim
        parts.append(f"dense: ΔF90 on the fixed objective, common target: SmallGain {cells[('dense', 'smallgain')]['f90']} "
                     f"vs GradNorm {cells[('dense', 'gradnorm')]['f90']}; SmallGain − GradNorm: {speed}; SmallGain ends "
                     f"no higher in {lower:.0%} of seeds (returned-state gap to the best, as a share of the drop: "
                     f"{cells[('dense', 'smallgain')]['gap'].mean:.2g} vs {cells[('dense', 'gradnorm')]['gap'].mean:.2g})")
    for sc in config.scenarios:
        parts.append(f"{sc}: " + ", ".join(cell_text(sc, p) for p in config.presets))
    measured = "; ".join(parts) + f"; {converged}, cap {config.steps} steps"
    metrics = {"converged": converged.converged, "runs": len(run_ids)}
    for (sc, p), st in cells.items():
        metrics |= stat_metrics(f"f90_{p}_{sc}", st["f90"])
    if claim:
        metrics |= stat_metrics("f90_difference", claim[0].difference) | {"agree": claim[0].agree, "no_higher": claim[1]}
    return result(
        "benchmark_delta_f90", config,
        hypothesis="the seed's headline: on the dense scenario SmallGain reaches 90 % of the energy drop sooner than "
                   "GradNorm and ends at least as low, both on the same, fixed objective, against a target common to "
                   "both (the best energy any preset reached from the same start)",
        measured=measured, verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="re-run at HEAD, 60 steps, baseline / dense16: analytic 22 / 40, vect 9 / 17, smallgain 9 / 12, "
                    "gradnorm 10 / 20 (SmallGain 'with 4–52× better final energy'); per-preset numbers in the "
                    "cells rows' seed column as ΔF90 (energy_final)",
        notes="The previous version ran one start for 60 steps and read each preset's ΔF90 from its own recorded "
              "energies, i.e. of its own moving objective against its own minimum (SmallGain 18 vs GradNorm 19 on "
              "dense, ✘ on the final energy). Here every run converges, every state is evaluated on the fixed "
              "objective, and ΔF90 is measured against the best energy any preset reached from the same start. "
              "The default runs the claim (vect, gradnorm, smallgain on dense) to stay cheap; every preset and the "
              "baseline scenario are options (--presets with all names, --scenarios baseline,dense). The seed's "
              "harness missed E₀ in gradient mode, ignored the step budget in prox/ADMM/CD, reported the last emitted "
              "energy, stopped line-search presets early and its SmallGain multiplied every coupling weight, "
              "including the negative gate benefit, so its energies were of other functions.",
        metrics=metrics, rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """Common-target ΔF90 of every preset (mean ± sd over seeds), and SmallGain's and GradNorm's fixed-objective gap
    to the best along the run on dense (every seed)."""
    import matplotlib.pyplot as plt

    cells = [r for r in result.rows if r["table"] == "cells"]
    scenarios = result.config["scenarios"]
    presets = result.config["presets"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(scenarios)
    for i, sc in enumerate(scenarios):
        mine = {r["preset"]: r for r in cells if r["scenario"] == sc}
        ax.bar([j + i * width for j in range(len(presets))], [mine[p]["delta_f90_mean"] or 0 for p in presets],
               width, yerr=[mine[p]["delta_f90_sd"] or 0 for p in presets], capsize=3, label=sc)
    ax.set_xticks([j + width * (len(scenarios) - 1) / 2 for j in range(len(presets))], presets, rotation=30)
    ax.set_ylabel("ΔF90, fixed objective, common target (steps)")
    ax.set_title(f"mean ± sd over {result.seeds} starts")
    ax.legend()
    figs = {"delta_f90_by_preset": fig}
    trace = [r for r in result.rows if r["table"] == "trace"]
    if trace:
        fig2, ax2 = plt.subplots(figsize=(6.5, 4))
        for p, colour in (("gradnorm", "C0"), ("smallgain", "C3")):
            for s in sorted({r["seed"] for r in trace}):
                tr = [r for r in trace if r["preset"] == p and r["seed"] == s]
                ax2.plot([r["step"] for r in tr], [max(r["gap"], 1e-12) for r in tr], color=colour, alpha=0.5, lw=1,
                         label=p if s == 0 else None)
        ax2.axhline(0.1, color="0.6", ls=":", label="ΔF90 target")
        ax2.set_yscale("log")
        ax2.set_xscale("symlog", linthresh=10)
        ax2.set_xlim(left=0)
        ax2.set_xlabel("step")
        ax2.set_ylabel("(U − best) / (U₀ − best), fixed objective")
        ax2.set_title("dense: gap to the common best")
        ax2.legend()
        figs["dense_gap_along_run"] = fig2
    return figs


STUDY = Study("benchmark_delta_f90", "ΔF90 / ΔF99 and final energy of solver presets, on one fixed objective",
              BenchmarkConfig, run, figures)
