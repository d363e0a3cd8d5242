"""Connectivity threshold shift: do sparse non-local shortcuts lower the apparent percolation threshold?

For each bond probability p in ``linspace(p_min, p_max, num)`` and each of
``trials`` seeds, a ``ConnectivityModule`` measures η = |largest component| / n²
of an n×n grid bond-percolation graph, without shortcuts and with
⌊shortcut_frac · kept bonds⌋ random shortcuts. Both arms use the same seeds
(the same kept bonds; shortcuts are drawn after them), so the comparison is
paired. One run per (p, arm) holds one module per trial; it takes no step
(``steps=0``): the study reads the measured η of step 0 from ``v_eta``. The
apparent threshold p_c is the smallest p whose mean η reaches ``threshold``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, ConnectivityModule, RelaxConfig, System
from complexity_from_constraints.projectors import relax

from ._framework import Progress, Study, eta_at, eta_table, fmt, mean, result, row


class ThresholdShiftConfig(AbstractFrozen):
    """The seed's ``non_local_connectivity_threshold_shift`` defaults."""

    n: int = Field(50, ge=2, description="grid side (n² nodes)")
    p_min: float = Field(0.4, ge=0, le=1, description="lowest bond probability")
    p_max: float = Field(0.7, ge=0, le=1, description="highest bond probability")
    num: int = Field(16, ge=1, description="number of p values")
    threshold: float = Field(0.5, gt=0, lt=1, description="mean largest-component fraction that defines p_c")
    shortcut_frac: float = Field(0.02, ge=0, description="shortcuts per kept bond in the shortcut arm")
    trials: int = Field(5, ge=1, description="graphs per p (seeds seed … seed + trials − 1)")
    seed: int = Field(1337, ge=0, description="first graph seed")


def run(config: ThresholdShiftConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    ps = np.linspace(config.p_min, config.p_max, config.num).tolist()
    arms = {"no_shortcuts": 0.0, "with_shortcuts": config.shortcut_frac}
    progress.start(len(ps) * len(arms), "grids")
    runs: list[tuple[str, str, float]] = []
    for arm, fraction in arms.items():
        for k, p in enumerate(ps):
            modules = [ConnectivityModule(id=f"trial{t}", grid_n=config.n, bond_p=p, shortcut_fraction=fraction,
                                          seed=config.seed + t) for t in range(config.trials)]
            system = System(id=f"threshold-{arm}-{k:03d}", modules=modules)
            runs.append((relax(system, RelaxConfig(steps=0), store=store).run_id, arm, p))
            progress.advance()

    measured = eta_table(eta_at(store, [r for r, _, _ in runs], 0))
    curve = {(arm, p): mean(list(measured[run_id].values())) for run_id, arm, p in runs}
    p_c = {arm: next((p for p in ps if curve[(arm, p)] >= config.threshold), None) for arm in arms}
    rows = [row(p=p, mean_lcc_no_shortcuts=curve[("no_shortcuts", p)], mean_lcc_with_shortcuts=curve[("with_shortcuts", p)])
            for p in ps]
    no, yes = p_c["no_shortcuts"], p_c["with_shortcuts"]
    held = no is not None and yes is not None and yes < no or (no is None and yes is not None)
    shift = None if no is None or yes is None else no - yes
    return result(
        "non_local_connectivity_threshold_shift", config,
        hypothesis="sparse random shortcuts lower the apparent percolation threshold p_c "
                   f"(smallest p with mean largest-component fraction ≥ {config.threshold:g})",
        measured=f"p_c without shortcuts {fmt(no, '.4g')}, with {config.shortcut_frac:g}·bonds shortcuts "
                 f"{fmt(yes, '.4g')}: shift {fmt(shift, '.4g')} (n={config.n}, {config.trials} trials, "
                 f"p grid step {fmt((config.p_max - config.p_min) / max(1, config.num - 1), '.3g')})",
        held=held,
        seed_result="not logged; a re-run of the seed gave p_no = 0.52, p_with = 0.46, Δp_c = 0.06 "
                    "(n=50, 5 trials, seed 1337)",
        notes="Same measurement as the seed; the graphs come from numpy's seeded generator instead of Python's "
              "random, so individual graphs differ from the seed's. Both arms share their seeds (paired). "
              "p_c is resolved only to the p grid step.",
        metrics={"p_c_no_shortcuts": no, "p_c_with_shortcuts": yes, "shift": shift},
        rows=rows, run_ids=[r for r, _, _ in runs])


STUDY = Study("non_local_connectivity_threshold_shift", "shortcuts lower the apparent percolation threshold",
              ThresholdShiftConfig, run)
