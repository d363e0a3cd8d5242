"""Branching coexistence: do several branches survive when each must open its own gate?

A tree grows from one root for ``depth`` levels. Every live branch proposes
two children with gains g ~ N(gain_mean, gain_std); each child is a hazard
``GateModule`` (gain g, cost, k) and survives only if its gate is open
(η ≥ threshold, i.e. λ = softplus(k(g − cost)) ≥ ln 2, i.e. g ≥ cost). When
more than ``keep`` children open at one level, a Gumbel race over k(g − cost)
keeps ``keep`` of them (the seed's top-2 selection, applied only among open
gates). Ends = live branches at the last level.

Theory. A child opens with probability p = P(g ≥ cost) = Φ((gain_mean − cost)/gain_std),
so a branch has Binomial(2, p) open children: mean offspring m = 2p and offspring
pgf G(s) = (1 − p + ps)². Without the cap this is a Galton–Watson process, which
dies out for sure when m ≤ 1 and otherwise with the smallest root q of q = G(q),
q = ((1 − p)/p)². With the cap the number of live branches is a Markov chain on
{0, …, keep} (n live → min(Binomial(2n, p), keep)), whose distribution after
``depth`` levels gives the exact extinction and coexistence probabilities that
the study prints beside the measured shares.

Each (gain mean, seed) is one job: the seed's ``trees`` trees, each drawn as
``depth`` levels of at most 2·keep proposal slots (the children of the i-th live
branch take slots 2i, 2i + 1; gains are i.i.d., so this is the same process as
a full binary tree, at 2 + 2·keep·(depth − 1) gates instead of 2^(depth+1) − 2),
recorded without stepping (``steps=0``). Which gates opened is read from
``v_gate_events`` (their ``GateOpened`` at step 0) and their hazards from
``v_eta`` (λ = −ln(1 − η)). The Gumbel draws come from the job's seeded generator.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, GateModule, RelaxConfig, System

from ._evidence import check, convergence, stat, verdict_of
from ._framework import Job, Progress, Study, eta_at, eta_table, query_runs, relax_all, result, row, stat_metrics


class BranchingConfig(AbstractFrozen):
    """The seed's ``branching_coexistence`` defaults, over seeds, plus a few gain means for the extinction curve."""

    depth: int = Field(8, ge=1, le=30, description="levels of the tree")
    seeds: int = Field(10, ge=1, description="seeds per gain mean; seed s draws its own trees' gains and races")
    trees: int = Field(20, ge=1, description="trees per seed (each seed's shares are over these)")
    cost: float = Field(0.1, description="every gate's cost")
    k: float = Field(8.0, gt=0, description="gate sharpness")
    gain_mean: float = Field(0.05, description="mean of the proposal gains (the judged cell)")
    gain_std: float = Field(0.1, gt=0, description="std of the proposal gains")
    keep: int = Field(2, ge=1, le=8, description="most children kept per level (Gumbel race among open gates)")
    curve: tuple[float, ...] = Field((0.1, 0.2), description="further gain means drawn for the extinction curve "
                                                              "against mean offspring (not judged)")


RULE = ("held: the 95% CI of the per-seed share of trees with ≥ 2 ends lies above 1/2; did not hold: it lies below "
        "1/2; inconclusive otherwise")


def open_probability(gain_mean: float, gain_std: float, cost: float) -> float:
    """p = P(g ≥ cost) for g ~ N(gain_mean, gain_std²).

    >>> round(open_probability(0.05, 0.1, 0.1), 4)
    0.3085
    """
    return 0.5 * math.erfc((cost - gain_mean) / (gain_std * math.sqrt(2)))


def extinction_probability(p: float) -> float:
    """q, the smallest root in [0, 1] of q = G(q) with G(s) = (1 − p + ps)² (Binomial(2, p) offspring, no cap).

    >>> extinction_probability(0.3), extinction_probability(0.5), extinction_probability(0.75)
    (1.0, 1.0, 0.1111111111111111)
    """
    return 1.0 if p <= 0.5 else ((1 - p) / p) ** 2


def live_distribution(p: float, keep: int, depth: int) -> np.ndarray:
    """P(n live branches after ``depth`` levels), n = 0 … keep, from one root: the capped chain
    n → min(Binomial(2n, p), keep).

    >>> live_distribution(0.5, 2, 1).tolist()   # two children, each open with probability 1/2
    [0.25, 0.5, 0.25]
    """
    chain = np.zeros((keep + 1, keep + 1))
    for n in range(keep + 1):
        for x in range(2 * n + 1):
            chain[n, min(x, keep)] += math.comb(2 * n, x) * p ** x * (1 - p) ** (2 * n - x)
    state = np.zeros(keep + 1)
    state[1 if keep >= 1 else 0] = 1.0
    for _ in range(depth):
        state = state @ chain
    return state


