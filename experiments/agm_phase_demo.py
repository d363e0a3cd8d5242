"""AGM phase demo: does the phase weighting help a relaxation, judged on the configured objective?

The seed's scenario: a ramp of 64 values with a glitch of −0.3 at position 22
and N(0, noise) drawn by the seed (clipped) is a ``SequenceModule``; a repair ``GateModule``
(gain Δ, cost 0.08, k 12, a 0.3, b 0.4) is tied to it by a
``GateBenefitCoupling`` (1.0, Δ = the η gained by the cumulative-max repair)
and a ``QuadraticCoupling`` (0.25); family weights {sequence 0.4, gate 1.2,
gate_benefit 1.0, quadratic 0.25}. Each seed draws the noise and a starting η uniform in
[0, 1]; from that start the System is relaxed (Armijo, normalised directions) to convergence
with ``AgmPhaseWeighting`` and without a weighting.

While the energy falls steadily the phase weighting multiplies every coupling weight by
``increase`` and the gate's by ``decrease`` ("boost"); when it stalls or oscillates, the
reverse ("tame"). That changes the objective being minimised, so the only fair judge is
the System's own, configured objective: every recorded η (``v_eta``) is evaluated on it,
the returned states are compared, and the speed is the first step within 1e-6 of the
drop on offer of the best configured-objective energy any run of that seed found.
Weight changes are read from ``v_weight_history``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, AgmPhaseWeighting, DirectionConfig, RelaxConfig
from complexity_from_constraints.projectors import compile_system, energy_and_gradient

from ._evidence import check, compare, convergence, share, stat, verdict_of
from ._framework import (
    Job,
    Progress,
    Study,
    first_step_at_or_below,
    fixed_energy_traces,
    glitch_system,
    query_runs,
    relax_all,
    result,
    returned_eta,
    row,
    stat_metrics,
)

WEIGHTS = {"sequence": 0.4, "gate": 1.2, "gate_benefit": 1.0, "quadratic": 0.25}
COUPLINGS = ("gate_benefit", "quadratic")
ARMS = ("agm_phase", "baseline")

RULE = ("held: the 95 % CI of the paired difference (AGM − no weighting) in the returned state's configured-objective "
        "energy lies below 0 and ≥ 80 % of seeds are lower by more than 1e-6 of the drop on offer; did not hold: the "
        "CI lies above 0 or ≤ 20 % of seeds are lower; else inconclusive")


class AgmPhaseConfig(AbstractFrozen):
    """The seed's ``agm_phase_demo`` scenario (its ``--use_uncertainty_gate`` only changed a gate cost, a no-op),
    over seeds, run to convergence."""

    seeds: int = Field(10, ge=1, description="seeds; seed s draws the sequence noise and a uniform starting η")
    steps: int = Field(3000, ge=1, description="step cap per run (a run stops once converged)")
    tol: float = Field(1e-8, gt=0, description="converged when the projected-gradient norm is below this")
    noise: float = Field(0.02, ge=0, description="sequence noise")
    increase: float = Field(1.05, gt=1, description="factor for the favoured terms")
    decrease: float = Field(0.97, gt=0, lt=1, description="factor for the disfavoured terms")
    step_size: float = Field(0.05, gt=0, description="initial Armijo step")


def system(config: AgmPhaseConfig, seed: int):
    return glitch_system("agm-phase", seed, config.noise, position=int(64 * 0.35), glitch=0.3, cost=0.08, k=12.0,
                         a=0.3, b=0.4, benefit=1.0, spring=0.25, weights=WEIGHTS)


def predicted_weights(boosts: int, tames: int, config: AgmPhaseConfig) -> dict[str, float]:
    """The weights after ``boosts`` boosts and ``tames`` tames, in any order (no floor or ceiling is set).

    >>> predicted_weights(2, 0, AgmPhaseConfig())["gate"] == 1.2 * 0.97 ** 2
    True
    """
    up, down = config.increase, config.decrease
    out = {k: WEIGHTS[k] * up ** boosts * down ** tames for k in COUPLINGS}
    return out | {"gate": WEIGHTS["gate"] * down ** boosts * up ** tames, "sequence": WEIGHTS["sequence"]}


def run(config: AgmPhaseConfig, store, progress: Progress | None = None):
    seeds = range(config.seeds)
    systems = {s: system(config, s) for s in seeds}
    weightings = {"agm_phase": AgmPhaseWeighting(increase=config.increase, decrease=config.decrease), "baseline": None}
    jobs = [Job(system=systems[s][0], seed=s, labels={"arm": arm},
                config=RelaxConfig(steps=config.steps, step_size=config.step_size, tol=config.tol, line_search="armijo",
                                   eta0="uniform", direction=DirectionConfig(normalize=True), weighting=weightings[arm]))
            for arm in ARMS for s in seeds]
    run_ids = relax_all("agm_phase_demo", jobs, store, progress)
    ids = {(job.labels["arm"], job.seed): r for job, r in zip(jobs, run_ids)}
    traces = fixed_energy_traces(store, {r: systems[s][0] for (_, s), r in ids.items()})
    history = query_runs(store, "SELECT run_id, step, kind, weight, previous FROM v_weight_history "
                                "WHERE list_contains($ids, run_id) ORDER BY run_id, step, kind", run_ids)
    finals = returned_eta(store, run_ids)

    runs: dict[tuple[str, int], dict] = {}
    for (arm, s), r in ids.items():
        trace = traces[r]
        compiled = compile_system(systems[s][0])
        eta_of = dict(finals.filter(finals["run_id"] == r).select("entity_id", "eta").iter_rows())
        eta = np.array([eta_of[m.id] for m in systems[s][0].modules])
        fixed, grad = energy_and_gradient(compiled, eta)
        mine = history.filter(history["run_id"] == r)
        boosts = tames = 0
        final_w = dict(WEIGHTS)
        for step in sorted(set(mine["step"].to_list())):
            at = mine.filter(mine["step"] == step)
            new, old = dict(at.select("kind", "weight").iter_rows()), dict(at.select("kind", "previous").iter_rows())
            boosts += new["gate"] < old["gate"] and all(new[k] > old[k] for k in COUPLINGS)
            tames += new["gate"] > old["gate"] and all(new[k] < old[k] for k in COUPLINGS)
            final_w |= new
        runs[(arm, s)] = dict(trace=trace, e0=trace[0][1], fixed=float(fixed), boosts=boosts, tames=tames,
                              final_w=final_w, eta_gate=eta_of["gate"],
                              pg=float(np.linalg.norm(eta - np.clip(eta - np.asarray(grad), 0.0, 1.0))),
                              steps=trace[-1][0])

    rows, reach, wins = [], {arm: [] for arm in ARMS}, []
    scale = max(runs[("baseline", s)]["e0"] - min(e for arm in ARMS for _, e in runs[(arm, s)]["trace"]) for s in seeds)
    tie = 1e-6 * scale
    for s in seeds:
        best = min(e for arm in ARMS for _, e in runs[(arm, s)]["trace"])
        drop = runs[("baseline", s)]["e0"] - best
        for arm in ARMS:
            x = runs[(arm, s)]
            x["to_best"] = first_step_at_or_below(x["trace"], best + 1e-6 * drop)
            reach[arm].append(x["to_best"])
            rows.append(row(table="runs", arm=arm, seed=s, e0=x["e0"], final_energy_fixed=x["fixed"], best=best,
                            steps_to_best=x["to_best"], steps=x["steps"], boosts=x["boosts"], tames=x["tames"],
                            eta_gate=x["eta_gate"], pg_norm_fixed=x["pg"],
                            **{f"w_{k}": v for k, v in sorted(x["final_w"].items())}))
            rows += [row(table="trace", arm=arm, seed=s, step=k, energy_fixed=e) for k, e in x["trace"]]

    agm, base = ([runs[(arm, s)] for s in seeds] for arm in ARMS)
    paired = compare([a["fixed"] for a in agm], [b["fixed"] for b in base], larger=False, tie=tie)
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of(paired.verdict(), converged)
    stats = {arm: {k: stat([runs[(arm, s)][k] for s in seeds]) for k in ("fixed", "boosts", "tames", "steps", "pg",
                                                                          "eta_gate")} for arm in ARMS}
    reached = {arm: share([v is not None for v in reach[arm]]) for arm in ARMS}
    to_best = {arm: stat([v for v in reach[arm] if v is not None]) for arm in ARMS}
    worst_bookkeeping = max(abs(a["final_w"][k] - predicted_weights(a["boosts"], a["tames"], config)[k])
                            for a in agm for k in WEIGHTS)
    checks = [
        check("AGM final weights vs the closed form w·increase^boosts·decrease^tames (couplings; the reverse for the "
              "gate), largest |difference|", 0.0, worst_bookkeeping, tol=1e-9),
        check("configured-objective projected-gradient norm at the baseline's returned state (a converged run is a "
              "stationary point)", 0.0, stats["baseline"]["pg"], tol=10 * config.tol),
        check("configured-objective projected-gradient norm at AGM's returned state (a stationary point of the "
              "re-weighted objective, so of the configured one only if the weights end where they began)",
              "> 0 when the weights moved", stats["agm_phase"]["pg"]),
    ]
    measured = (f"returned state on the configured objective: AGM {stats['agm_phase']['fixed']}, none "
                f"{stats['baseline']['fixed']}; AGM − none: {paired}; reached the best energy of its seed (within 1e-6 "
                f"of the drop): AGM {reached['agm_phase']:.0%} (steps {to_best['agm_phase']}), none "
                f"{reached['baseline']:.0%} (steps {to_best['baseline']}); AGM boosted {stats['agm_phase']['boosts']} "
                f"and tamed {stats['agm_phase']['tames']} times per run; gate η {stats['agm_phase']['eta_gate'].mean:.3f}"
                f" with AGM vs {stats['baseline']['eta_gate'].mean:.3f} without; {converged}, cap {config.steps} steps")
    metrics = {"converged": converged.converged, "runs": len(run_ids), "agree": paired.agree,
               "reached_agm": reached["agm_phase"], "reached_baseline": reached["baseline"]}
    metrics |= stat_metrics("fixed_agm", stats["agm_phase"]["fixed"]) | stat_metrics("fixed_baseline",
                                                                                     stats["baseline"]["fixed"])
    metrics |= stat_metrics("fixed_difference", paired.difference) | stat_metrics("boosts", stats["agm_phase"]["boosts"])
    return result(
        "agm_phase_demo", config,
        hypothesis="the phase weighting (boost couplings and soften the gate while the energy falls steadily) helps the "
                   "relaxation: its returned state is lower on the configured objective than without a weighting",
        measured=measured, verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="gate-local weight 1.2 → 1.05 → 1.0185 → 0.98795 → 0.95831; coupling weights never change; "
                    "E 0.0666 → 0.0405 over 10 updates, then stopped at update 11 of 40 (rejected)",
        notes="The previous version held when the weighting made one boost from the configured weights, which it "
              "always does in a run that improves, while the returned state was worse on the configured objective "
              "(0.0821 vs 0.0445 after 40 steps). Here the claim is judged where it matters, on the configured "
              "objective, with every run converged. Boosting the gate benefit and softening the gate pulls the gate "
              "open: the run converges to a stationary point of the re-weighted objective, which on the configured "
              "objective is not a minimum. The seed's weighting replaced the configured gate weight 1.2 by 1.05 on "
              "its first call and never touched the couplings; here it starts from the configured weights and the "
              "loop re-evaluates the reference energy after each change.",
        metrics=metrics, rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """Configured-objective energy above each seed's best, along the run (every seed, both arms), and the returned
    states paired by seed."""
    import matplotlib.pyplot as plt

    runs = [r for r in result.rows if r["table"] == "runs"]
    best = {r["seed"]: r["best"] for r in runs}
    drop = {r["seed"]: r["e0"] - r["best"] for r in runs if r["arm"] == "baseline"}
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = {"agm_phase": "C3", "baseline": "C0"}
    for arm in ARMS:
        for s in sorted(best):
            tr = [r for r in result.rows if r["table"] == "trace" and r["arm"] == arm and r["seed"] == s]
            gap = [max((r["energy_fixed"] - best[s]) / (drop[s] or 1.0), 1e-12) for r in tr]
            ax.plot([r["step"] for r in tr], gap, color=colours[arm], alpha=0.5, lw=1,
                    label=arm if s == min(best) else None)
    ax.set_yscale("log")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)
    ax.set_xlabel("step")
    ax.set_ylabel("(U − best U) / drop on offer, configured objective")
    ax.set_title(f"configured-objective energy along the run ({result.seeds} seeds)")
    ax.legend()

    fig2, ax2 = plt.subplots(figsize=(5, 4))
    by = {(r["arm"], r["seed"]): r["final_energy_fixed"] for r in runs}
    for s in sorted(best):
        ax2.plot([0, 1], [by[("baseline", s)], by[("agm_phase", s)]], "o-", color="0.5", ms=4)
    ax2.set_xticks([0, 1], ["no weighting", "AGM phase"])
    ax2.set_ylabel("returned state's configured-objective energy")
    ax2.set_title("paired by seed")
    return {"energy_along_run": fig, "returned_energy_paired": fig2}


STUDY = Study("agm_phase_demo", "does the phase weighting help, judged on the configured objective?", AgmPhaseConfig,
              run, figures)
