"""Sequence redemption: does the full sequence judge a planted mistake more kindly than its prefixes?

A ramp ``linspace(0, 1, n)`` with a dip of ``dip`` at ``mistake_pos`` plus
N(0, noise) is scored by monotonicity η (fraction of ordered pairs). The local
(causal) surrogate scores every prefix of length 2 … n, the non-local one the
whole sequence; with loss = 1 − η,

    redemption = mean over prefixes of (loss(prefix) − loss(full)).

Positive redemption means later context dilutes the early mistake. But noise
alone also produces it (short prefixes are judged on few pairs), so every trial
also scores a control: the same noisy ramp without the dip. The effect of the
mistake is the paired difference, redemption(dip) − redemption(control). One
run per trial holds a ``SequenceModule`` per prefix plus the full sequence, for
both arms, and takes no step; the scores are the measured η of step 0, read
from ``v_eta``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, RelaxConfig, SequenceModule, System
from complexity_from_constraints.projectors import relax

from ._framework import Progress, Study, dipped_ramp, eta_at, eta_table, result, row


class SequenceRedemptionConfig(AbstractFrozen):
    """The seed's ``sequence_redemption`` defaults (scoring is exact unless ``mode="sampled"``)."""

    n: int = Field(64, ge=3, description="sequence length")
    mistake_pos: int = Field(20, ge=0, description="index of the dip")
    dip: float = Field(0.5, description="how far the value at mistake_pos is lowered")
    noise: float = Field(0.01, ge=0, description="std of the Gaussian noise added to every value")
    samples: int = Field(512, ge=1, description="pairs drawn per score when mode = sampled")
    trials: int = Field(10, ge=1, description="independent noisy sequences")
    seed: int = Field(42, ge=0, description="trial t draws its noise from seed + t")
    mode: Literal["exact", "sampled"] = Field("exact", description="exact inversion count or seeded sampling")


def run(config: SequenceRedemptionConfig, store, progress: Progress | None = None):
    progress = progress or Progress()
    progress.start(config.trials, "trials")
    lengths = range(2, config.n + 1)
    runs: list[str] = []
    for t in range(config.trials):
        kw = dict(mode=config.mode, samples=config.samples, seed=config.seed + t)
        modules = []
        for arm, dip in (("dip", config.dip), ("control", 0.0)):
            values = dipped_ramp(config.n, config.mistake_pos, dip, config.noise,
                                 np.random.default_rng(config.seed + t)).tolist()  # the same noise in both arms
            modules += [SequenceModule(id=f"{arm}:prefix{i:04d}", observation=tuple(values[:i]), **kw) for i in lengths]
            modules.append(SequenceModule(id=f"{arm}:full", observation=tuple(values), **kw))
        system = System(id=f"sequence-redemption-{t:03d}", modules=modules)
        runs.append(relax(system, RelaxConfig(steps=0), seed=config.seed + t, store=store).run_id)
        progress.advance()

    scores = eta_table(eta_at(store, runs, 0))
    rows, redemptions, controls = [], [], []
    for t, run_id in enumerate(runs):
        eta = scores[run_id]
        got = {}
        for arm in ("dip", "control"):
            full_loss = 1.0 - eta[f"{arm}:full"]
            prefix_losses = np.array([1.0 - eta[f"{arm}:prefix{i:04d}"] for i in lengths])
            got[arm] = (full_loss, float(prefix_losses.mean()), float(np.mean(prefix_losses - full_loss)))
        redemptions.append(got["dip"][2])
        controls.append(got["control"][2])
        rows.append(row(trial=t, eta_full=1.0 - got["dip"][0], mean_prefix_loss=got["dip"][1], full_loss=got["dip"][0],
                        redemption=got["dip"][2], control_redemption=got["control"][2],
                        due_to_mistake=got["dip"][2] - got["control"][2]))
    r, c = np.array(redemptions), np.array(controls)
    d = r - c
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    sd_d = float(d.std(ddof=1)) if d.size > 1 else 0.0
    held = bool(d.mean() - 2 * sd_d / np.sqrt(d.size) > 0) if d.size > 1 else bool(d.mean() > 0)
    return result(
        "sequence_redemption", config,
        hypothesis="redemption > 0: a planted early mistake costs the prefixes more than the full sequence, "
                   "beyond what noise alone does (paired difference to the no-dip control, two standard errors above 0)",
        measured=f"mean redemption {r.mean():.4f} ± {sd:.4f} (sd) over {r.size} trials ({int((r > 0).sum())} positive); "
                 f"control without the dip {c.mean():.4f}; due to the mistake {d.mean():.4f} ± {sd_d:.4f} "
                 f"({int((d > 0).sum())}/{d.size} trials positive, {config.mode} scoring)",
        held=held,
        seed_result="not logged; a re-run of the seed gave 0.0201 ± 0.0139 over 10 trials (one trial −0.0079), "
                    "nondeterministic because its sampler was unseeded",
        notes="The seed scored every prefix and the full sequence with 512 freshly drawn, unseeded (and "
              "i-biased) pairs, so its redemption mixed the effect with sampling noise. Here the score is the "
              "exact inversion fraction (or seeded, unbiased sampling with --mode sampled), so the only noise "
              "is the sequence noise itself. The no-dip control is new: it shows how much of the redemption noise "
              "alone produces.",
        metrics={"redemption_mean": float(r.mean()), "redemption_sd": sd, "control_mean": float(c.mean()),
                 "due_to_mistake_mean": float(d.mean()), "due_to_mistake_sd": sd_d,
                 "positive_trials": int((r > 0).sum())},
        rows=rows, run_ids=runs)


STUDY = Study("sequence_redemption", "prefix-only vs full-sequence scoring of a planted mistake",
              SequenceRedemptionConfig, run)
