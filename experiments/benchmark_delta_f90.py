"""The ΔF90 benchmark: every solver preset on the seed's baseline and dense scenarios.

ΔF_q is the first step k (step 0 = the initial state) with
E_k ≤ E_0 − q·(E_0 − min_j E_j), read from ``v_delta_f90`` (q = 0.9, 0.99);
accepted steps and backtracks come from ``v_step_stats`` and the final energy
(of the returned, best accepted state) from ``v_run_summary``. Presets with a
weighting change the objective while they run, so their recorded
energies are of a moving objective; every preset's returned state is therefore
also evaluated under the System's fixed objective (``final_energy_fixed``),
which is the only column comparable across presets. Wall time is the median
of ``repeats`` runs with recording off (``events.NullStore``).

Scenarios (the seed's harness): **baseline**, two gates (seq: gain 0, cost
0.1, a 0.2, b 0.3; gate: gain 0.1, cost 0.05, a 0.25, b 0.35), a quadratic
coupling 0.7 and a gate benefit 0.8 with Δ = 0.08 (E₀ = 0.213087); **dense**
(n), n gates (a 0.15, b 0.05, gain 0.02·(i mod 5), cost 0.1) on a ring of
quadratic couplings 0.6, skip couplings (i, i+2) 0.3 and gate benefits
(i+1 → i) 0.4 with Δ = 0.05 (E₀ = 0.343396 for n = 16).
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
from complexity_from_constraints.projectors import compile_system, energy, relax

from ._framework import Progress, Study, by_run, result, row, run_summaries

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


class BenchmarkConfig(AbstractFrozen):
    """Presets, scenarios and the step budget (the seed's reference numbers were recorded at 60 steps)."""

    presets: tuple[str, ...] = Field(tuple(PRESETS), min_length=1, description=f"presets: {', '.join(PRESETS)}")
    scenarios: tuple[Literal["baseline", "dense"], ...] = Field(("baseline", "dense"), min_length=1,
                                                                description="scenarios to run")
    dense_size: int = Field(16, ge=3, description="gates in the dense scenario")
    steps: int = Field(60, ge=1, description="step budget of every run")
    step_size: float = Field(0.05, gt=0, description="step size (initial step for Armijo)")
    repeats: int = Field(3, ge=1, description="unrecorded runs timed per cell (median)")
    seed: int = Field(0, ge=0, description="the runs' seed")

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


def run(config: BenchmarkConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    systems = {"baseline": baseline(), "dense": dense(config.dense_size)}
    progress.start(len(config.presets) * len(config.scenarios), "runs")
    cells, failures = [], []
    for scenario in config.scenarios:
        system = systems[scenario]
        fixed = compile_system(system)
        for preset in config.presets:
            relax_config = RelaxConfig(steps=config.steps, step_size=config.step_size, **PRESETS[preset][1])
            try:
                out = relax(system, relax_config, seed=config.seed, store=store)
                times = []
                for _ in range(config.repeats):
                    start = time.perf_counter()
                    relax(system, relax_config, seed=config.seed, store=NullStore())
                    times.append(time.perf_counter() - start)
            except Exception as exc:  # a solver that fails is reported, not hidden
                failures.append(f"{preset}/{scenario}: {type(exc).__name__}: {exc}".splitlines()[0])
            else:
                cells.append((out.run_id, preset, scenario, energy(fixed, out.eta), statistics.median(times)))
            progress.advance()

    summary = by_run(run_summaries(store, [c[0] for c in cells]))
    rows, got = [], {}
    for run_id, preset, scenario, fixed_energy, wall in cells:
        s = summary[run_id]
        got[(preset, scenario)] = dict(f90=s["delta_f90"], fixed=fixed_energy)
        rows.append(row(scenario=scenario, preset=preset, delta_f90=s["delta_f90"], delta_f99=s["delta_f99"],
                        e0=s["e0"], final_energy=s["final_energy"], final_energy_fixed=fixed_energy,
                        accepted_steps=s["accepted_steps"], backtracks=s["total_backtracks"], status=s["status"],
                        wall_ms=1000 * wall,
                        seed=SEED.get((preset, scenario, config.dense_size if scenario == "dense" else None,
                                       config.steps))))
    claim = {k: got.get((k, "dense")) for k in ("smallgain", "gradnorm")}
    if all(claim.values()) and None not in (claim["smallgain"]["f90"], claim["gradnorm"]["f90"]):
        sg, gn = claim["smallgain"], claim["gradnorm"]
        held = sg["f90"] < gn["f90"] and sg["fixed"] <= gn["fixed"]
        verdict = (f"dense: SmallGain ΔF90 {sg['f90']} vs GradNorm {gn['f90']}, fixed-objective final energy "
                   f"{sg['fixed']:.6f} vs {gn['fixed']:.6f}")
    else:
        held, verdict = None, "SmallGain vs GradNorm on dense not run"
    lowest = []
    for sc in config.scenarios:
        mine = [r for r in rows if r["scenario"] == sc]
        if mine:
            floor = min(r["final_energy_fixed"] for r in mine)
            reach = [r["preset"] for r in mine if r["final_energy_fixed"] <= floor + 1e-6]
            lowest.append(f"{sc}: {len(reach)}/{len(mine)} presets reach the lowest fixed-objective energy "
                          f"{floor:.6f} ({', '.join(reach)})")
    return result(
        "benchmark_delta_f90", config,
        hypothesis="the seed's headline: on the dense scenario SmallGain reaches 90 % of its energy drop in fewer "
                   "steps than GradNorm and ends at a lower energy (compared here on the same, fixed objective)",
        measured=f"{verdict}; {'; '.join(lowest)}; {len(cells)} runs"
                 + (f"; failed: {'; '.join(failures)}" if failures else ""),
        held=held,
        seed_result="re-run at HEAD, 60 steps, baseline / dense16: analytic 22 / 40, vect 9 / 17, smallgain 9 / 12, "
                    "gradnorm 10 / 20 (SmallGain 'with 4–52× better final energy'); per-preset numbers in the "
                    "rows' seed column as ΔF90 (energy_final)",
        notes="The seed's harness missed E₀ in gradient mode (its ΔF90 was 1 + k from after the first step), "
              "ignored the step budget in prox/ADMM/CD, reported the last emitted energy instead of the returned "
              "state's, stopped its line-search presets early through armijo_failed_fallback, and its "
              "SmallGain multiplied every coupling weight, including the negative gate benefit, so its energies "
              "were of other functions. Here every preset honours the step budget, records step 0 and "
              "returns its best accepted state; final_energy_fixed evaluates that state on the System's own "
              "objective. The dense scenario's ring wraps around (i + 1 mod n), which reproduces the seed's E₀.",
        metrics={f"f90_{p}_{s}": got[(p, s)]["f90"] for p, s in got} | {"failures": len(failures)},
        rows=rows, run_ids=[c[0] for c in cells])


STUDY = Study("benchmark_delta_f90", "ΔF90 / ΔF99, final energy and wall time of every solver preset",
              BenchmarkConfig, run)
