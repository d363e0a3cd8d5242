"""Emergent Nash learning: replicator dynamics on the Prisoner's Dilemma, with the column player's payoffs right.

Each seed starts both players from mixes drawn uniformly (probability of
Defect) and follows ``entities.replicator_step`` with the game of
``NashModule.prisoners_dilemma`` (A = [[R, S], [T, P]] for the row player,
B = Aᵀ for the column player, indexed ``B[row action][column action]``) until
both players are within ``tol`` of Defect, or the cap of ``steps`` steps.

Theory. Defect strictly dominates (T > R, P > S), so mutual defection
(p_row = p_col = 1) is the unique Nash equilibrium, and the replicator step moves
each p up whenever it is interior. Near the equilibrium
1 − p' = (1 − p)(1 − lr·p·(u_D − u_C)) with u_D − u_C → P − S, so the distance
shrinks by the factor 1 − lr·(P − S) per step (0.95 at the seed's payoffs).
How many steps a trajectory needs from its start has no closed form here: it
is measured.

The trajectory of each seed is recorded as one run whose modules are
``NashModule``s at the mixes of every step (η = 1 − total regret / total
payoff range), taken without stepping; the study reads η back from ``v_eta``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from complexity_from_constraints.entities import (AbstractFrozen, NashModule, RelaxConfig, System, regret,
                                                  replicator_step)

from ._evidence import AGREE, Convergence, check, share, stat, verdict_of
from ._framework import Job, Progress, Study, eta_at, eta_table, relax_all, result, row, stat_metrics


class NashLearningConfig(AbstractFrozen):
    """The seed's ``emergent_nash_learning`` game and step size, over seeds, run until converged."""

    seeds: int = Field(10, ge=1, description="seeds; seed s draws both players' starting mixes uniformly")
    steps: int = Field(5000, ge=1, description="cap on replicator steps per seed (a trajectory stops once within tol)")
    tol: float = Field(1e-4, gt=0, lt=1, description="a trajectory has converged when 1 − p ≤ tol for both players")
    lr: float = Field(0.05, gt=0, description="replicator step size")
    T: float = Field(5.0, description="temptation payoff")
    R: float = Field(3.0, description="reward for mutual cooperation")
    P: float = Field(1.0, description="punishment for mutual defection")
    S: float = Field(0.0, description="sucker's payoff")
    converged_within: float = Field(0.1, gt=0, description="the seed's criterion: 1 − p ≤ this for both players")
    seed_steps: int = Field(100, ge=1, description="the seed's fixed budget; the share within converged_within "
                                                   "after it is reported")


RULE = (f"held: ≥ {AGREE:.0%} of seeds reach (Defect, Defect) (1 − p ≤ tol for both) along a path on which "
        f"neither p ever decreases; did not hold: ≤ {1 - AGREE:.0%} do; inconclusive otherwise, or if any seed hits the cap")


def pure_equilibria(A, B) -> list[tuple[int, int]]:
    """Pure Nash equilibria (r, c) of a 2×2 game: each action a best response to the other's.

    >>> pure_equilibria([[3, 0], [5, 1]], [[3, 5], [0, 1]])   # Prisoner's Dilemma: only (Defect, Defect)
    [(1, 1)]
    """
    a, b = np.asarray(A, float), np.asarray(B, float)
    return [(r, c) for r in (0, 1) for c in (0, 1) if a[r, c] >= a[1 - r, c] and b[r, c] >= b[r, 1 - c]]


def start(seed: int) -> tuple[float, float]:
    """The starting mixes (p_row, p_col) of ``seed``, uniform in (0, 1)."""
    p, q = np.random.default_rng([2025, seed]).uniform(size=2)
    return float(p), float(q)


def trajectory(config: NashLearningConfig, p: float, q: float) -> list[tuple[float, float]]:
    """The mixes from (p, q) until both are within ``tol`` of Defect, at most ``steps`` steps."""
    game = NashModule.prisoners_dilemma("game", T=config.T, R=config.R, P=config.P, S=config.S)
    path = [(p, q)]
    while len(path) <= config.steps and not (1 - p <= config.tol and 1 - q <= config.tol):
        p, q = replicator_step(p, q, game.row_payoffs, game.col_payoffs, lr=config.lr)
        path.append((p, q))
    return path


