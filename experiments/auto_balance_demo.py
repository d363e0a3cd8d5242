"""Auto-balance demo: does GradNorm balance the terms' gradient norms over a whole run?

The seed's scenario: a ramp of 64 values with a glitch of −0.3 at position 20
and N(0, noise) drawn by the seed (clipped to [0, 1]) is a ``SequenceModule``; a repair
``GateModule`` (gain Δ, cost 0.1, k 12, a 0.4, b 0.6) is tied to it by a
``GateBenefitCoupling`` (weight 1.2, Δ = the η gained by the cumulative-max
repair) and a ``QuadraticCoupling`` (0.3). The System's family weights are
the seed's term weights {sequence 0.25, gate 2.5, gate_benefit 1.2, quadratic 0.4}.
Each seed draws the noise and a starting η uniform in [0, 1]; from that start the System
is relaxed (Armijo, normalised directions) to convergence with no weighting (``baseline``),
``GradNormWeighting(target 1, α 1.2, rate 0.2, ceiling 2)`` (``gradnorm``, the seed's settings),
the same without a ceiling (``gradnorm_unbounded``) and ``AutoBalanceWeighting(target 1)``
(``auto_balance``), recording every kind's weighted gradient norm at every step.

Balance is measured over the whole run: at each step the spread of the four terms'
gradient norms is the standard deviation of their log10 (0 when all four are equal;
``v_terms_by_step``), and a run's balance is the mean of that spread over its steps.
Weight changes come from ``v_weight_history``; the returned state is also evaluated on
the System's own, configured objective.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import (
    AbstractFrozen,
    AutoBalanceWeighting,
    DirectionConfig,
    GradNormWeighting,
    RelaxConfig,
)
from complexity_from_constraints.projectors import compile_system, energy

from ._evidence import AGREE, check, compare, convergence, stat, verdict_of
from ._framework import (
    Job,
    Progress,
    Study,
    eta_table,
    glitch_system,
    query_runs,
    relax_all,
    result,
    returned_eta,
    row,
    stat_metrics,
)

Scenario = Literal["baseline", "gradnorm", "gradnorm_unbounded", "auto_balance"]
WEIGHTS = {"sequence": 0.25, "gate": 2.5, "gate_benefit": 1.2, "quadratic": 0.4}

RULE = ("held: the 95 % CI of the paired difference (GradNorm − no weighting) in run-mean spread of log10 term "
        "gradient norms lies below 0 and ≥ 80 % of seeds narrow it by more than the tie (0.05 decade); did not hold: "
        "the CI lies above 0 or ≤ 20 % of seeds narrow it; else inconclusive")


class AutoBalanceConfig(AbstractFrozen):
    """The seed's ``auto_balance_demo`` scenario and GradNorm settings, over seeds, run to convergence."""

    seeds: int = Field(10, ge=1, description="seeds; seed s draws the sequence noise and a uniform starting η")
    steps: int = Field(2000, ge=1, description="step cap per run (a run stops once converged)")
    tol: float = Field(1e-8, gt=0, description="converged when the projected-gradient norm is below this")
    noise: float = Field(0.02, ge=0, description="sequence noise")
    scenarios: tuple[Scenario, ...] = Field(("baseline", "gradnorm", "gradnorm_unbounded", "auto_balance"),
                                            min_length=1,
                                            description="baseline, gradnorm, gradnorm_unbounded, auto_balance "
                                                        "(the verdict needs baseline and gradnorm)")
    target: float = Field(1.0, gt=0, description="target gradient norm of every term")
    alpha: float = Field(1.2, ge=0, description="GradNorm α")
    rate: float = Field(0.2, gt=0, description="GradNorm update rate")
    ceiling: float = Field(2.0, gt=0, description="GradNorm's weight ceiling, × the configured weight")
    step_size: float = Field(0.05, gt=0, description="initial Armijo step")
    tie: float = Field(0.05, ge=0, description="smallest narrowing of the spread (decades) that counts for a seed")


def weighting(config: AutoBalanceConfig, scenario: Scenario):
    return {"baseline": None,
            "gradnorm": GradNormWeighting(target=config.target, alpha=config.alpha, rate=config.rate,
                                          ceiling=config.ceiling),
            "gradnorm_unbounded": GradNormWeighting(target=config.target, alpha=config.alpha, rate=config.rate,
                                                    ceiling=None),
            "auto_balance": AutoBalanceWeighting(target=config.target)}[scenario]


def system(config: AutoBalanceConfig, seed: int):
    return glitch_system("auto-balance", seed, config.noise, position=20, glitch=0.3, cost=0.1, k=12.0, a=0.4, b=0.6,
                         benefit=1.2, spring=0.3, weights=WEIGHTS)


SPREAD_SQL = """
    SELECT run_id, step, stddev_pop(log10(grad_norm)) AS spread,
           avg(abs(log10(grad_norm / $target))) AS distance,
           avg(CASE WHEN grad_norm BETWEEN $target / 2 AND 2 * $target THEN 1.0 ELSE 0.0 END) AS within_2x,
           max(grad_norm) AS largest
    FROM v_terms_by_step WHERE list_contains($ids, run_id) AND grad_norm > 0
    GROUP BY run_id, step ORDER BY run_id, step"""


