"""Sequence redemption: does the full sequence judge a planted mistake more kindly than its prefixes?

A ramp ``linspace(0, 1, n)`` with a dip of ``dip`` at ``mistake_pos`` plus
N(0, noise) is scored by monotonicity η (fraction of ordered pairs). The local
(causal) surrogate scores every prefix of length 2 … n, the non-local one the
whole sequence; with loss = 1 − η,

    redemption = mean over prefixes of (loss(prefix) − loss(full)).

Noise alone also produces redemption (short prefixes are judged on few pairs), so every seed
also scores a control: the same noisy ramp without the dip. The effect of the
mistake is the paired difference, redemption(dip) − redemption(control).

That effect is a counting identity, not an emergent property. If the dipped value at p
falls below m of the p values before it (m = p for a deep dip) and the ramp is otherwise
ordered, the prefix of length i > p has loss 2m/(i(i − 1)), the prefixes i ≤ p none, so

    effect = (1/(n − 1))·Σ_{i>p} 2m/(i(i − 1)) − 2m/(n(n − 1)) = (m/p)·(2 − 4p/n)/(n − 1),

positive for p < n/2 and negative beyond. Noise perturbs it slightly; the raw redemption
(noise included) has no closed form and is measured.

Seed s draws the noise from ``seed + s``; one run per seed holds a ``SequenceModule`` per
prefix plus the full sequence, for both arms, and takes no step: the scores are the measured
η of step 0, read from ``v_eta``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, RelaxConfig, SequenceModule, System

from ._evidence import check, compare, convergence, stat, verdict_of
from ._framework import Job, Progress, Study, dipped_ramp, eta_at, eta_table, relax_all, result, row, stat_metrics


class SequenceRedemptionConfig(AbstractFrozen):
    """The seed's ``sequence_redemption`` defaults (scoring is exact unless ``mode="sampled"``), over seeds."""

    n: int = Field(64, ge=3, description="sequence length")
    mistake_pos: int = Field(20, ge=0, description="index of the dip")
    dip: float = Field(0.5, ge=0, description="how far the value at mistake_pos is lowered")
    noise: float = Field(0.01, ge=0, description="std of the Gaussian noise added to every value")
    samples: int = Field(512, ge=1, description="pairs drawn per score when mode = sampled")
    seeds: int = Field(10, ge=1, description="independent noisy sequences; seed s draws its noise from seed + s")
    seed: int = Field(42, ge=0, description="base of the noise seeds")
    mode: Literal["exact", "sampled"] = Field("exact", description="exact inversion count or seeded sampling")


def effect(n: int, p: int, m: int) -> float:
    """The mistake's redemption on an otherwise ordered ramp: (m/p)·(2 − 4p/n)/(n − 1) (0 when m = 0).

    >>> round(effect(64, 20, 20), 6)  # the seed's sizes: (2 − 4·20/64)/63
    0.011905
    >>> effect(64, 32, 32), effect(64, 40, 40) < 0
    (0.0, True)
    """
    return 0.0 if m == 0 else (m / p) * (2 - 4 * p / n) / (n - 1)


def inversions(n: int, p: int, dip: float) -> int:
    """m: how many of the p values before the dip exceed the dipped value on the noise-free ramp."""
    ramp = np.linspace(0.0, 1.0, n)
    return int(np.sum(ramp[:p] > ramp[p] - dip)) if 0 <= p < n else 0


RULE = ("held: the 95% CI of the paired effect redemption(dip) − redemption(no-dip control) lies above 0 and ≥ 80% "
        "of seeds agree; did not hold: it lies below 0 or ≤ 20% agree; else inconclusive")


