"""Auto-balance demo: do weightings keep every term's gradient norm near a target?

The seed's scenario: a ramp of 64 values with a glitch of −0.3 at position 20
and N(0, noise) (clipped to [0, 1]) is a ``SequenceModule``; a repair
``GateModule`` (gain Δ, cost 0.1, k 12, a 0.4, b 0.6) is tied to it by a
``GateBenefitCoupling`` (weight 1.2, Δ = the η gained by the cumulative-max
repair) and a ``QuadraticCoupling`` (0.3). The System's family weights are
the seed's term weights {sequence 0.25, gate 2.5, gate_benefit 1.2, quadratic 0.4}.
It is relaxed (Armijo, normalised directions) with no weighting (``baseline``),
``GradNormWeighting(target 1, α 1.2, rate 0.2)`` (``gradnorm``) and optionally
``AutoBalanceWeighting`` (``auto_balance``), recording every kind's weighted
gradient norm at every step (``TermsRecorded``) and every weight change
(``WeightsAdapted``), read back from ``v_terms_by_step`` and
``v_weight_history``; step counts and energies come from ``v_run_summary``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, AutoBalanceWeighting, DirectionConfig, GradNormWeighting, RelaxConfig
from complexity_from_constraints.projectors import compile_system, energy, relax

from ._framework import (
    Progress,
    Study,
    by_run,
    fmt,
    glitch_system,
    mean,
    query_runs,
    result,
    row,
    run_summaries,
)

Scenario = Literal["baseline", "gradnorm", "auto_balance"]


class AutoBalanceConfig(AbstractFrozen):
    """The seed's ``auto_balance_demo`` defaults."""

    steps: int = Field(30, ge=1, description="relaxation steps per scenario")
    seed: int = Field(7, ge=0, description="seed of the sequence noise")
    noise: float = Field(0.02, ge=0, description="sequence noise")
    scenarios: tuple[Scenario, ...] = Field(("baseline", "gradnorm"), min_length=1,
                                            description="baseline, gradnorm, auto_balance")
    target: float = Field(1.0, gt=0, description="target gradient norm of every term")
    alpha: float = Field(1.2, ge=0, description="GradNorm α")
    rate: float = Field(0.2, gt=0, description="GradNorm update rate")
    step_size: float = Field(0.05, gt=0, description="initial Armijo step")


def run(config: AutoBalanceConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    weights = {"sequence": 0.25, "gate": 2.5, "gate_benefit": 1.2, "quadratic": 0.4}
    system, delta = glitch_system("auto-balance", config.seed, config.noise, position=20, glitch=0.3, cost=0.1, k=12.0,
                                  a=0.4, b=0.6, benefit=1.2, spring=0.3, weights=weights)
    weightings = {"baseline": None,
                "gradnorm": GradNormWeighting(target=config.target, alpha=config.alpha, rate=config.rate),
                "auto_balance": AutoBalanceWeighting(target=config.target)}
    fixed = compile_system(system)
    progress.start(len(config.scenarios), "scenarios")
    runs = {}
    for scenario in config.scenarios:
        relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, line_search="armijo",
                                   direction=DirectionConfig(normalize=True), weighting=weightings[scenario],
                                   record_terms_every=1)
        out = relax(system, relax_config, seed=config.seed, store=store)
        runs[scenario] = (out.run_id, energy(fixed, out.eta))
        progress.advance()

    run_ids = [r for r, _ in runs.values()]
    summary = by_run(run_summaries(store, run_ids))
    terms = query_runs(store, "SELECT run_id, grad_norm FROM v_terms_by_step WHERE list_contains($ids, run_id) "
                              "AND grad_norm IS NOT NULL", run_ids)
    history = query_runs(store, "SELECT run_id, step, kind, weight, previous FROM v_weight_history "
                                "WHERE list_contains($ids, run_id) ORDER BY run_id, step, kind", run_ids)
    rows, near = [], {}
    for scenario, (run_id, fixed_energy) in runs.items():
        norms = terms.filter(terms["run_id"] == run_id)["grad_norm"].to_list()
        mine = history.filter(history["run_id"] == run_id)
        steps = sorted(set(mine["step"].to_list()))
        within = [config.target / 2 <= n <= 2 * config.target for n in norms]
        logs = [abs(math.log10(n / config.target)) for n in norms if n > 0]
        near[scenario] = mean(within)
        final = dict(weights)
        for kind, weight in mine.select("kind", "weight").iter_rows():
            final[kind] = weight  # rows are in step order: the last one wins
        first = mine.filter(mine["step"] == steps[0]) if steps else None
        started = None if first is None else all(weights[k] == p for k, p in first.select("kind", "previous").iter_rows())
        s = summary[run_id]
        rows.append(row(scenario=scenario, within_2x=mean(within), mean_abs_log10=mean(logs),
                        accepted_steps=s["accepted_steps"], steps=s["steps"], weight_changes=len(steps),
                        started_from_configured=started, **{f"w_{k}": v for k, v in sorted(final.items())},
                        final_energy_fixed=fixed_energy, final_energy=s["final_energy"], e0=s["e0"]))
    held = None
    if "baseline" in near and "gradnorm" in near:
        held = (near["gradnorm"] or 0) > (near["baseline"] or 0)
    listing = ", ".join(f"{r['scenario']} {fmt(r['within_2x'], '.2f')} ({r['weight_changes']} weight changes, "
                        f"{r['accepted_steps']}/{r['steps']} steps accepted)" for r in rows)
    return result(
        "auto_balance_demo", config,
        hypothesis=f"GradNorm keeps the term gradient norms near the target ({config.target:g}): a larger share "
                   "of (step, term) norms lies within a factor 2 of it than without a weighting",
        measured=f"share of term norms within [target/2, 2·target]: {listing}; returned state on the configured "
                 "objective: " + ", ".join(f"{r['scenario']} {r['final_energy_fixed']:.4f}" for r in rows)
                 + f"; Δ on offer {delta:.4f}",
        held=held,
        seed_result="two runs: --steps 5: baseline completed 5 updates, gradnorm stopped after 2 (E 0.111 → 0.207 "
                    "as the weights changed); --steps 30: baseline stopped at update 14, gradnorm at update 2; final "
                    "gradnorm weights ≈ {GB 1.23–1.24, Q 1.18, gate 1.09–1.14, seq 1.23–1.24}",
        notes="The seed's GradNorm restarted every weight from 1.0 (the gate's configured 2.5 became 1.08–1.14 in "
              "one step) and its acceptance test compared energies under different weights, so the run "
              "stopped after 2 updates. Here weightings start from the configured family weights, the "
              "reference energy is re-evaluated after every weight change, and every scenario runs its full "
              "step budget. final_energy_fixed is the returned state on the configured objective.",
        metrics={f"within_2x_{k}": v for k, v in near.items()} | {"delta": delta},
        rows=rows, run_ids=[r for r, _ in runs.values()])


STUDY = Study("auto_balance_demo", "do weightings keep term gradient norms near a target?", AutoBalanceConfig, run)
