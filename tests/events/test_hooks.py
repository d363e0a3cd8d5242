"""Hooks fire after commit, in order, each receiver isolated and held strongly."""

from __future__ import annotations

import gc
import logging

from complexity_from_constraints.entities import RelaxConfig, demo_system
from complexity_from_constraints.events import InMemoryStore, hooks
from complexity_from_constraints.projectors import relax


def test_a_lambda_receiver_keeps_working_after_garbage_collection(toy_system):
    seen = []
    receiver = hooks.gate_opened.connect(lambda run_id, event, seq: seen.append(event.gate_id))
    try:
        gc.collect()
        relax(toy_system, RelaxConfig(steps=200, step_size=0.3))
    finally:
        hooks.gate_opened.disconnect(receiver)
    assert seen == ["gate"]
    assert receiver not in hooks.gate_opened.ordered_receivers()


def test_a_raising_receiver_is_reported_and_loses_nothing(toy_system, caplog):
    calls = []

    def broken(run_id, event, seq):
        raise RuntimeError("receiver bug")

    def after(run_id, event, seq):
        calls.append(event.step)

    store = InMemoryStore()
    with caplog.at_level(logging.ERROR, logger="cfc.hooks"):
        r = relax(toy_system, RelaxConfig(steps=20), store=store, hooks={"step_committed": [broken, after]})
    assert calls == list(range(r.steps + 1))  # the receiver after the broken one still ran, in order
    assert len(r.hook_failures) == r.steps + 1
    assert isinstance(r.hook_failures[0].error, RuntimeError) and r.hook_failures[0].event_id == f"{r.run_id}/1"
    assert "receiver bug" in caplog.text
    assert r.status in ("converged", "max_steps") and store.is_complete(r.run_id)
    assert len(store.read(r.run_id, types=["StepCommitted"])) == r.steps + 1


def test_hooks_fire_after_their_events_are_committed_and_in_order(toy_system):
    store = InMemoryStore()
    seen = []

    def check(run_id, event, seq):
        committed = {rec.seq for rec in store.read(run_id)}
        seen.append((seq, seq in committed))

    relax(demo_system(0), RelaxConfig(steps=30), store=store, flush_every=4,
          hooks={name: check for name in hooks.SIGNALS})
    assert seen and all(ok for _, ok in seen)
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)


def test_run_scoped_hooks_are_disconnected_after_the_run(toy_system):
    calls = []
    relax(toy_system, RelaxConfig(steps=3), hooks={"run_finished": lambda run_id, event, seq: calls.append(run_id)})
    relax(toy_system, RelaxConfig(steps=3))
    assert len(calls) == 1
    assert not hooks.run_finished.receivers


def test_a_run_scoped_hook_sees_only_its_own_run(toy_system):
    """A global receiver sees every run; a run's own receiver only that run, even while another runs."""
    everything, mine = [], []
    store = InMemoryStore()

    def outer(run_id, event, seq):
        everything.append(run_id)
        if len(everything) == 1:  # start a second run from inside the first one's hook
            relax(toy_system, RelaxConfig(steps=2), seed=1, store=store)

    with hooks.run_started.connected_to(outer):
        first = relax(toy_system, RelaxConfig(steps=2), store=store,
                      hooks={"run_started": lambda run_id, event, seq: mine.append(run_id)})
    assert len(set(everything)) == 2 and first.run_id in everything
    assert mine == [first.run_id]


def test_unknown_hook_names_are_refused(toy_system):
    import pytest

    with pytest.raises(KeyError, match="gate_opened"):
        relax(toy_system, RelaxConfig(steps=1), hooks={"gate_openned": print})


def test_an_interrupt_in_a_receiver_reaches_the_others_for_that_event_then_stops_cleanly():
    import pytest

    from complexity_from_constraints.events import Recorded, StepCommitted

    def step(k):
        return Recorded("r-1", k, StepCommitted(step=k, energy=0.0, pg_norm=0.0, step_size=0.1, backtracks=0,
                                                accepted=True, reason="decrease"))

    seen = []

    def interrupting(run_id, event, seq):
        seen.append(("first", seq))
        if seq == 2:
            raise KeyboardInterrupt

    def after(run_id, event, seq):
        seen.append(("after", seq))

    hooks.step_committed.connect(interrupting)
    hooks.step_committed.connect(after)
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            hooks.dispatch([step(k) for k in range(1, 13)])
    finally:
        hooks.step_committed.disconnect(interrupting)
        hooks.step_committed.disconnect(after)
    assert seen == [("first", 1), ("after", 1), ("first", 2), ("after", 2)]  # the event in hand reached everyone
    assert info.value.undelivered == [f"r-1/{k}" for k in range(3, 13)]  # the ten left are reported, not lost silently
    assert "10 committed events were not delivered, from r-1/3" in " ".join(info.value.__notes__)