def run(config: SequenceRedemptionConfig, store, progress: Progress | None = None):
    lengths = range(2, config.n + 1)
    jobs = []
    for s in range(config.seeds):
        kw = dict(mode=config.mode, samples=config.samples, seed=config.seed + s)
        modules = []
        for arm, dip in (("dip", config.dip), ("control", 0.0)):
            values = dipped_ramp(config.n, config.mistake_pos, dip, config.noise,
                                 np.random.default_rng(config.seed + s)).tolist()  # the same noise in both arms
            modules += [SequenceModule(id=f"{arm}:prefix{i:04d}", observation=tuple(values[:i]), **kw) for i in lengths]
            modules.append(SequenceModule(id=f"{arm}:full", observation=tuple(values), **kw))
        jobs.append(Job(system=System(id=f"sequence-redemption-{s:03d}", modules=modules), config=RelaxConfig(steps=0),
                        seed=config.seed + s, labels={"seed": s}))
    runs = relax_all("sequence_redemption", jobs, store, progress)

    scores = eta_table(eta_at(store, runs, 0))
    rows, redemptions, controls = [], [], []
    for s, run_id in enumerate(runs):
        eta = scores[run_id]
        got = {}
        for arm in ("dip", "control"):
            full_loss = 1.0 - eta[f"{arm}:full"]
            prefix_losses = np.array([1.0 - eta[f"{arm}:prefix{i:04d}"] for i in lengths])
            got[arm] = (full_loss, float(prefix_losses.mean()), float(np.mean(prefix_losses - full_loss)))
        redemptions.append(got["dip"][2])
        controls.append(got["control"][2])
        rows.append(row(seed=s, eta_full=1.0 - got["dip"][0], mean_prefix_loss=got["dip"][1], full_loss=got["dip"][0],
                        redemption=got["dip"][2], control_redemption=got["control"][2],
                        due_to_mistake=got["dip"][2] - got["control"][2]))
    r, c = stat(redemptions), stat(controls)
    paired = compare(redemptions, controls, larger=True)
    d = paired.difference
    p, n = config.mistake_pos, config.n
    m = inversions(n, p, config.dip)
    predicted = effect(n, p, m)
    verdict, reason = verdict_of(paired.verdict(), convergence(store, runs))
    checks = [
        check(f"effect of the mistake, (m/p)(2 − 4p/n)/(n − 1) with n = {n}, p = {p}, m = {m} "
              f"(changes sign at p = n/2 = {n / 2:g})", predicted, d, tol=0.1 * abs(predicted) + 1e-12),
        check("redemption with the dip (noise included)", None, r),
        check("redemption of the no-dip control (noise alone)", None, c),
    ]
    return result(
        "sequence_redemption", config,
        hypothesis="redemption > 0: a planted early mistake costs the prefixes more than the full sequence, "
                   "beyond what noise alone does (paired difference to the no-dip control)",
        measured=f"redemption {r}; control without the dip {c}; effect of the mistake {d} "
                 f"({paired.agree:.0%} of seeds positive; counting identity {predicted:.4g}; {config.mode} scoring)",
        verdict=verdict, rule=RULE, reason=reason, seeds=config.seeds, checks=checks,
        seed_result="not logged; a re-run of the seed gave 0.0201 ± 0.0139 over 10 trials (one trial −0.0079), "
                    "nondeterministic because its sampler was unseeded",
        notes="The seed scored every prefix and the full sequence with 512 freshly drawn, unseeded (and "
              "i-biased) pairs, so its redemption mixed the effect with sampling noise. Here the score is the "
              "exact inversion fraction (or seeded, unbiased sampling with --mode sampled), and a no-dip control "
              "shows how much of the redemption noise alone produces. The effect of the mistake is fixed by "
              "counting: (m/p)(2 − 4p/n)/(n − 1), positive only because the mistake sits before the middle "
              "(p < n/2); a mistake past the middle gives the opposite sign. So the verdict restates the identity; "
              "what is measured beyond it is the raw redemption and the noise's share of it.",
        metrics={**stat_metrics("redemption", r), **stat_metrics("control", c), **stat_metrics("effect", d),
                 "effect_predicted": predicted, "agree": paired.agree, "inversions": m},
        rows=rows, run_ids=runs)


def figures(result) -> dict:
    """The counting identity against the mistake's position, with the measured effect (every seed) at its position;
    and each seed's redemption with and without the dip."""
    import matplotlib.pyplot as plt

    cfg = result.config
    n, p = cfg["n"], cfg["mistake_pos"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    positions = np.arange(1, n)
    left.plot(positions, [effect(n, q, inversions(n, q, cfg["dip"])) for q in positions], color="0.5",
              label="counting identity (m/p)(2 − 4p/n)/(n − 1)")
    left.axhline(0.0, color="0.8", lw=0.8)
    left.axvline(n / 2, color="0.8", ls=":", lw=0.8)
    effects = [r["due_to_mistake"] for r in result.rows]
    left.plot([p] * len(effects), effects, "o", ms=4, alpha=0.6, label=f"measured, {len(effects)} seeds")
    left.set_xlabel("position of the mistake p")
    left.set_ylabel("effect of the mistake on redemption")
    left.legend(fontsize=8)
    seeds = [r["seed"] for r in result.rows]
    right.plot(seeds, [r["redemption"] for r in result.rows], "o-", label="with the dip")
    right.plot(seeds, [r["control_redemption"] for r in result.rows], "s-", label="no-dip control (noise alone)")
    right.set_xlabel("seed")
    right.set_ylabel("redemption")
    right.legend(fontsize=8)
    fig.tight_layout()
    return {"effect_vs_position": fig}


STUDY = Study("sequence_redemption", "prefix-only vs full-sequence scoring of a planted mistake",
              SequenceRedemptionConfig, run, figures)
