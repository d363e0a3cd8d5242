"""Energy-gated expansion: a repair module is admitted only when it pays for its complexity cost.

Per seed a noisy ramp with a planted dip is scored by a ``SequenceModule``.
Repairing the dip (``v[pos] = max(v[pos], v[pos − 1])``) would raise η by Δη.
At step 1 the coordinator is offered a candidate: a repair ``GateModule``
(gain Δη, cost γ, k, a, b) tied to the sequence by a ``GateBenefitCoupling``
(Δ = Δη, weight w). Its η is relaxed locally, to convergence (``local_tol``, at
most ``local_steps``), and it is admitted only if

    ΔF_new = 𝓕(η, η_gate) + γ − 𝓕(η) < −τ,

with γ = the System's ``complexity_cost``: equation 4 of the seed
(``ModuleAdded`` / ``ExpansionRejected``, read back from ``v_expansions``).
An admitted gate keeps relaxing with the rest; its final η is the soft repair
blend: v[pos] ← (1 − η_gate)·v[pos] + η_gate·repair, and
redemption = η(blended) − η(before) (0 when the candidate was refused).

Closed form: only the gate's η moves and only its own terms change, so the converged
ΔF_new = γ + min_η (aη² + bη⁴ − wΔη) ≈ γ − (wΔ)²/4a for a small pull. The candidate is
admitted exactly when γ + τ < −min_η(…) =: γ*, a few 1e-4 for the seed's Δη ≈ 0.01; every
seed's ΔF_new and admission are printed beside it.

The same seed's sequence is offered at every cost, so costs are compared seed by seed.
Per cost also: mean redemption, the gate's hazard λ = softplus(k(Δη − γ)) (its measurement),
μ̂ = expansions / Σ max(redemption, 0) and the good/bad ratio (admitted with redemption > 0 vs ≤ 0).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import (
    AbstractFrozen,
    Candidate,
    ExpansionConfig,
    GateBenefitCoupling,
    GateModule,
    RelaxConfig,
    SequenceModule,
    System,
    monotonicity,
)

from ._evidence import check, compare, convergence, share, stat, verdict_of
from ._framework import (
    Job,
    Progress,
    Study,
    dipped_ramp,
    eta_table,
    final_eta,
    fmt,
    gate_energy,
    gate_minimum,
    mean,
    query_runs,
    relax_all,
    result,
    row,
    stat_metrics,
)


class EnergyGatedExpansionConfig(AbstractFrozen):
    """The seed's ``energy_gated_expansion`` defaults (the gate's a, b, k are the seed gate's), over seeds; the costs
    are the seed's 0, 0.02 and 0.2 with two near the closed-form admission boundary (the seed's 0.05 and 0.1 behave
    as 0.02 and 0.2 do: ``--costs`` adds them back)."""

    n: int = Field(64, ge=3, description="sequence length")
    mistake_pos: int = Field(20, ge=1, description="index of the dip")
    dip: float = Field(0.5, description="how far the value at mistake_pos is lowered")
    noise: float = Field(0.01, ge=0, description="std of the Gaussian noise")
    seeds: int = Field(10, ge=1, description="sequences; seed s draws its noise from (seed, s), the same at every cost")
    costs: tuple[float, ...] = Field((0.0, 1e-4, 5e-4, 0.02, 0.2), min_length=1,
                                     description="expansion costs γ (also the gate's cost)")
    k: float = Field(10.0, gt=0, description="gate sharpness")
    gate_a: float = Field(0.1, ge=0, description="gate energy a η²")
    gate_b: float = Field(0.1, ge=0, description="gate energy b η⁴")
    benefit_weight: float = Field(1.0, ge=0, description="weight of the candidate's gate-benefit coupling")
    tau: float = Field(0.0, ge=0, description="admission threshold τ")
    local_steps: int = Field(2000, ge=0, description="cap on the candidate's local relaxation steps")
    local_tol: float = Field(1e-8, ge=0, description="the local relaxation stops at this projected gradient "
                                                     "(0: spend the cap, as the seed's 50 steps did)")
    local_step_size: float = Field(1.0, gt=0, description="first step size of the candidate's local relaxation (the "
                                   "seed's 0.1 reaches the same minimum in about ten times the steps)")
    steps: int = Field(400, ge=1, description="step cap per relaxation (the candidate is offered at step 1; a run "
                                              "stops once converged)")
    tol: float = Field(1e-8, gt=0, description="converged when the projected-gradient norm is below this")
    seed: int = Field(123, ge=0, description="base seed of the noise")
    inner_tol: float = Field(1e-9, gt=0, description="largest |ΔF_new − closed form| that counts as a converged "
                                                     "local relaxation")


RULE = ("held: the admission rate never rises with γ and admitted(lowest γ) − admitted(highest γ) over seeds has a 95% "
        "CI above 0 with ≥ 80% of seeds agreeing; did not hold: the rate rises somewhere, or the CI is not above 0 "
        "(≤ 20% agree or below 0); inconclusive otherwise or if a local relaxation missed its closed form")


def draw(config: EnergyGatedExpansionConfig, s: int) -> tuple[np.ndarray, float, float, float]:
    """Seed ``s``'s noisy ramp, the repaired value, η before and the Δη of the repair."""
    values = dipped_ramp(config.n, config.mistake_pos, config.dip, config.noise, np.random.default_rng([config.seed, s]))
    target = max(values[config.mistake_pos], values[config.mistake_pos - 1])
    fixed = values.copy()
    fixed[config.mistake_pos] = target
    before = monotonicity(values)
    return values, target, before, max(0.0, monotonicity(fixed) - before)


