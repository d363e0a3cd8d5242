"""Batches end on step boundaries: a crash, or a hook reading the live run, never sees half a step."""

from __future__ import annotations

from collections import Counter

import pytest

from complexity_from_constraints.entities import RelaxConfig
from complexity_from_constraints.events import InMemoryStore, hooks
from complexity_from_constraints.projectors import relax


class BatchLog(InMemoryStore):
    """An in-memory store that remembers each appended batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list] = []

    def _write(self, run_id, batch, new_run):
        super()._write(run_id, batch, new_run)
        self.batches.append(list(batch))


def _steps(records) -> Counter:
    return Counter(r.step for r in records if r.step is not None)


@pytest.mark.parametrize("pipelined", [True, False])
@pytest.mark.parametrize("flush_every", [1, 2, 5])
def test_no_step_is_split_between_two_batches(toy_system, pipelined, flush_every):
    store = BatchLog()
    r = relax(toy_system, RelaxConfig(steps=200, step_size=0.3), store=store, flush_every=flush_every,
              pipelined=pipelined)
    assert store.read(r.run_id, types=["GateOpened"])  # the run has gate events after its η frames
    for before, after in zip(store.batches, store.batches[1:]):
        last = [r.step for r in before if r.step is not None]
        first = [r.step for r in after if r.step is not None]
        if last and first:
            assert max(last) < min(first), f"step {max(last)} is split across batches"


def test_a_hook_replaying_the_live_run_sees_whole_steps(toy_system):
    store = InMemoryStore()
    seen = []

    def look(run_id, event, seq):
        log = store.read(run_id)
        last = max((r.step for r in log if r.step is not None), default=None)
        if last is not None:
            seen.append((last, _steps(log)[last]))

    relax(toy_system, RelaxConfig(steps=120, step_size=0.3), store=store, flush_every=1,
          hooks={name: look for name in hooks.SIGNALS})
    (info,) = store.runs()
    final = _steps(store.read(info.run_id))
    assert seen and all(count == final[step] for step, count in seen)
