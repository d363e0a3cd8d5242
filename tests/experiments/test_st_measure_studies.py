"""The measuring studies against their theory: branching processes, replicator dynamics, percolation, the wormhole."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.experiments import branching_coexistence as branching


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
    assert branching.live_distribution(0.75, 64, 40)[0] == pytest.approx(branching.extinction_probability(0.75), abs=1e-3)
    assert branching.extinction_probability(0.5) == 1.0  # critical: m = 1 dies out


def test_branches_coexist_only_when_the_mean_offspring_is_well_above_one(store):
    config = dict(depth=4, trees=10, seeds=3, curve=())
    dying = branching.run(branching.BranchingConfig(**config), store)
    assert dying.verdict == "did not hold" and dying.metrics["mean_offspring"] < 1
    thriving = branching.run(branching.BranchingConfig(gain_mean=0.3, **config), store)
    assert thriving.verdict == "held" and thriving.metrics["mean_offspring"] > 1.9
    for result in (dying, thriving):
        assert all(c.agrees for c in result.checks), [str(c) for c in result.checks if not c.agrees]
