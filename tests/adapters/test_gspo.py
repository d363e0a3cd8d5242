"""The GSPO-token weighting: recorded like any weighting, seeded, and it learns its target."""

from __future__ import annotations

import pytest

from complexity_from_constraints.entities import GspoTokenWeighting, RelaxConfig, standard_system
from complexity_from_constraints.events import InMemoryStore, WeightsAdapted
from complexity_from_constraints.projectors import WeightingContext, rerun, relax, lipschitz_rows, compile_system
from complexity_from_constraints.adapters import GspoToken

pytestmark = pytest.mark.usefixtures("torch")  # every test here builds the torch policy


def _adapted(store, run_id):
    return [r.event for r in store.read(run_id) if isinstance(r.event, WeightsAdapted)]


def test_it_records_weights_adapted_events_and_reruns_bit_for_bit():
    store = InMemoryStore()
    config = RelaxConfig(steps=12, weighting=GspoTokenWeighting(seed=3))
    first = relax(standard_system(12, 0), config, store=store)
    events = _adapted(store, first.run_id)
    assert len(events) >= 10 and all(e.weighting == "gspo_token" for e in events)
    assert events[0].previous == {"landau": 1.0, "quadratic": 1.0, "directed_hinge": 1.0}  # configured weights
    again = rerun(store, first.run_id)
    assert [r.event for r in store.read(again.run_id)][1:] == [r.event for r in store.read(first.run_id)][1:]


def test_the_seed_changes_what_it_learns():
    runs = []
    for seed in (0, 1):
        store = InMemoryStore()
        r = relax(standard_system(12, 0), RelaxConfig(steps=5, weighting=GspoTokenWeighting(seed=seed)), store=store)
        runs.append([e.weights for e in _adapted(store, r.run_id)])
    assert runs[0] != runs[1]


def test_its_reward_rises_on_a_fixed_context():
    weighting = GspoToken(GspoTokenWeighting(seed=0, apply_rate=1.0, lr=0.02, ref_sync=2))
    cs = compile_system(standard_system(6, 0))
    ctx = WeightingContext(step=1, weights={"a": 1.0, "b": 1.0}, configured={"a": 1.0, "b": 1.0},
                       grad_norms={"a": 4.0, "b": 0.5}, energies=(0.0,), step_size=0.1, coupling_kinds=(),
                       rows=lambda: lipschitz_rows(cs))
    rewards = []
    for _ in range(60):
        weighting.adapt(ctx)
        rewards.append(weighting.details["mean_reward"])
    assert sum(rewards[-10:]) / 10 > sum(rewards[:10]) / 10 + 0.05
    # the greedy answer approaches the weights that bring each norm to the target: a → 0.25, b → 2
    final = weighting.adapt(ctx)
    assert abs(final["a"] - 0.25) < abs(1.0 - 0.25) and abs(final["b"] - 2.0) < abs(1.0 - 2.0)
