"""Multi-module scaling: sequence + connectivity + gating blocks chained, with and without couplings.

The seed listed this among its hypotheses to run but never built it. A chain
of B blocks; block b holds a ``SequenceModule`` (a noisy ramp with a planted
dip), a ``ConnectivityModule`` (a seeded grid bond-percolation graph) and a
repair ``GateModule``. With couplings on: quadratic springs seq_b – conn_b and
conn_b – seq_(b+1) chain the blocks, and a ``GateBenefitCoupling`` (Δ) offers
each gate the benefit of repairing its sequence. With couplings off the same
modules relax independently. Seed s draws every block's noise and grid (block b of seed s
uses the generator ``[s, b]`` and grid seed ``1000·s + b``), so the starting η differ by seed;
each run goes to convergence (Armijo, capped). Per run, from ``v_eta``: the spread of η over
the sequence and connectivity modules (max − min) at the end, after ``budget`` steps (what an
earlier version judged), and the first step at which it is at most ``coherence_tol`` (a common
target for both arms); open gates from ``v_gating_metrics``; steps and status from
``v_run_summary``.

Theory: sequence and connectivity modules are Landau wells at η = 1, and a quadratic spring
(η_i − η_j)² is 0 when both are at 1, so with or without couplings the minimum puts every one of
them at η = 1: the converged spread is 0 in both arms. A gate feels its benefit as a constant pull
w·Δ (∂φ/∂η_seq = 0, so the sequence feels nothing back); it settles where 2aη + 4bη³ = w·Δ.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import Field

from complexity_from_constraints.entities import (
    AbstractFrozen,
    ConnectivityModule,
    GateBenefitCoupling,
    GateModule,
    QuadraticCoupling,
    RelaxConfig,
    SequenceModule,
    System,
)

from ._evidence import check, compare, convergence, stat, verdict_of
from ._framework import (
    Job,
    Progress,
    Study,
    by_run,
    dipped_ramp,
    gate_minimum,
    gating,
    query_runs,
    relax_all,
    result,
    row,
    run_summaries,
    stat_metrics,
)

RULE = ("held: at every size the 95 % CI of the paired difference (coupled − uncoupled) in converged spread lies below "
        "0 and ≥ 80 % of seeds are smaller by more than 1e-6; did not hold: at some size the CI lies above 0 or ≤ 20 % "
        "of seeds are smaller; else inconclusive")
TIE = 1e-6


class MultiModuleScalingConfig(AbstractFrozen):
    """Chain sizes and block parameters (no seed defaults: the seed never ran it), over seeds, run to convergence."""

    seeds: int = Field(10, ge=1, description="seeds; seed s draws every block's sequence noise and grid")
    sizes: tuple[int, ...] = Field((1, 4, 8), min_length=1, description="numbers of blocks")
    seq_len: int = Field(64, ge=3, description="length of each block's sequence")
    mistake_pos: int = Field(20, ge=0, description="index of each sequence's dip")
    dip: float = Field(0.5, description="depth of the dip")
    noise: float = Field(0.01, ge=0, description="sequence noise")
    grid_n: int = Field(16, ge=2, description="side of each connectivity grid")
    bond_p: float = Field(0.5, ge=0, le=1, description="bond probability of the grids")
    coupling_weight: float = Field(0.5, ge=0, description="weight of the quadratic springs")
    benefit_weight: float = Field(1.0, ge=0, description="weight of the gate-benefit couplings")
    delta: float = Field(0.3, description="benefit Δ offered to each gate")
    gate_cost: float = Field(0.1, description="each gate's cost")
    steps: int = Field(3000, ge=1, description="step cap per run (a run stops once converged)")
    tol: float = Field(1e-8, gt=0, description="converged when the projected-gradient norm is below this")
    step_size: float = Field(0.4, gt=0, description="initial Armijo step")
    budget: int = Field(40, ge=0, description="the earlier version's step budget: the spread is also read there")
    coherence_tol: float = Field(0.05, gt=0, description="spread of η at or below which the chain counts as coherent")


def build(config: MultiModuleScalingConfig, blocks: int, coupled: bool, seed: int = 0) -> System:
    modules, couplings = [], []
    for b in range(blocks):
        values = dipped_ramp(config.seq_len, config.mistake_pos, config.dip, config.noise,
                             np.random.default_rng([seed, b]))
        modules += [SequenceModule(id=f"seq{b}", observation=tuple(values.tolist())),
                    ConnectivityModule(id=f"conn{b}", grid_n=config.grid_n, bond_p=config.bond_p, seed=1000 * seed + b),
                    GateModule(id=f"gate{b}", cost=config.gate_cost)]
        if coupled:
            couplings += [QuadraticCoupling(id=f"sc{b}", i=f"seq{b}", j=f"conn{b}", weight=config.coupling_weight),
                          GateBenefitCoupling(id=f"gb{b}", i=f"gate{b}", j=f"seq{b}", delta=config.delta,
                                              weight=config.benefit_weight)]
            if b + 1 < blocks:
                couplings.append(QuadraticCoupling(id=f"cs{b}", i=f"conn{b}", j=f"seq{b + 1}",
                                                   weight=config.coupling_weight))
    name = "coupled" if coupled else "uncoupled"
    return System(id=f"chain-{blocks}-{name}", modules=modules, couplings=couplings)


SPREAD_SQL = """
    SELECT run_id, step, max(eta) - min(eta) AS spread FROM v_eta
    WHERE list_contains($ids, run_id) AND NOT starts_with(entity_id, 'gate')
    GROUP BY run_id, step ORDER BY run_id, step"""


def run(config: MultiModuleScalingConfig, store, progress: Progress | None = None):
    seeds = range(config.seeds)
    relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, line_search="armijo", tol=config.tol)
    jobs = [Job(system=build(config, blocks, coupled, s), config=relax_config, seed=s,
                labels={"blocks": blocks, "coupled": coupled})
            for blocks in config.sizes for coupled in (False, True) for s in seeds]
    run_ids = relax_all("multi_module_scaling", jobs, store, progress)
    cell = {(j.labels["blocks"], j.labels["coupled"], j.seed): r for j, r in zip(jobs, run_ids)}
    summary = by_run(run_summaries(store, run_ids))
    gates = by_run(gating(store, run_ids))
    gate_final = query_runs(store, """SELECT run_id, avg(eta) AS eta FROM (
        SELECT run_id, eta FROM v_eta WHERE list_contains($ids, run_id) AND starts_with(entity_id, 'gate')
        QUALIFY step = max(step) OVER (PARTITION BY run_id)) GROUP BY run_id""", run_ids)
    gate_eta_of = dict(gate_final.select("run_id", "eta").iter_rows())
    spreads = query_runs(store, SPREAD_SQL, run_ids)

    runs = {}
    for key, r in cell.items():
        own = spreads.filter(pl.col("run_id") == r)
        at_budget = own.filter(pl.col("step") <= config.budget)["spread"]
        coherent = own.filter(pl.col("spread") <= config.coherence_tol)["step"]
        s = summary[r]
        runs[key] = dict(spread=float(own["spread"][-1]), spread0=float(own["spread"][0]),
                         at_budget=float(at_budget[-1]), coherent_at=int(coherent[0]) if len(coherent) else None,
                         gates_open=gates[r]["open_at_end"], eta_gate=gate_eta_of[r], steps=s["steps"],
                         status=s["status"], trace=own.select("step", "spread").rows())

    outcomes, rows, size_stats, checks = [], [], {}, []
    gate = GateModule(id="g", cost=config.gate_cost)
    eta_star = gate_minimum(gate.a, gate.b, config.benefit_weight * config.delta)
    for blocks in config.sizes:
        arm = {c: [runs[(blocks, c, s)] for s in seeds] for c in (False, True)}
        paired = compare([x["spread"] for x in arm[True]], [x["spread"] for x in arm[False]], larger=False, tie=TIE)
        outcomes.append(paired.verdict())
        st = {c: {k: stat([x[k] for x in arm[c] if x[k] is not None])
                  for k in ("spread", "at_budget", "coherent_at", "steps", "gates_open", "eta_gate")} for c in arm}
        size_stats[blocks] = (paired, st)
        budget_pair = compare([x["at_budget"] for x in arm[True]], [x["at_budget"] for x in arm[False]], larger=False)
        for c in (False, True):
            for s, x in zip(seeds, arm[c]):
                rows.append(row(table="runs", blocks=blocks, coupled=c, seed=s, modules=3 * blocks,
                                spread0=x["spread0"], spread_at_budget=x["at_budget"], spread_final=x["spread"],
                                coherent_at=x["coherent_at"], gates_open=x["gates_open"], eta_gate=x["eta_gate"],
                                steps=x["steps"], status=x["status"]))
            rows.append(row(table="sizes", blocks=blocks, coupled=c, spread_final_mean=st[c]["spread"].mean,
                            spread_at_budget_mean=st[c]["at_budget"].mean, spread_at_budget_sd=st[c]["at_budget"].sd,
                            coherent_at_mean=st[c]["coherent_at"].mean, coherent_at_sd=st[c]["coherent_at"].sd,
                            coherent_n=st[c]["coherent_at"].n, steps_mean=st[c]["steps"].mean,
                            gates_open_mean=st[c]["gates_open"].mean,
                            budget_difference=budget_pair.difference.mean if c else None,
                            difference=paired.difference.mean if c else None, agree=paired.agree if c else None))
        if blocks == max(config.sizes):
            for c in (False, True):
                longest = max(len(x["trace"]) for x in arm[c])
                for k in range(longest):
                    here = [x["trace"][min(k, len(x["trace"]) - 1)][1] for x in arm[c]]
                    rows.append(row(table="trace", blocks=blocks, coupled=c, index=k, spread_mean=float(np.mean(here)),
                                    spread_sd=float(np.std(here))))
    for c, name in ((False, "uncoupled"), (True, "coupled")):
        checks.append(check(f"converged spread of η over sequence + connectivity modules, {name} (every one is a "
                            "well at η = 1; springs vanish there)", 0.0,
                            stat([runs[(b, c, s)]["spread"] for b in config.sizes for s in seeds]), tol=1e-4))
    checks += [
        check(f"gate η, coupled: root of 2aη + 4bη³ = w·Δ = {config.benefit_weight * config.delta:g} (a = {gate.a:g}, "
              f"b = {gate.b:g})", eta_star, stat([runs[(b, True, s)]["eta_gate"] for b in config.sizes for s in seeds]),
              tol=1e-3),
        check("gate η, uncoupled (no pull: the minimum of aη² + bη⁴ is 0)", 0.0,
              stat([runs[(b, False, s)]["eta_gate"] for b in config.sizes for s in seeds]), tol=1e-3),
    ]
    outcome = ("held" if all(o == "held" for o in outcomes)
               else "did not hold" if any(o == "did not hold" for o in outcomes) else "inconclusive")
    converged = convergence(store, run_ids)
    verdict, reason = verdict_of(outcome, converged)

    def per_size(pick) -> str:
        return "; ".join(f"B={b}: {pick(*size_stats[b])}" for b in config.sizes)

    measured = (f"converged spread coupled vs uncoupled — " + per_size(
                    lambda p, st: f"{st[True]['spread'].mean:.2g} vs {st[False]['spread'].mean:.2g} (coupled smaller "
                                  f"in {p.agree:.0%} of {p.n} seeds)")
                + f". Steps to spread ≤ {config.coherence_tol:g}: " + per_size(
                    lambda p, st: f"{st[True]['coherent_at']} vs {st[False]['coherent_at']}")
                + f". Gates open per block at the end: coupled "
                + f"{np.mean([runs[k]['gates_open'] / k[0] for k in runs if k[1]]):.2f}, uncoupled "
                + f"{np.mean([runs[k]['gates_open'] / k[0] for k in runs if not k[1]]):.2f}; {converged}, cap "
                  f"{config.steps} steps")
    metrics = {"converged": converged.converged, "runs": len(run_ids)}
    for b in config.sizes:
        p, st = size_stats[b]
        metrics |= {f"agree_B{b}": p.agree} | stat_metrics(f"spread_difference_B{b}", p.difference)
        metrics |= stat_metrics(f"coherent_at_coupled_B{b}", st[True]["coherent_at"])
        metrics |= stat_metrics(f"coherent_at_uncoupled_B{b}", st[False]["coherent_at"])
    return result(
        "multi_module_scaling", config,
        hypothesis="coupling the chain makes it cohere: at every size the coupled chain, relaxed to convergence, ends "
                   "with a smaller spread of η across its sequence and connectivity modules than the same modules "
                   "uncoupled",
        measured=measured, verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="the seed listed this experiment among its hypotheses to run but never ran it",
        notes="The previous version held only because it stopped after 40 steps, while the modules were still moving "
              "to η = 1; with --steps 400 both spreads were 0 and it failed. Run to convergence, both arms reach the "
              "common minimum (every sequence and connectivity module at η = 1), so the claim does not hold: the "
              "springs change how fast the chain gets there, not where it ends, and even the speed depends on the "
              "solver's step: with the default step 0.4 the uncoupled chain reaches spread ≤ coherence_tol (a target "
              "common to both arms) sooner, while with --step-size 0.05 (the earlier default) the coupled one does "
              "(13 vs 22 steps at B = 16, 3 seeds) and after 40 steps its spread is 2e-3 against 7e-3, the "
              "transient the earlier ✔ rested on. The benefit "
              "couplings are what open the gates, at the closed-form η. The chain sizes default to 1, 4 and 8 "
              "blocks to keep the default cheap; --sizes 1,2,4,8,16 runs the old grid.",
        metrics=metrics, rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """Steps to coherence against chain size, and the spread along the run at the largest size (mean ± sd)."""
    import matplotlib.pyplot as plt

    sizes = [r for r in result.rows if r["table"] == "sizes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for c, label in ((False, "uncoupled"), (True, "coupled")):
        mine = [r for r in sizes if r["coupled"] == c]
        ax.errorbar([r["blocks"] for r in mine], [r["coherent_at_mean"] for r in mine],
                    yerr=[r["coherent_at_sd"] or 0 for r in mine], fmt="o-", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("blocks B")
    ax.set_ylabel(f"first step with spread ≤ {result.config['coherence_tol']:g}")
    ax.set_title(f"steps to coherence (mean ± sd over {result.seeds} seeds); both end at spread 0")
    ax.legend()

    fig2, ax2 = plt.subplots(figsize=(6, 4))
    trace = [r for r in result.rows if r["table"] == "trace"]
    for c, label in ((False, "uncoupled"), (True, "coupled")):
        mine = [r for r in trace if r["coupled"] == c]
        k = np.array([r["index"] for r in mine])
        m, sd = np.array([r["spread_mean"] for r in mine]), np.array([r["spread_sd"] for r in mine])
        line, = ax2.plot(k, m, label=label)
        ax2.fill_between(k, np.maximum(m - sd, 1e-12), m + sd, color=line.get_color(), alpha=0.2)
    ax2.set_yscale("symlog", linthresh=1e-4)
    ax2.set_xlabel("recorded state (accepted step)")
    ax2.set_ylabel("spread of η (max − min)")
    ax2.set_title(f"spread along the run, B = {max(r['blocks'] for r in sizes)}")
    ax2.legend()
    return {"steps_to_coherence": fig, "spread_along_run": fig2}


STUDY = Study("multi_module_scaling", "sequence + connectivity + gate blocks, chained vs independent",
              MultiModuleScalingConfig, run, figures)
