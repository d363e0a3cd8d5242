"""The queue to the background writer is bounded by bytes: a slow store slows the loop, never grows memory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from complexity_from_constraints.entities import RelaxConfig
from complexity_from_constraints.events import EtaRecorded, InMemoryStore
from complexity_from_constraints.projectors import relax
from complexity_from_constraints.projectors._run import _Recorder

FRAME = 10_000  # η values per frame: 80 kB


class SlowStore(InMemoryStore):
    """An in-memory store that takes its time over every batch and notes how far ahead the producer was."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.produced = 0  # events handed to the recorder so far (set by the test's producer)
        self.ahead: list[int] = []  # at each write: events produced but not yet written
        self.guard = threading.Lock()

    def _write(self, run_id, batch, new_run):
        time.sleep(self.delay)
        with self.guard:
            self.ahead.append(self.produced - (batch[-1].seq + 1))
        super()._write(run_id, batch, new_run)


def _started(toy_system):
    scratch = InMemoryStore()
    r = relax(toy_system, RelaxConfig(steps=1), store=scratch)
    return scratch.read(r.run_id, types=["RunStarted"])[0].event


@pytest.mark.parametrize("budget_frames", [1, 3, 8])
def test_the_queue_never_holds_more_than_its_budget_and_loses_nothing(toy_system, budget_frames):
    store = SlowStore(delay=0.004)
    queue_bytes = budget_frames * FRAME * 8 + 512
    recorder = _Recorder(store, "run-1", flush_every=1, flush_values=1 << 30, pipelined=True, queue_bytes=queue_bytes)
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0.0, 1.0, FRAME) for _ in range(60)]
    recorder.add(_started(toy_system))
    store.produced = 1
    for step, eta in enumerate(frames):
        recorder.add(EtaRecorded(step=step, eta=eta))  # the frame of the next step cuts the previous batch
        store.produced += 1
        assert recorder.pending_bytes <= queue_bytes
    recorder.flush(wait=True)
    recorder.close()
    assert recorder.peak_pending_bytes <= queue_bytes
    assert recorder.peak_pending_bytes > queue_bytes - 2 * FRAME * 8, "the writer never fell behind: no back-pressure"
    # Seen from the store: the producer was never more than the budget's frames (+ the one being cut) ahead.
    assert max(store.ahead) <= budget_frames + 2
    log = store.read("run-1")
    assert [r.seq for r in log] == list(range(len(frames) + 1))
    got = [r.event.eta for r in log[1:]]
    assert all(np.array_equal(a, b) for a, b in zip(got, frames))


def test_a_tiny_queue_records_the_same_log_as_an_unpipelined_run(toy_system):
    config = RelaxConfig(steps=60, step_size=0.3)
    slow, plain = SlowStore(delay=0.001), InMemoryStore()
    a = relax(toy_system, config, store=slow, flush_every=1, queue_bytes=1)
    b = relax(toy_system, config, store=plain, pipelined=False)
    left, right = slow.read(a.run_id), plain.read(b.run_id)
    assert [r.seq for r in left] == [r.seq for r in right]
    assert all(x.event == y.event for x, y in zip(left, right))


class _Gated(InMemoryStore):
    """An in-memory store that notes each batch's η frames and, while ``hold`` is set, waits before writing."""

    def __init__(self) -> None:
        super().__init__()
        self.hold, self.frames = threading.Event(), []

    def _write(self, run_id, batch, new_run):
        while self.hold.is_set():
            time.sleep(0.001)
        self.frames.append(sum(isinstance(r.event, EtaRecorded) for r in batch))
        super()._write(run_id, batch, new_run)


@pytest.mark.parametrize("idle", [True, False])
def test_an_idle_writer_gets_a_batch_once_half_of_one_is_buffered(toy_system, idle):
    """Batches are cut early while the writer has nothing to do (so it starts at once and the run's tail is short),
    at full size while it is busy (so commits stay few)."""
    store = _Gated()
    # 10 frames make a full batch (values); 5 frames (half of its values) make an idle cut
    recorder = _Recorder(store, "run-1", flush_every=10**6, flush_values=10 * FRAME, pipelined=True)
    recorder.add(_started(toy_system))
    recorder.flush(wait=True)
    if not idle:
        store.hold.set()
    rng = np.random.default_rng(0)
    for step in range(39):
        recorder.add(EtaRecorded(step=step, eta=rng.uniform(0.0, 1.0, FRAME)))
        if idle and recorder.pending:
            recorder.pending[-1][0].result()  # the writer is done before the next step
    store.hold.clear()
    recorder.flush(wait=True)
    recorder.close()
    assert store.frames[0] == 0 and sum(store.frames) == 39
    # busy: the first batch finds the writer idle; the rest wait for a full batch, the last holds what is left
    assert store.frames[1:] == ([5] * 7 + [4] if idle else [5, 10, 10, 10, 4])
