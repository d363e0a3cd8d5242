"""Multi-module scaling: sequence + connectivity + gating blocks chained, with and without couplings.

The seed listed this among its hypotheses to run but never built it. A chain
of B blocks; block b holds a ``SequenceModule`` (a noisy ramp with a planted
dip), a ``ConnectivityModule`` (a seeded grid bond-percolation graph) and a
repair ``GateModule``. With couplings on: quadratic springs seq_b – conn_b and
conn_b – seq_(b+1) chain the blocks, and a ``GateBenefitCoupling`` (Δ) offers
each gate the benefit of repairing its sequence. With couplings off the same
modules relax independently. Per run: the spread of final η over the sequence
and connectivity modules (max − min), the first step at which the spread falls
below ``coherence_tol`` (from ``v_eta``), open gates (``v_gating_metrics``),
energies and ΔF90 (``v_run_summary``), and the wall time per step.
"""

from __future__ import annotations

import time

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
from complexity_from_constraints.projectors import relax

from ._framework import (
    Progress,
    Study,
    by_run,
    dipped_ramp,
    eta_traces,
    fmt,
    gating,
    result,
    row,
    run_summaries,
)


class MultiModuleScalingConfig(AbstractFrozen):
    """Chain sizes and block parameters (no seed defaults: the seed never ran it)."""

    sizes: tuple[int, ...] = Field((1, 2, 4, 8, 16), min_length=1, description="numbers of blocks")
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
    steps: int = Field(40, ge=1, description="relaxation steps")
    step_size: float = Field(0.05, gt=0, description="initial Armijo step")
    coherence_tol: float = Field(0.05, gt=0, description="spread of η below which the chain counts as coherent")
    seed: int = Field(0, ge=0, description="block b uses seed + b")


def build(config: MultiModuleScalingConfig, blocks: int, coupled: bool) -> System:
    modules, couplings = [], []
    for b in range(blocks):
        values = dipped_ramp(config.seq_len, config.mistake_pos, config.dip, config.noise,
                             np.random.default_rng(config.seed + b))
        modules += [SequenceModule(id=f"seq{b}", observation=tuple(values.tolist())),
                    ConnectivityModule(id=f"conn{b}", grid_n=config.grid_n, bond_p=config.bond_p, seed=config.seed + b),
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


def run(config: MultiModuleScalingConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, line_search="armijo", tol=0.0)
    progress.start(2 * len(config.sizes), "chains")
    runs = []
    for blocks in config.sizes:
        for coupled in (False, True):
            system = build(config, blocks, coupled)
            start = time.perf_counter()
            run_id = relax(system, relax_config, seed=config.seed, store=store).run_id
            runs.append((run_id, blocks, coupled, time.perf_counter() - start))
            progress.advance()

    run_ids = [r for r, *_ in runs]
    summary = by_run(run_summaries(store, run_ids))
    gates = by_run(gating(store, run_ids))
    traces = eta_traces(store, run_ids).filter(~pl.col("entity_id").str.starts_with("gate"))
    spread = traces.group_by("run_id", "step").agg((pl.col("eta").max() - pl.col("eta").min()).alias("spread"))
    rows, final_spread = [], {}
    for run_id, blocks, coupled, wall in runs:
        own = spread.filter(pl.col("run_id") == run_id).sort("step")
        last = float(own["spread"][-1])
        coherent = own.filter(pl.col("spread") <= config.coherence_tol)["step"]
        final_spread[(blocks, coupled)] = last
        s = summary[run_id]
        rows.append(row(blocks=blocks, coupled=coupled, modules=3 * blocks, spread0=float(own["spread"][0]),
                        spread_final=last, coherent_at=int(coherent[0]) if len(coherent) else None,
                        gates_open=gates[run_id]["open_at_end"], e0=s["e0"], final_energy=s["final_energy"],
                        delta_f90=s["delta_f90"], accepted_steps=s["accepted_steps"],
                        ms_per_step=1000 * wall / max(1, s["steps"] or 1)))
    tighter = sum(final_spread[(b, True)] < final_spread[(b, False)] for b in config.sizes)
    held = tighter == len(config.sizes)
    gates_coupled = sum(r["gates_open"] for r in rows if r["coupled"])
    gates_uncoupled = sum(r["gates_open"] for r in rows if not r["coupled"])
    spreads = ", ".join(f"B={b}: {final_spread[(b, True)]:.3g} vs {final_spread[(b, False)]:.3g}" for b in config.sizes)
    biggest = max(config.sizes)
    ms = {r["coupled"]: r["ms_per_step"] for r in rows if r["blocks"] == biggest}
    return result(
        "multi_module_scaling", config,
        hypothesis="coupling the chain makes it cohere: at every size the coupled chain ends with a smaller spread "
                   "of η across its sequence and connectivity modules than the same modules uncoupled",
        measured=f"final spread coupled vs uncoupled after {config.steps} steps: {spreads} (smaller when coupled at "
                 f"{tighter}/{len(config.sizes)} sizes); gates open at the end: {gates_coupled} coupled, "
                 f"{gates_uncoupled} uncoupled; {fmt(ms.get(True), '.3g')} ms/step coupled at B={biggest} "
                 f"({3 * biggest} modules)",
        held=held,
        seed_result="the seed listed this experiment among its hypotheses to run but never ran it",
        notes="Sequence and connectivity modules are wells at η = 1, so uncoupled they already agree once relaxed; "
              "the springs mainly matter while they move (the spread at a finite step budget), and the benefit "
              "couplings are what open the gates. Wall time includes recording every step to the store.",
        metrics={"sizes_tighter_when_coupled": tighter, "gates_open_coupled": gates_coupled,
                 "gates_open_uncoupled": gates_uncoupled},
        rows=rows, run_ids=run_ids)


STUDY = Study("multi_module_scaling", "sequence + connectivity + gate blocks, chained vs independent",
              MultiModuleScalingConfig, run)
