"""The measuring studies against their theory: branching processes, replicator dynamics, percolation, the wormhole."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.experiments import branching_coexistence as branching
from complexity_from_constraints.experiments import emergent_nash_learning as nash
from complexity_from_constraints.experiments import non_local_connectivity_threshold_shift as percolation
from complexity_from_constraints.experiments import wormhole_demo as wormhole


@pytest.fixture
def store():
    with DuckDBStore(":memory:") as s:
        yield s


def test_the_capped_chain_is_the_branching_process_it_claims():
    """The exact distribution of live branches matches a direct simulation of n → min(Binomial(2n, p), keep)."""
    rng = np.random.default_rng(0)
    for p, keep, depth in ((0.3, 2, 5), (0.8, 2, 6), (0.6, 3, 4)):
        live = np.ones(20_000, dtype=int)
        for _ in range(depth):
            live = np.minimum(rng.binomial(2 * live, p), keep)
        simulated = np.bincount(live, minlength=keep + 1) / live.size
        assert simulated == pytest.approx(branching.live_distribution(p, keep, depth), abs=0.015)
    # without the cap, deep trees die out with the Galton–Watson q = G(q)
    deep = branching.live_distribution(0.75, 64, 40)[0]
    assert deep == pytest.approx(branching.extinction_probability(0.75), abs=1e-3)
    assert branching.extinction_probability(0.5) == 1.0  # critical: m = 1 dies out


def test_branches_coexist_only_when_the_mean_offspring_is_well_above_one(store):
    config = dict(depth=4, trees=10, seeds=3, curve=())
    dying = branching.run(branching.BranchingConfig(**config), store)
    assert dying.verdict == "did not hold" and dying.metrics["mean_offspring"] < 1
    thriving = branching.run(branching.BranchingConfig(gain_mean=0.3, **config), store)
    assert thriving.verdict == "held" and thriving.metrics["mean_offspring"] > 1.9
    for result in (dying, thriving):
        assert all(c.agrees for c in result.checks), [str(c) for c in result.checks if not c.agrees]


def test_replicator_play_contracts_onto_mutual_defection_at_the_rate_theory_gives(store):
    """Near (D, D) the distance 1 − p shrinks by 1 − lr·(P − S) per step, for other payoffs and steps too."""
    result = nash.run(nash.NashLearningConfig(seeds=3, lr=0.1, T=6.0, R=4.0, P=2.0, S=0.5), store)
    assert result.verdict == "held" and result.reason == "3/3 runs converged"
    assert result.metrics["contraction_theory"] == pytest.approx(0.85)
    assert result.metrics["contraction_mean"] == pytest.approx(0.85, abs=1e-3)
    assert all(r["p_row"] > 0.999 and r["p_col"] > 0.999 for r in result.rows)  # not the seed's (D, C)


def test_replicator_play_cut_short_is_inconclusive_not_held(store):
    result = nash.run(nash.NashLearningConfig(seeds=3, steps=20), store)
    assert result.verdict == "inconclusive" and result.reason == "not converged: 0/3 runs converged"


def test_the_threshold_shift_is_paired_and_vanishes_without_shortcuts(store):
    """No shortcuts in either arm: the same graphs, a shift of exactly 0, so the claim does not hold; with
    shortcuts the threshold drops in every seed."""
    config = dict(n=16, p_min=0.3, p_max=0.8, num=6, seeds=4)
    same = percolation.run(percolation.ThresholdShiftConfig(shortcut_frac=0.0, **config), store)
    assert same.metrics["shift_mean"] == 0.0 and same.verdict == "did not hold"
    lower = percolation.run(percolation.ThresholdShiftConfig(shortcut_frac=0.1, **config), store)
    assert lower.verdict == "held" and lower.metrics["shift_agree"] == 1.0
    assert lower.checks[0].agrees  # p_c without shortcuts within n^(−3/4) of the lattice's 1/2


@pytest.mark.parametrize("benefit_weight, opens", [(2.0, True), (1.2, False)])
def test_the_gate_opens_exactly_when_the_benefit_beats_the_closed_form_threshold(store, benefit_weight, opens):
    """wΔ ≥ 2a_gθ + 4b_gθ³ + 2w_s(θ − d(θ)) = 0.4509 opens the gate: w = 2 (wΔ = 0.6) does, w = 1.2 (0.36)
    does not."""
    config = wormhole.WormholeConfig(seeds=2, benefit_weight=benefit_weight, seed_steps=1)
    needed = wormhole.gate_force_needed(config, 0.5, config.spring_weight)
    assert (config.benefit_weight * config.delta >= needed) is opens
    result = wormhole.run(config, store)
    assert result.verdict == ("held" if opens else "did not hold")
    assert all(c.agrees for c in result.checks), [str(c) for c in result.checks if not c.agrees]
    converged = {r["arm"]: r for r in result.rows if r["part"] == "converged"}
    assert (converged["with"]["eta_gate"] >= 0.5) is opens


def test_the_wormhole_verdict_waits_for_convergence(store):
    result = wormhole.run(wormhole.WormholeConfig(seeds=2, steps=30, seed_steps=1), store)
    assert result.verdict == "inconclusive" and result.reason.startswith("not converged")