def first_within(path: list[tuple[float, float]], within: float) -> int | None:
    """The first step at which both players are within ``within`` of Defect (``None``: never)."""
    return next((s for s, (p, q) in enumerate(path) if 1 - p <= within and 1 - q <= within), None)


def _module(config: NashLearningConfig, step: int, p: float, q: float) -> NashModule:
    return NashModule.prisoners_dilemma(f"step{step:05d}", T=config.T, R=config.R, P=config.P, S=config.S,
                                        p_row=p, p_col=q)


def run(config: NashLearningConfig, store, progress: Progress | None = None):
    game = NashModule.prisoners_dilemma("game", T=config.T, R=config.R, P=config.P, S=config.S)
    A, B = game.row_payoffs, game.col_payoffs
    paths = [trajectory(config, *start(seed)) for seed in range(config.seeds)]
    jobs = [Job(system=System(id=f"nash-learning-{seed:03d}", modules=[_module(config, s, p, q)
                                                                       for s, (p, q) in enumerate(path)]),
                config=RelaxConfig(steps=0), seed=seed, labels={"p_row0": path[0][0], "p_col0": path[0][1]})
            for seed, path in enumerate(paths)]
    run_ids = relax_all("emergent_nash_learning", jobs, store, progress)
    etas = eta_table(eta_at(store, run_ids, 0))

    rows, reached, ratios, regrets, unconverged = [], [], [], [], []
    for seed, (run_id, path) in enumerate(zip(run_ids, paths)):
        eta = [etas[run_id][f"step{s:05d}"] for s in range(len(path))]
        (p0, q0), (p1, q1) = path[0], path[-1]
        reg_row, reg_col = regret(A, B, p1, q1)
        monotone = all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(path, path[1:]))
        converged = first_within(path, config.tol) is not None
        if not converged:
            unconverged.append(run_id)
        reached.append(converged and monotone)  # converged means within tol of (D, D)
        (pa, qa) = path[-2] if len(path) > 1 else path[-1]
        ratio_row = (1 - p1) / (1 - pa) if len(path) > 1 and pa < 1 else None
        ratio_col = (1 - q1) / (1 - qa) if len(path) > 1 and qa < 1 else None
        ratios += [r for r in (ratio_row, ratio_col) if r is not None]
        within = first_within(path, config.converged_within)
        regrets.append(max(reg_row, reg_col))
        rows.append(row(seed=seed, p_row0=p0, p_col0=q0, steps=len(path) - 1, steps_within=within,
                        within_at_seed_steps=within is not None and within <= config.seed_steps,
                        p_row=p1, p_col=q1, eta0=eta[0], eta_final=eta[-1], monotone=monotone))

    equilibria = pure_equilibria(A, B)
    agree = share(reached)
    outcome = "held" if agree >= AGREE and equilibria == [(1, 1)] else "did not hold" if agree <= 1 - AGREE \
        else "inconclusive"
    verdict, reason = verdict_of(outcome, Convergence(runs=len(run_ids), converged=len(run_ids) - len(unconverged),
                                                      unconverged=tuple(unconverged)))
    steps_to_tol, steps_within = stat([r["steps"] for r in rows]), stat([r["steps_within"] for r in rows])
    at_seed_budget = share([r["within_at_seed_steps"] for r in rows])
    s_eta, s_ratio = stat([r["eta_final"] for r in rows]), stat(ratios)
    contraction = 1 - config.lr * (config.P - config.S)
    checks = [
        check("Nash equilibrium: Defect strictly dominates (T > R, P > S), so (D, D) is the unique one",
              "(D, D)", f"pure equilibria {['CD'[r] + 'CD'[c] for r, c in equilibria]}; {sum(reached)}/{len(rows)} "
                        "seeds end there", agrees=equilibria == [(1, 1)] and all(reached)),
        check("η = 1 − regret/range at the end (0 regret at the equilibrium)", 1.0, s_eta, tol=10 * config.tol),
        check("contraction of 1 − p per step near (D, D), 1 − lr·(P − S)", contraction, s_ratio, tol=1e-3),
        check(f"steps until both within {config.converged_within:g} of Defect", None, steps_within),
    ]
    return result(
        "emergent_nash_learning", config,
        hypothesis="replicator dynamics on the Prisoner's Dilemma move both players monotonically to mutual "
                   "defection, the unique Nash equilibrium, from any interior start",
        measured=f"{sum(reached)}/{len(rows)} seeds reach (D, D) within {config.tol:g} monotonically, in "
                 f"{steps_to_tol} steps (cap {config.steps}); within {config.converged_within:g} after "
                 f"{steps_within} steps, so the seed's {config.seed_steps} steps suffice in "
                 f"{at_seed_budget:.0%} of seeds; contraction per step {s_ratio} (theory {contraction:.4g})",
        verdict=verdict, reason=reason, rule=RULE, seeds=config.seeds, checks=checks,
        seed_result="not logged; a re-run of the seed: all 8 trials went to p_row → 1, p_col → 0 (Defect, "
                    "Cooperate) with both 'regrets' ≈ 0",
        notes="The seed computed the column player's payoffs with the transposed index, so play converged to "
              "(Defect, Cooperate), which is not an equilibrium of the Prisoner's Dilemma, while its regret "
              "metric reported ≈ 0. Here the column player's payoff is B[r][c] with B = Aᵀ, both regrets come "
              "from entities.regret, and η is the NashModule's measurement. The earlier version judged 8 trials "
              "after a fixed 100 steps and failed whenever one start near Cooperate had not arrived yet (27 of 50 "
              "seeds; about 7.5 % of uniform starts need more than 100 steps to come within 0.1); each trajectory "
              "now runs until converged, under a reported cap, and the share within the seed's budget is "
              "reported. The time to converge is measured; only its last phase, the geometric contraction "
              "1 − lr(P − S), has a closed form.",
        metrics={"reached": sum(reached), "share_reached": agree, "share_within_at_seed_steps": at_seed_budget,
                 "contraction_theory": contraction, **stat_metrics("steps", steps_to_tol),
                 **stat_metrics("steps_within", steps_within), **stat_metrics("contraction", s_ratio),
                 "max_regret_final": max(regrets)},
        rows=rows, run_ids=run_ids)


