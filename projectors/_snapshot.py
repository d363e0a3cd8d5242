"""Snapshot mode: the relaxation loop's whole state as one event, and the loop rebuilt from it.

A snapshot holds what the loop needs to go on bit for bit from the end of a
step: the run's fields (step counters, the projected-gradient norm, the step
cap, the mask, the flags a piece set for the next step), the weights the
objective in force was built from and those in force from the next step, the
solver's inner state and every piece's state, in the order
:func:`~projectors._coordinator.pieces_for` built them. The state's value,
gradient and energy are not stored: they are the objective's at η, evaluated
again on restore and checked against the stored value and energy bit for bit.

The encoding is JSON that round-trips exactly: floats by their shortest
repr, ±inf and NaN as JSON's extensions, integers of any size (a PCG64
state), numpy arrays as base64 of their little-endian bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from complexity_from_constraints.entities import ReplayMismatchError, SnapshotConfig
from complexity_from_constraints.events import LoopSnapshotted

from ._loop import AbstractPiece, Run
from ._solvers import AbstractSolver, State

_ARRAY = "__ndarray__"
_FRAME = "__frame__"  # an array equal, bit for bit, to the η frame recorded at this step


def encode_state(value: Any) -> str:
    """``value`` (JSON values, numpy arrays and scalars, nested) as exact JSON.

    >>> decode_state(encode_state({"a": np.arange(3.0), "inf": float("inf"), "big": 2**100}))["a"]
    array([0., 1., 2.])
    """
    return json.dumps(value, default=_default, allow_nan=True, separators=(",", ":"))


def decode_state(text: str) -> Any:
    """The value :func:`encode_state` encoded (arrays come back writable, in their dtype)."""
    return json.loads(text, object_hook=_object)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        data = base64.b64encode(arr.astype(dtype, copy=False).tobytes()).decode("ascii")
        return {_ARRAY: [dtype.str, list(arr.shape), data]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"a snapshot cannot hold {type(value).__name__}")


def _object(obj: dict[str, Any]) -> Any:
    if _ARRAY in obj and len(obj) == 1:
        dtype, shape, data = obj[_ARRAY]
        return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape).copy()
    return obj


def blocked_by(solver: AbstractSolver, pieces: list[AbstractPiece]) -> str | None:
    """The solver or piece that cannot resume mid-run, ``None`` when the whole loop can."""
    if solver.export_state() is None:
        return f"solver {solver.name!r}"
    for piece in pieces:
        if not piece.resumable:
            return type(piece).__name__
    return None


def capture(run: Run, solver: AbstractSolver, pieces: list[AbstractPiece], blocked: str | None) -> LoopSnapshotted:
    """The loop's state after ``run.step`` as an event (empty, naming the culprit, when ``blocked``)."""
    if blocked is not None:
        return LoopSnapshotted(step=run.step, blocked_by=blocked)
    be = run.backend
    host_eta = run.host
    previous = run.config.snapshots.previous if isinstance(run.config.snapshots, SnapshotConfig) else False
    solver_state = solver.export_state()
    if previous and run.before is not None and run.step > run.start_step:  # the step before's frame is in the log
        solver_state = _by_reference(solver_state, run.before, run.step - 1)
    state = {
        "step": run.step, "start_step": run.start_step, "best_step": run.best_step, "pg": run.pg, "cap": run.cap,
        "slack": run.slack, "stalled": run.stalled, "changed": run.changed, "reset": run.reset,
        "value": run.state.value, "energy": run.state.energy,
        # η is the step's EtaRecorded (float64) unless the run's dtype is another: then it is kept here, exactly
        "eta": None if host_eta.dtype == np.float64 else host_eta,
        "mask": None if run.mask is None else be.to_numpy(run.mask),
        "weights": run.weights.export_state(),
        "solver": solver_state,
        "pieces": [piece.export_state() for piece in pieces],
    }
    return LoopSnapshotted(step=run.step, state=encode_state(state))


def _by_reference(value: Any, frame: np.ndarray, step: int) -> Any:
    """``value`` with every float64 array equal to ``frame`` bit for bit replaced by a reference to ``step``'s frame."""
    if isinstance(value, np.ndarray):
        same = (value.dtype == frame.dtype == np.float64 and value.shape == frame.shape
                and np.array_equal(value.view(np.int64), frame.view(np.int64)))
        return {_FRAME: step} if same else value
    if isinstance(value, dict):
        return {k: _by_reference(v, frame, step) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_by_reference(v, frame, step) for v in value]
    return value


def resolve_frames(value: Any, frame_at) -> Any:
    """A decoded state with each reference to a frame replaced by that frame's η (``frame_at(step)``, float64)."""
    if isinstance(value, dict):
        if _FRAME in value and len(value) == 1:
            return np.array(frame_at(int(value[_FRAME])), dtype=np.float64)
        return {k: resolve_frames(v, frame_at) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_frames(v, frame_at) for v in value]
    return value


def restore(run: Run, solver: AbstractSolver, pieces: list[AbstractPiece], saved: dict[str, Any], eta: np.ndarray,
            run_id: str = "") -> None:
    """Put ``run``, ``solver`` and ``pieces`` (freshly built for the run's config) in the state ``saved`` describes.

    ``eta`` is η at the snapshot's step (the step's frame, or the state's own
    copy). Raises :class:`ReplayMismatchError` when the objective evaluated
    again at η does not give the recorded value and energy bit for bit.
    """
    be = run.backend
    run.step, run.start_step, run.best_step = saved["step"], saved["start_step"], saved["best_step"]
    run.pg, run.cap, run.slack = saved["pg"], saved["cap"], saved["slack"]
    run.stalled, run.changed, run.reset = saved["stalled"], saved["changed"], saved["reset"]
    run.mask = None if saved["mask"] is None else be.asarray(saved["mask"])
    run.objective = run.weights.import_state(run.cs, saved["weights"])
    own = saved["eta"] if saved["eta"] is not None else np.asarray(eta, np.float64)
    x = be.asarray(own)
    run.state = State.at(run.objective, x)
    if (run.state.value, run.state.energy) != (saved["value"], saved["energy"]):
        raise ReplayMismatchError(run_id, run.step, {"value": saved["value"], "energy": saved["energy"]},
                                  {"value": run.state.value, "energy": run.state.energy})
    host = be.to_numpy(x)
    host.setflags(write=False)
    run.host = host
    solver.import_state(run.objective, run.state, run.step, run.mask, saved["solver"])
    for piece, state in zip(pieces, saved["pieces"], strict=True):
        piece.import_state(run, state)