def expected_hazard(gain_mean: float, gain_std: float, cost: float, k: float) -> float:
    """E[softplus(k(g − cost))] for g ~ N(gain_mean, gain_std²), by 80-point Gauss–Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    z = k * (gain_mean + gain_std * x - cost)
    return float(np.sum(w * np.logaddexp(0.0, z)) / math.sqrt(2 * math.pi))


def _gate(tree: int, level: int, slot: int) -> str:
    return f"t{tree:03d}d{level:02d}s{slot}"


def _slots(level: int, keep: int) -> int:
    return 2 * min(2 ** (level - 1), keep)


def _system(config: BranchingConfig, gain_mean: float, cell: int, seed: int) -> System:
    rng = np.random.default_rng([seed, cell, 11])
    modules = [GateModule(id=_gate(t, level, s), gain=g, cost=config.cost, k=config.k)
               for t in range(config.trees) for level in range(1, config.depth + 1)
               for s, g in enumerate(rng.normal(gain_mean, config.gain_std, _slots(level, config.keep)).tolist())]
    return System(id=f"branching-{cell}-{seed:03d}", modules=modules)


def _grow(config: BranchingConfig, gains: dict[str, float], opened: set[str], rng: np.random.Generator, tree: int):
    """(ends, open children, live parents) of one tree, following the recorded gate openings."""
    live, children_opened, parents = 1, 0, 0
    for level in range(1, config.depth + 1):
        parents += live
        survivors = [s for s in range(2 * live) if _gate(tree, level, s) in opened]
        children_opened += len(survivors)
        if len(survivors) > config.keep:  # the Gumbel race over k(g − cost) picks which open gates live on
            score = [config.k * (gains[_gate(tree, level, s)] - config.cost) + rng.gumbel() for s in survivors]
            survivors = [survivors[i] for i in np.argsort(score)[::-1][: config.keep]]
        live = len(survivors)
        if not live:
            break
    return live, children_opened, parents


def run(config: BranchingConfig, store, progress: Progress | None = None):
    cells = [config.gain_mean, *[g for g in config.curve if g != config.gain_mean]]
    jobs = [Job(system=_system(config, g, c, seed), config=RelaxConfig(steps=0), seed=seed,
                labels={"gain_mean": g})
            for c, g in enumerate(cells) for seed in range(config.seeds)]
    run_ids = relax_all("branching_coexistence", jobs, store, progress)
    opened: dict[str, set[str]] = {r: set() for r in run_ids}
    for run_id, gate_id in query_runs(store, """
            SELECT run_id, gate_id FROM v_gate_events
            WHERE list_contains($ids, run_id) AND step = 0 AND event = 'opened'""", run_ids).iter_rows():
        opened[run_id].add(gate_id)
    etas = eta_table(eta_at(store, run_ids, 0))

    rows, checks, metrics, judged = [], [], {}, None
    for c, g in enumerate(cells):
        ids = run_ids[c * config.seeds:(c + 1) * config.seeds]
        extinct, coexist, ends, opens, hazards, children, parents = [], [], [], [], [], 0, 0
        for seed, run_id in zip(range(config.seeds), ids):
            job = jobs[c * config.seeds + seed]
            gains = {m.id: m.gain for m in job.system.modules}
            rng = np.random.default_rng([seed, c, 13])
            grown = [_grow(config, gains, opened[run_id], rng, t) for t in range(config.trees)]
            e = np.array([x[0] for x in grown])
            extinct.append(float(np.mean(e == 0)))
            coexist.append(float(np.mean(e >= 2)))
            ends.append(float(e.mean()))
            children += sum(x[1] for x in grown)
            parents += sum(x[2] for x in grown)
            opens.append(len(opened[run_id]) / len(gains))  # every proposal slot: i.i.d. gains
            hazards += [-math.log1p(-eta) for eta in etas[run_id].values()]
        p = open_probability(g, config.gain_std, config.cost)
        dist = live_distribution(p, config.keep, config.depth)
        q = extinction_probability(p)
        s_ext, s_coex, s_ends, s_open = stat(extinct), stat(coexist), stat(ends), stat(opens)
        rate = children / parents  # open children per live parent, pooled: E[opened] = 2p·E[parents] level by level
        pooled = config.seeds * config.trees  # every seed has the same trees, so the mean share is the pooled one

        def tol(prob: float) -> float:  # three binomial standard errors of a share of `pooled` trees
            return 3 * math.sqrt(prob * (1 - prob) / pooled) + 1 / pooled

        checks.append(check(f"P(extinct by depth {config.depth}) at m = 2p = {2 * p:.3g}: exact capped chain "
                            f"(Galton–Watson q = G(q) = {q:.3g}, G(s) = (1 − p + ps)²)", float(dist[0]), s_ext,
                            tol=tol(float(dist[0]))))
        if c == 0:
            coexist_theory = float(dist[2:].sum())
            checks.append(check(f"P(ends ≥ 2) at depth {config.depth}, exact capped chain", coexist_theory, s_coex,
                                tol=tol(coexist_theory)))
            slots = len(jobs[0].system.modules)
            checks.append(check("P(gate opens) = Φ((gain_mean − cost)/gain_std), over every proposal", p, s_open,
                                tol=3 * math.sqrt(p * (1 - p) / (slots * config.seeds)) + 1e-9))
            checks.append(check("open children per live parent (pooled), m = 2p", 2 * p, rate,
                                tol=3 * math.sqrt(2 * p * (1 - p) / parents)))
            h = expected_hazard(g, config.gain_std, config.cost, config.k)
            s_h = stat(hazards)
            checks.append(check("hazard mean E[softplus(k(g − cost))]", h, s_h, tol=3 * (s_h.sd or 0) / math.sqrt(
                max(1, s_h.n)) + 1e-9))
            judged = (s_coex, s_ext, s_ends, rate, p, q, dist)
            metrics.update(stat_metrics("p_coexist", s_coex) | stat_metrics("p_extinct", s_ext)
                           | stat_metrics("ends", s_ends) | stat_metrics("p_open", s_open))
            metrics.update(branching_rate=rate, hazard_mean=s_h.mean, p_open_theory=p, mean_offspring=2 * p,
                           q_galton_watson=q,
                           p_extinct_theory=float(dist[0]), p_coexist_theory=coexist_theory)
        rows.append(row(gain_mean=g, judged=c == 0, p_open=p, mean_offspring=2 * p, q_galton_watson=q,
                        extinct_theory=float(dist[0]), extinct_mean=s_ext.mean, extinct_sd=s_ext.sd,
                        coexist_theory=float(dist[2:].sum()), coexist_mean=s_coex.mean, coexist_sd=s_coex.sd,
                        ends_mean=s_ends.mean, rate=rate, n=s_ext.n))

    s_coex, s_ext, s_ends, rate, p, q, dist = judged
    outcome = "held" if s_coex.lo > 0.5 else "did not hold" if s_coex.hi < 0.5 else "inconclusive"
    converged = convergence(store, run_ids)  # steps=0: nothing to relax, every run counts as converged
    verdict, reason = verdict_of(outcome, converged)
    return result(
        "branching_coexistence", config,
        hypothesis=f"several ends coexist: at least 2 branches survive to depth {config.depth} in most trees "
                   "when each branch must open its own gate",
        measured=f"per seed ({config.trees} trees each), gain mean {config.gain_mean:g}: share with ≥ 2 ends "
                 f"{s_coex} (theory {float(dist[2:].sum()):.3g}); extinct {s_ext} (theory {float(dist[0]):.3g}, "
                 f"Galton–Watson q = {q:.3g}); mean offspring m = 2p = {2 * p:.3f} (measured {rate:.3f}, pooled)",
        verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="not logged; a re-run of the seed gave ends 2.0, branching rate 2.0, hazard mean 0.589",
        notes="The seed kept the global top-2 of every level's Gumbel race whatever the gains, so 2 ends and a "
              "branching rate of 2 were true by construction. Here a child lives only if its own gate opens; the "
              "race only breaks ties among more than `keep` open children. Subcritical at the seed's gains "
              "(m = 2p < 1), the trees die out, as the branching-process theory says; the theory (capped chain "
              "and q = G(q)) is exact here, so the study compares counts with it and judges only the coexistence "
              "claim. The extinction curve over `curve` shows the transition at m = 1.",
        metrics=metrics, rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """Extinction and coexistence shares against mean offspring m = 2p: theory curves and the seeds' mean ± sd."""
    import matplotlib.pyplot as plt

    c = result.config
    fine = np.linspace(0.01, 0.99, 300)
    dists = [live_distribution(p, c["keep"], c["depth"]) for p in fine]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(2 * fine, [d[0] for d in dists], color="C0", alpha=0.5, label=f"P(extinct by depth {c['depth']}), exact")
    ax.plot(2 * fine, [extinction_probability(p) for p in fine], color="C0", ls=":", label="Galton–Watson q = G(q)")
    ax.plot(2 * fine, [d[2:].sum() for d in dists], color="C1", alpha=0.5, label="P(ends ≥ 2), exact")
    rows = sorted(result.rows, key=lambda r: r["mean_offspring"])
    m = [r["mean_offspring"] for r in rows]
    ax.errorbar(m, [r["extinct_mean"] for r in rows], yerr=[r["extinct_sd"] or 0 for r in rows], fmt="o", color="C0",
                capsize=2, label=f"extinct share (mean ± sd, {result.seeds} seeds)")
    ax.errorbar(m, [r["coexist_mean"] for r in rows], yerr=[r["coexist_sd"] or 0 for r in rows], fmt="s", color="C1",
                capsize=2, label="share with ≥ 2 ends")
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_xlabel("mean offspring m = 2·P(g ≥ cost)")
    ax.set_ylabel("share of trees")
    ax.legend(fontsize=7)
    return {"extinction_vs_offspring": fig}


STUDY = Study("branching_coexistence", "do branches survive when each must open its own gate?", BranchingConfig, run,
              figures)