def figures(result) -> dict:
    """The seeds' paths in the (p_row, p_col) square, and 1 − p against step beside the contraction
    1 − lr(P − S)."""
    import matplotlib.pyplot as plt

    config = NashLearningConfig(**result.config)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for r in result.rows:
        path = np.array(trajectory(config, r["p_row0"], r["p_col0"]))
        ax.plot(path[:, 0], path[:, 1], lw=0.8)
        ax.plot(*path[0], "o", ms=3, color="0.4")
        bx.semilogy(np.maximum(1 - path.min(axis=1), 1e-12), lw=0.8)
    ax.plot(1, 1, "*", ms=12, color="k", label="Nash equilibrium (D, D)")
    ax.set_xlabel("p_row (probability of Defect)")
    ax.set_ylabel("p_col")
    ax.legend(loc="lower left", fontsize=8)
    longest = max(r["steps"] for r in result.rows)
    n = np.arange(longest + 1)
    c = result.metrics["contraction_theory"]
    bx.semilogy(n, np.minimum(1.0, config.tol * c ** (n - longest)), "k--", lw=0.8,
                label=f"slope (1 − lr(P − S))ⁿ = {c:g}ⁿ")
    bx.axhline(config.converged_within, color="0.6", lw=0.8, label=f"the seed's criterion {config.converged_within:g}")
    bx.axvline(config.seed_steps, color="0.6", ls=":", lw=0.8, label=f"the seed's {config.seed_steps} steps")
    bx.set_xlabel("step")
    bx.set_ylabel("1 − min(p_row, p_col)")
    bx.set_ylim(config.tol / 10, 1)
    bx.legend(fontsize=8)
    return {"trajectories": fig}


STUDY = Study("emergent_nash_learning", "replicator dynamics reach mutual defection in the Prisoner's Dilemma",
              NashLearningConfig, run, figures)
