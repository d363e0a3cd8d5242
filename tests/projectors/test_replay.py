"""Replay rebuilds any step from the log alone; re-run reproduces the events bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import RelaxConfig, UnknownRunError, UnknownStepError, demo_system
from complexity_from_constraints.events import EtaRecorded
from complexity_from_constraints.projectors import first_difference, fold, relax, replay, rerun


def test_replay_at_every_step_equals_the_live_state(store, toy_system):
    live: dict[int, np.ndarray] = {}
    energies: dict[int, float] = {}

    def on_eta(run_id, event, seq):
        live[event.step] = event.eta.copy()

    def on_step(run_id, event, seq):
        energies[event.step] = event.energy

    r = relax(toy_system, RelaxConfig(steps=40, step_size=0.5), store=store, flush_every=7,
              hooks={"eta_recorded": on_eta, "step_committed": on_step})
    current = None
    for step in range(r.steps + 1):
        current = live.get(step, current)
        state = replay(store, r.run_id, step)
        assert state.step == step and state.eta.tobytes() == current.tobytes()
        assert state.energy == energies[step]
    final = replay(store, r.run_id)
    assert final.status == r.status and final.eta.tobytes() == r.eta.tobytes()
    assert final.open_gates == {"gate"}


def test_replay_rejects_unknown_runs_and_steps(store, toy_system):
    r = relax(toy_system, RelaxConfig(steps=3), store=store)
    with pytest.raises(UnknownStepError, match="steps 0..3"):
        replay(store, r.run_id, 4)
    with pytest.raises(UnknownStepError):
        replay(store, r.run_id, -1)
    with pytest.raises(UnknownRunError):
        replay(store, "missing-1", 0)


def test_fold_of_the_whole_log_equals_the_returned_state(store, toy_system):
    r = relax(toy_system, RelaxConfig(steps=12), store=store)
    state = fold(store.read(r.run_id))
    assert state.eta.tobytes() == r.eta.tobytes() and state.step == r.steps and state.status == r.status


def test_rerun_reproduces_every_event_bit_for_bit(store):
    r = relax(demo_system(3), RelaxConfig(steps=60, line_search="armijo", step_size=0.5), seed=3, store=store)
    again = rerun(store, r.run_id)
    assert again.run_id != r.run_id
    assert first_difference(store, r.run_id, again.run_id) is None
    a, b = store.read(r.run_id), store.read(again.run_id)
    assert len(a) == len(b) and all(x.event == y.event for x, y in zip(a, b))


def test_first_difference_points_at_the_first_diverging_event(store):
    a = relax(demo_system(0), RelaxConfig(steps=10), store=store)
    b = relax(demo_system(0), RelaxConfig(steps=10, step_size=0.06), store=store)
    diff = first_difference(store, a.run_id, b.run_id)
    assert diff is not None and diff.seq == 0  # RunStarted carries the config
    c = relax(demo_system(0), RelaxConfig(steps=12), store=store)
    diff = first_difference(store, a.run_id, c.run_id)
    assert diff is not None and diff.seq == 0


def test_eta_frames_are_read_only(store, toy_system):
    r = relax(toy_system, RelaxConfig(steps=2), store=store)
    frame = store.read(r.run_id, types=[EtaRecorded.type])[0].event
    with pytest.raises(ValueError):
        frame.eta[0] = 0.5
