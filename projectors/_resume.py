"""η at a step the log did not record (snapshot mode): re-run the loop from the nearest snapshot before it.

The loop is rebuilt from the latest resumable ``LoopSnapshotted`` at or
before the step (or from the run's start when there is none: a piece that
cannot resume, such as expansion, or a step before the first snapshot),
driven forward to the step, and every event it regenerates on the way is
compared with the log's, bit for bit; a difference raises
:class:`~entities.ReplayMismatchError`, never a silently different η.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from complexity_from_constraints.entities import ReplayMismatchError, SnapshotConfig
from complexity_from_constraints.events import (
    EVENT_TYPES,
    AbstractEventStore,
    EtaRecorded,
    LoopSnapshotted,
    Recorded,
    RunStarted,
)

from ._backend import make_backend
from ._compile import CompiledSystem, compile_system
from ._coordinator import initial_eta, relaxation
from ._snapshot import decode_state, resolve_frames

# What a replay compares: every event with a step, but η (the replay records it at every change) and snapshots.
_COMPARED = tuple(t for t in EVENT_TYPES if t not in ("RunStarted", "EtaRecorded", "LoopSnapshotted", "RunFinished"))


def last_change(events) -> int:
    """The last step whose events changed η (an accepted step, a module added); -1 when none."""
    last = -1
    for rec in events:
        ev = rec.event
        if (ev.type == "StepCommitted" and ev.accepted) or ev.type == "ModuleAdded":
            last = max(last, ev.step)
    return last


_RUNS: OrderedDict[str, tuple[RunStarted, CompiledSystem]] = OrderedDict()
_RUNS_KEPT = 4


def _run(store: AbstractEventStore, run_id: str) -> tuple[RunStarted, CompiledSystem]:
    """The run's ``RunStarted`` and compiled System, kept for the last few runs replayed in this process.

    Decoding a large System costs seconds. A run id is the digest of the
    run's System, config and seed plus an ordinal, so one id names one
    System, config and seed in every store: the id is the key.
    """
    key = run_id
    if key in _RUNS:
        _RUNS.move_to_end(key)
        return _RUNS[key]
    started = store.read(run_id, types=["RunStarted"])[0].event
    config = started.config
    cs = compile_system(started.system, make_backend(config.backend, device=config.device, dtype=config.dtype))
    _RUNS[key] = (started, cs)
    while len(_RUNS) > _RUNS_KEPT:
        _RUNS.popitem(last=False)
    return started, cs


READ_TYPES = (*_COMPARED, "LoopSnapshotted")  # what eta_at reads of a run's log: the snapshots and the events to check


def eta_at(store: AbstractEventStore, run_id: str, step: int, parent_eta: Callable[[str, int], np.ndarray],
           records: Sequence[Recorded] | None = None) -> np.ndarray:
    """η of ``run_id`` after ``step``, re-run from the nearest resumable snapshot at or before it (checked event by event).

    ``parent_eta(run, step)`` replays a fork's parent, whose log holds the
    fork's first steps. ``records``: the run's records up to ``step`` of (at
    least) the types :data:`READ_TYPES`, when the caller read them already.
    """
    started, cs = _run(store, run_id)
    config = started.config
    begin = started.parent_step or 0
    if started.parent_run_id is not None and step <= begin:
        return parent_eta(started.parent_run_id, step)
    snapshot: LoopSnapshotted | None = None
    if records is None:
        records = store.read(run_id, until_step=step, types=READ_TYPES)  # one read: the snapshots and the events to check
    logged = [r.event for r in records if r.event.type in READ_TYPES and getattr(r.event, "step", step + 1) <= step]
    if isinstance(config.snapshots, SnapshotConfig):
        own = [e for e in logged if isinstance(e, LoopSnapshotted) and (e.step > begin or begin == 0)]
        snapshot = next((s for s in reversed(own) if s.blocked_by is None), None)
    if snapshot is not None:
        # the frames a snapshot may need, fetched together: its own step's and the one before (SnapshotConfig.previous)
        frames = store.etas_at(run_id, [snapshot.step - 1, snapshot.step])

        def frame_at(at: int) -> np.ndarray:
            found = frames[at] if at in frames else store.latest_eta(run_id, at)
            if found is None or found.step != at:
                raise ReplayMismatchError(run_id, snapshot.step, f"the η frame of step {at} the snapshot refers to", found)
            return found.eta

        saved = resolve_frames(decode_state(snapshot.state), frame_at)
        frame = frames.get(snapshot.step)
        if saved["eta"] is None and (frame is None or frame.step != snapshot.step):
            raise ReplayMismatchError(run_id, snapshot.step, "an EtaRecorded with the snapshot", frame)
        eta = saved["eta"] if saved["eta"] is not None else frame.eta
        after, resume = snapshot.step, (saved, eta, run_id)
    else:
        eta = initial_eta(cs, config, started.seed)
        after, resume = (begin if begin > 0 else -1), None
    loop = relaxation(cs, config, started.seed, start_step=begin, resume=resume, replaying=True, until=step)
    regenerated = []
    for event in loop:
        at = getattr(event, "step", None)
        if at is None or at <= after:
            continue
        if isinstance(event, EtaRecorded):
            eta = event.eta
        else:
            regenerated.append(event)
    recorded = [e for e in logged if e.step > after and not isinstance(e, LoopSnapshotted)]
    for k in range(max(len(recorded), len(regenerated))):
        want = recorded[k] if k < len(recorded) else None
        have = regenerated[k] if k < len(regenerated) else None
        if want != have:
            raise ReplayMismatchError(run_id, (want or have).step, want, have)
    return np.asarray(eta, np.float64)