def run(config: EnergyGatedExpansionConfig, store, progress: Progress | None = None):
    draws = [draw(config, s) for s in range(config.seeds)]
    jobs = []
    for c, cost in enumerate(config.costs):
        for s, (values, target, before, delta) in enumerate(draws):
            gate = GateModule(id="repair", gain=delta, cost=cost, k=config.k, a=config.gate_a, b=config.gate_b)
            candidate = Candidate(module=gate, couplings=[GateBenefitCoupling(
                id="benefit", i="repair", j="sequence", delta=delta, weight=config.benefit_weight)])
            system = System(id=f"expansion-{c:02d}-{s:03d}", complexity_cost=cost,
                            modules=[SequenceModule(id="sequence", observation=tuple(values.tolist()))])
            relax_config = RelaxConfig(steps=config.steps, tol=config.tol, expansion=ExpansionConfig(
                every=1, tau=config.tau, local_steps=config.local_steps, local_tol=config.local_tol,
                local_step_size=config.local_step_size, candidates=(candidate,)))
            jobs.append(Job(system=system, config=relax_config, seed=s, labels={"cost": cost, "seed": s}))
    run_ids = relax_all("energy_gated_expansion", jobs, store, progress)

    decisions = {r["run_id"]: r for r in query_runs(
        store, "SELECT run_id, decision, delta_f FROM v_expansions WHERE list_contains($ids, run_id)", run_ids
    ).iter_rows(named=True)}
    etas = eta_table(final_eta(store, run_ids))
    a, b, w = config.gate_a, config.gate_b, config.benefit_weight
    per_cost: dict[float, list[dict]] = {cost: [] for cost in config.costs}
    rows_seed, inner_error = [], 0.0
    for k, run_id in enumerate(run_ids):
        cost, s = config.costs[k // config.seeds], k % config.seeds
        values, target, before, delta = draws[s]
        gate = jobs[k].config.expansion.candidates[0].module
        admitted = decisions.get(run_id, {}).get("decision") == "added"
        eta_gate = etas[run_id].get("repair", 0.0) if admitted else 0.0
        blended = values.copy()
        blended[config.mistake_pos] = (1 - eta_gate) * values[config.mistake_pos] + eta_gate * target
        best = gate_energy(a, b, w * delta, gate_minimum(a, b, w * delta))  # min_η (aη² + bη⁴ − wΔη)
        delta_f = decisions.get(run_id, {}).get("delta_f")
        inner_error = max(inner_error, abs(delta_f - (cost + best)) if delta_f is not None else float("inf"))
        item = dict(seed=s, admitted=admitted, predicted=cost + best < -config.tau, eta_gate=eta_gate,
                    redemption=monotonicity(blended) - before, hazard=gate.hazard(delta), delta_f=delta_f,
                    delta_f_predicted=cost + best, delta=delta, boundary=-best - config.tau)
        per_cost[cost].append(item)
        rows_seed.append(item)
    rows = []
    for cost, items in per_cost.items():
        admitted = [i for i in items if i["admitted"]]
        positive = sum(max(i["redemption"], 0.0) for i in items)
        good = sum(i["redemption"] > 0 for i in admitted)
        df = stat([i["delta_f"] for i in items if i["delta_f"] is not None])
        rows.append(row(cost=cost, expansion_rate=share([i["admitted"] for i in items]),
                        predicted_rate=share([i["predicted"] for i in items]),
                        delta_f_mean=df.mean, delta_f_sd=df.sd,
                        delta_f_predicted=mean([i["delta_f_predicted"] for i in items]),
                        redemption_mean=mean([i["redemption"] for i in items]),
                        hazard_mean=mean([i["hazard"] for i in items]),
                        mu_hat=len(admitted) / positive if positive > 0 else None,
                        good=good, bad=len(admitted) - good,
                        good_bad_ratio=good / (len(admitted) - good) if len(admitted) > good else None,
                        eta_gate_mean=mean([i["eta_gate"] for i in admitted])))

    ordered = sorted(zip(config.costs, (r["expansion_rate"] for r in rows)))
    non_increasing = all(y[1] <= x[1] for x, y in zip(ordered, ordered[1:]))
    lowest, highest = per_cost[ordered[0][0]], per_cost[ordered[-1][0]]
    paired = compare([float(i["admitted"]) for i in lowest], [float(i["admitted"]) for i in highest], larger=True)
    outcome = paired.verdict() if non_increasing else "did not hold"
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of(outcome, converged)
    if inner_error > config.inner_tol:  # checked like the runs: an unconverged ΔF_new is not judged
        verdict, reason = "inconclusive", (f"not converged: a candidate's local relaxation ended {inner_error:.2g} "
                                           f"from its closed-form ΔF_new (cap {config.local_steps} steps); {converged}")

    boundary = stat([i["boundary"] for i in per_cost[config.costs[0]]])
    as_predicted = sum(i["admitted"] == i["predicted"] for i in rows_seed)
    first = rows[0]
    checks = [
        check(f"ΔF_new at γ = {first['cost']:g}: γ + min_η(aη² + bη⁴ − wΔη)", first["delta_f_predicted"],
              stat([i["delta_f"] for i in per_cost[config.costs[0]]]), tol=config.inner_tol),
        check("largest |ΔF_new − closed form| over every cost and seed (the local relaxation converged)",
              0.0, inner_error, tol=config.inner_tol),
        check("admission boundary γ* = −min_η(aη² + bη⁴ − wΔη) − τ (admitted iff γ < γ*)", f"{boundary}",
              "admitted where predicted in " f"{as_predicted}/{len(rows_seed)} runs", agrees=as_predicted == len(rows_seed)),
    ]
    listing = ", ".join(f"γ={r['cost']:g}: {r['expansion_rate']:.2f} (theory {r['predicted_rate']:.2f})" for r in rows)
    return result(
        "energy_gated_expansion", config,
        hypothesis="expansion becomes rare as its cost rises: the admission rate does not increase with the cost "
                   "and is lower at the highest cost than at the lowest",
        measured=f"admission rate {listing}; admitted(γ={ordered[0][0]:g}) − admitted(γ={ordered[-1][0]:g}): "
                 f"{paired}; Δη on offer {stat([d[3] for d in draws])}; closed-form boundary γ* = {boundary}; "
                 f"ΔF_new at γ = {first['cost']:g}: {fmt(first['delta_f_mean'], '.3e')} (local relaxation to "
                 f"|pg| ≤ {config.local_tol:g}, cap {config.local_steps} steps); redemption at γ = {first['cost']:g}: "
                 f"{fmt(first['redemption_mean'], '.2e')} (good/bad {first['good']}/{first['bad']})",
        verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="not logged; a re-run of the seed gave: cost 0: expansion 0.86, redemption 0.00293, hazard "
                    "0.729, μ̂ 183.5, good/bad 1.53; cost 0.02: 0.04 / 3.9e-5 / 0.628; cost 0.05, 0.1, 0.2: "
                    "rate 0, hazards 0.501 / 0.329 / 0.137",
        notes="The seed had no coordinator and no energy test: it 'expanded' when the gate's measured η "
              "(from gain − cost) exceeded 0.5, with an unseeded sampled score. Here expansion is the "
              "coordinator's energy gate (ΔF_new + γ < −τ, read from v_expansions), the score is exact, and a "
              "refused repair is not applied. The earlier version stopped the candidate's local relaxation at 50 "
              "steps, which left ΔF_new = +1.7e-3 where the converged value is −2.4e-4, and so refused every "
              "candidate; the local relaxation now runs to convergence (cap reported) and matches the closed "
              "form (its first step is 1.0, not the seed's 0.1: the gate's curvature is at most 2a + 12b = 1.4, so "
              "the step is stable and reaches the same minimum in a tenth of the steps). The admission boundary "
              "is tiny: one repaired value out of 64 is worth only (wΔ)²/4a ≈ 2.4e-4, "
              "so every γ of the seed's grid but 0 refuses it (the noise moves values, not the inversions "
              "the deep dip makes, so Δη is the same in every seed); and an admitted gate settles at η ≈ wΔ/2a ≈ 0.05, "
              "whose blend fixes no inversion, so every admitted repair is 'bad' (redemption 0). μ̂ and the "
              "good/bad ratio are NULL where undefined.",
        metrics={f"rate_cost_{r['cost']:g}": r["expansion_rate"] for r in rows}
        | {**stat_metrics("boundary", boundary), "agree": paired.agree, "admitted_as_predicted": as_predicted,
           "inner_error": inner_error},
        rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """Admission rate and ΔF_new against γ, each beside its closed form."""
    import matplotlib.pyplot as plt

    costs = [r["cost"] for r in result.rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(costs, [r["predicted_rate"] for r in result.rows], "-", color="0.6", label="closed form")
    left.plot(costs, [r["expansion_rate"] for r in result.rows], "o", label=f"measured ({result.seeds} seeds)")
    right.plot(costs, [r["delta_f_predicted"] for r in result.rows], "-", color="0.6",
               label="γ + min(aη² + bη⁴ − wΔη)")
    right.errorbar(costs, [r["delta_f_mean"] for r in result.rows], yerr=[r["delta_f_sd"] or 0 for r in result.rows],
                   fmt="o", ms=4, capsize=2, label="ΔF_new (mean ± sd)")
    right.axhline(-result.config["tau"], color="C3", ls=":", lw=1, label="admission: ΔF_new < −τ")
    for ax, label in ((left, "admission rate"), (right, "ΔF_new")):
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set_xlabel("expansion cost γ")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    right.set_yscale("symlog", linthresh=1e-4)
    fig.tight_layout()
    return {"admission_vs_cost": fig}


STUDY = Study("energy_gated_expansion", "a repair module is admitted only when it pays its complexity cost",
              EnergyGatedExpansionConfig, run, figures)