def run(config: AutoBalanceConfig, store, progress: Progress | None = None):
    seeds = range(config.seeds)
    systems = {s: system(config, s) for s in seeds}
    jobs = [Job(system=systems[s][0], seed=s, labels={"scenario": sc},
                config=RelaxConfig(steps=config.steps, step_size=config.step_size, tol=config.tol, line_search="armijo",
                                   eta0="uniform", direction=DirectionConfig(normalize=True),
                                   weighting=weighting(config, sc), record_terms_every=1))
            for sc in config.scenarios for s in seeds]
    run_ids = relax_all("auto_balance_demo", jobs, store, progress)
    ids = {(job.labels["scenario"], job.seed): r for job, r in zip(jobs, run_ids)}

    per_step = query_runs(store, SPREAD_SQL, run_ids, target=config.target)
    history = query_runs(store, "SELECT run_id, step, kind, weight FROM v_weight_history "
                                "WHERE list_contains($ids, run_id) ORDER BY run_id, step, kind", run_ids)
    steps = {r: n for r, n in query_runs(store, "SELECT run_id, steps FROM v_run_summary "
                                                "WHERE list_contains($ids, run_id)", run_ids).iter_rows()}
    etas = eta_table(returned_eta(store, run_ids))
    compiled = {s: compile_system(systems[s][0]) for s in seeds}
    order = {s: [m.id for m in systems[s][0].modules] for s in seeds}

    runs: dict[tuple[str, int], dict] = {}
    for (sc, s), r in ids.items():
        mine = per_step.filter(per_step["run_id"] == r)
        changes = history.filter(history["run_id"] == r)
        final_w = dict(WEIGHTS)
        for kind, w in changes.select("kind", "weight").iter_rows():
            final_w[kind] = w  # rows in step order: the last one wins
        runs[(sc, s)] = dict(
            spread=float(mine["spread"].mean()), spread_final=float(mine["spread"][-1]),
            distance=float(mine["distance"].mean()), within_2x=float(mine["within_2x"].mean()),
            largest=float(mine["largest"].max()), changes=changes["step"].n_unique(), steps=steps[r],
            ratio=float(np.mean([final_w[k] / WEIGHTS[k] for k in WEIGHTS])),
            fixed=energy(compiled[s], np.array([etas[r][m] for m in order[s]])),
            trace=mine.select("step", "spread").rows())

    rows, stats = [], {}
    for sc in config.scenarios:
        col = {k: [runs[(sc, s)][k] for s in seeds] for k in ("spread", "distance", "within_2x", "fixed", "changes",
                                                              "steps", "ratio", "spread_final")}
        stats[sc] = {k: stat(v) for k, v in col.items()}
        for s in seeds:
            x = runs[(sc, s)]
            rows.append(row(table="runs", scenario=sc, seed=s, spread=x["spread"], spread_final=x["spread_final"],
                            distance=x["distance"], within_2x=x["within_2x"], largest_norm=x["largest"],
                            weight_changes=x["changes"], final_weight_ratio=x["ratio"], steps=x["steps"],
                            final_energy_fixed=x["fixed"], delta=systems[s][1]))
        longest = max(len(runs[(sc, s)]["trace"]) for s in seeds)
        for k in range(longest):  # the mean spread at each step over the runs still going
            here = [runs[(sc, s)]["trace"][k][1] for s in seeds if k < len(runs[(sc, s)]["trace"])]
            rows.append(row(table="trace", scenario=sc, step=k, spread_mean=float(np.mean(here)),
                            spread_sd=float(np.std(here)), n=len(here)))

    converged = convergence(store, run_ids)
    paired = None
    checks = []
    if "baseline" in config.scenarios and "gradnorm" in config.scenarios:
        base, grad = ([runs[(sc, s)] for s in seeds] for sc in ("baseline", "gradnorm"))
        paired = compare([g["spread"] for g in grad], [b["spread"] for b in base], larger=False, tie=config.tie)
        outcome = paired.verdict()
        scale = float(np.mean([abs(b["fixed"]) for b in base])) or 1.0
        checks += [
            check(f"GradNorm's final weight / configured weight (norms below the target drive every weight up to the "
                  f"ceiling {config.ceiling:g})", config.ceiling, stats["gradnorm"]["ratio"], tol=1e-6),
            check("final-step spread, GradNorm − none (weights all at the ceiling scale every term alike, and log "
                  "spread is scale-free)", 0.0, stat([g["spread_final"] - b["spread_final"] for g, b in zip(grad, base)]),
                  tol=1e-3),
            check("configured-objective energy of the returned state, GradNorm − none (a common scale leaves the "
                  "minimiser where it was)", 0.0, stat([g["fixed"] - b["fixed"] for g, b in zip(grad, base)]),
                  tol=1e-6 * scale),
        ]
    else:
        outcome = "inconclusive"
    if "auto_balance" in config.scenarios:
        largest = max(runs[("auto_balance", s)]["largest"] for s in seeds)
        checks.append(check(f"AutoBalance weight changes (it acts only when a norm exceeds max_ratio·target = 10; "
                            f"the largest seen is {largest:.3g})", 0.0 if largest <= 10 * config.target else "> 0",
                            stats["auto_balance"]["changes"], tol=0))
    verdict, reason = verdict_of(outcome, converged)
    if verdict == "inconclusive" and converged.all:
        reason = (f"GradNorm − none: {paired}; the rule needs {AGREE:.0%} of seeds narrower by more than "
                  f"{config.tie:g} decade; {converged}" if paired else f"the rule needs the baseline and gradnorm "
                  f"scenarios; {converged}")

    listing = "; ".join(f"{sc}: {stats[sc]['spread']} decades, configured-objective energy "
                        f"{stats[sc]['fixed'].mean:.4f}, {stats[sc]['changes'].mean:.3g} weight changes"
                        for sc in config.scenarios)
    measured = (f"run-mean spread of log10 term gradient norms — {listing}"
                + (f"; GradNorm − none: {paired}" if paired else "")
                + f"; share of norms within 2× of the target: "
                + ", ".join(f"{sc} {stats[sc]['within_2x'].mean:.2f}" for sc in config.scenarios)
                + f"; {converged}, cap {config.steps} steps")
    metrics = {"converged": converged.converged, "runs": len(run_ids)}
    for sc in config.scenarios:
        metrics |= stat_metrics(f"spread_{sc}", stats[sc]["spread"]) | stat_metrics(f"fixed_{sc}", stats[sc]["fixed"])
    if paired:
        metrics |= stat_metrics("spread_difference", paired.difference) | {"agree": paired.agree}
    return result(
        "auto_balance_demo", config,
        hypothesis=f"GradNorm (target {config.target:g}, α {config.alpha:g}, rate {config.rate:g}, ceiling "
                   f"{config.ceiling:g}) balances the terms: over the whole run the spread of the per-term gradient "
                   "norms is narrower than without a weighting",
        measured=measured, verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="two runs: --steps 5: baseline completed 5 updates, gradnorm stopped after 2 (E 0.111 → 0.207 "
                    "as the weights changed); --steps 30: baseline stopped at update 14, gradnorm at update 2; final "
                    "gradnorm weights ≈ {GB 1.23–1.24, Q 1.18, gate 1.09–1.14, seq 1.23–1.24}",
        notes="The previous version judged the share of (step, term) norms within 2× of the target: 2/96 vs 2/100, "
              "the same two early norms in both runs, a ✔ from the denominator. Every term's norm lies below the "
              "target (largest ≈ 0.7), so GradNorm only raises weights; at its ceiling (2 × configured) every term is "
              "scaled alike, which changes neither the log spread nor the minimiser. It narrows the spread only "
              "while the weights climb at different speeds: a little in every seed, by more than the tie in few "
              "(the tie, 0.05 decade ≈ 12 %, decides between held and inconclusive). Without a ceiling the weights run away (to ~1e8): the "
              "spread is no narrower and the returned state is far worse on the configured objective. AutoBalance "
              "acts only above 10× the target, so here it never acts. Seeds draw the noise (which moves the "
              "discrete monotonicity in few steps, so several seeds share a System) and the starting η (which "
              "differs for every seed); all scenarios of a seed start from the same η.",
        metrics=metrics, rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """The spread of log10 term gradient norms along the run (mean ± sd over seeds), and each seed's run-mean spread."""
    import matplotlib.pyplot as plt

    scenarios = result.config["scenarios"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for sc in scenarios:
        tr = [r for r in result.rows if r["table"] == "trace" and r["scenario"] == sc]
        k = np.array([r["step"] for r in tr])
        m = np.array([r["spread_mean"] for r in tr])
        sd = np.array([r["spread_sd"] for r in tr])
        line, = ax.plot(k, m, label=sc, ls="--" if sc == "auto_balance" else "-")  # it never acts: on baseline
        ax.fill_between(k, m - sd, m + sd, color=line.get_color(), alpha=0.2)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("step")
    ax.set_ylabel("sd of log10 ‖∇_k‖ over terms (decades)")
    ax.set_title(f"term balance along the run ({result.seeds} seeds, band ± sd)")
    ax.legend()

    fig2, ax2 = plt.subplots(figsize=(6.5, 4))
    runs = [r for r in result.rows if r["table"] == "runs"]
    for i, sc in enumerate(scenarios):
        mine = [r for r in runs if r["scenario"] == sc]
        ax2.scatter([i + 0.05 * (r["seed"] % 5 - 2) for r in mine], [r["spread"] for r in mine], s=14)
    ax2.set_xticks(range(len(scenarios)), scenarios)
    ax2.set_ylabel("run-mean spread (decades)")
    ax2.set_title("each seed's run-mean spread")
    return {"spread_along_run": fig, "spread_by_seed": fig2}


STUDY = Study("auto_balance_demo", "does GradNorm balance the term gradient norms over a whole run?", AutoBalanceConfig,
              run, figures)
