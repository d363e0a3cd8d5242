"""Replay (fold the log back into state) and re-run (execute a recorded run again)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from complexity_from_constraints.entities import UnknownRunError, UnknownStepError
from complexity_from_constraints.events import (
    AbstractEventStore,
    EntityRevised,
    EtaRecorded,
    GateClosed,
    GateOpened,
    ModuleAdded,
    Recorded,
    RunFinished,
    RunMeta,
    RunStarted,
    StepCommitted,
)

from . import _resume
from ._fork import fork
from ._run import HookMap, RunResult, relax


class StoredIds(Sequence[str]):
    """A run's module ids in η order, read from the store on first use.

    Replay needs only how many modules a run has; a run of 10⁶ modules should
    not build a tuple of 10⁶ strings at every replay. Indexing, iterating,
    ``index``, ``in``, ``==`` and ``+`` read the ids once and keep them.
    """

    __slots__ = ("_store", "_run_id", "_n", "_ids")

    def __init__(self, store: AbstractEventStore, run_id: str, n: int):
        self._store, self._run_id, self._n, self._ids = store, run_id, n, None

    def _load(self) -> tuple[str, ...]:
        if self._ids is None:
            self._ids = tuple(self._store.module_ids(self._run_id)[: self._n])
        return self._ids

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        return self._load()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, value: object) -> bool:
        return value in self._load()

    def index(self, value: Any, start: int = 0, stop: int = sys.maxsize) -> int:
        return self._load().index(value, start, stop)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and self._load() == tuple(other)

    def __hash__(self) -> int:
        return hash(self._load())

    def __add__(self, other: Sequence[str]) -> tuple[str, ...]:
        return self._load() + tuple(other)

    def __repr__(self) -> str:
        return f"StoredIds({self._run_id!r}, n={self._n})"


@dataclass(frozen=True)
class RunState:
    """A run's state as the log says it was after ``step``."""

    run_id: str
    step: int
    ids: Sequence[str]  # a tuple, or the run's StoredIds (read on first use)
    eta: np.ndarray = field(repr=False)
    energy: float
    open_gates: frozenset[str]
    accepted_steps: int
    status: str | None  # RunFinished's status, None while the run is (or was left) unfinished
    revised: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # entity id → its latest revised version

    def version_of(self, entity_id: str) -> int | None:
        """The entity's version after a revision in this run, ``None`` if it was never revised so far."""
        entity = self.revised.get(entity_id)
        return None if entity is None else int(entity["version"])

    def eta_of(self, module_id: str) -> float:
        return float(self.eta[self.ids.index(module_id)])

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.ids, map(float, self.eta)))


_EMPTY = RunState("", -1, (), np.zeros(0), float("nan"), frozenset(), 0, None)


def apply(state: RunState, rec: Recorded) -> RunState:
    """Fold one event into the state (pure; nothing is recomputed)."""
    ev = rec.event
    if isinstance(ev, RunStarted):
        return replace(_EMPTY, run_id=rec.run_id, ids=ev.system.module_ids)
    if isinstance(ev, StepCommitted):
        return replace(state, step=ev.step, energy=ev.energy, accepted_steps=state.accepted_steps + (ev.accepted and ev.step > 0))
    if isinstance(ev, EtaRecorded):
        return replace(state, eta=ev.eta)
    if isinstance(ev, GateOpened):
        return replace(state, open_gates=state.open_gates | {ev.gate_id})
    if isinstance(ev, GateClosed):
        return replace(state, open_gates=state.open_gates - {ev.gate_id})
    if isinstance(ev, ModuleAdded):
        return replace(state, ids=state.ids + (ev.module["id"],))
    if isinstance(ev, EntityRevised):
        return replace(state, revised={**state.revised, ev.entity_id: ev.entity})
    if isinstance(ev, RunFinished):
        return replace(state, status=ev.status)
    return state


def fold(records: Iterable[Recorded], state: RunState | None = None) -> RunState:
    """Fold a run's events, in seq order, into its state (from ``state`` or from nothing)."""
    state = state or _EMPTY
    for rec in records:
        state = apply(state, rec)
    return state


def replay(store: AbstractEventStore, run_id: str, step: int | None = None) -> RunState:
    """The state of ``run_id`` after ``step`` (default: the end), rebuilt from the log alone.

    Only the η frame in force at ``step`` is read, so replay costs one frame
    whatever the run's length. In snapshot mode (``RelaxConfig.snapshots``)
    a step whose η was not recorded is re-run from the latest snapshot at or
    before it (fewer than k steps), every regenerated event checked against
    the log bit for bit (:class:`~entities.ReplayMismatchError` otherwise);
    a run whose loop cannot resume mid-run (expansion or revisions, L-BFGS-B,
    a weighting or solver without saved state) is re-run from its start.
    The state's ``ids`` are read from the store when first used (a run of 10⁶
    modules builds no tuple of ids unless asked), so use them before closing the store.

    >>> from complexity_from_constraints.entities import System, LandauModule, RelaxConfig
    >>> from complexity_from_constraints.events import InMemoryStore
    >>> from complexity_from_constraints.projectors import relax
    >>> store = InMemoryStore()
    >>> r = relax(System(id="s", modules=[LandauModule(id="m", a=-1.0)]), RelaxConfig(steps=5), store=store)
    >>> replay(store, r.run_id, 5).eta_of("m") == r.eta_of("m")
    True
    """
    if step is not None and step < 0:
        raise UnknownStepError(f"step must be >= 0, got {step}")
    start = replace(_EMPTY, run_id=run_id, ids=StoredIds(store, run_id, store.run_info(run_id).n_modules))
    light = store.read(run_id, until_step=step, types=_LIGHT_TYPES)
    last_step = max((r.event.step for r in light if isinstance(r.event, StepCommitted)), default=-1)
    if last_step < 0:
        raise UnknownStepError(f"run {run_id!r} has no recorded step: it stopped before its initial state was committed")
    if step is not None and step > last_step:
        raise UnknownStepError(f"run {run_id!r} has steps 0..{last_step}; step {step} does not exist")
    state = fold(light, start)
    frame = store.latest_eta(run_id, state.step)
    if frame is None or frame.step < _resume.last_change(light):  # snapshot mode: η at this step was not recorded
        # what the re-run checks beyond the light events, read apart so that replaying a recorded step skips it
        records = sorted([*light, *store.read(run_id, until_step=step, types=_MORE_TYPES)], key=lambda r: r.seq)
        return replace(state, eta=_resume.eta_at(store, run_id, state.step,
                                                 lambda parent, at: replay(store, parent, at).eta, records))
    return replace(state, eta=frame.eta)


_LIGHT_TYPES = ("StepCommitted", "GateOpened", "GateClosed", "ModuleAdded", "EntityRevised", "RunFinished")
_MORE_TYPES = tuple(t for t in _resume.READ_TYPES if t not in _LIGHT_TYPES)


def rerun(store: AbstractEventStore, run_id: str, *, hooks: HookMap | None = None) -> RunResult:
    """Execute ``run_id`` again from its recorded System, config and seed, into ``store``.

    A fork (``parent_run_id`` set) is re-run by forking its parent again at the same step.
    """
    started = store.read(run_id, types=["RunStarted"])
    if not started:
        raise UnknownRunError(f"no run {run_id!r} in this store")
    ev = started[0].event
    if ev.parent_run_id is not None:
        return fork(store, ev.parent_run_id, ev.parent_step, ev.config, seed=ev.seed, hooks=hooks)
    return relax(ev.system, ev.config, seed=ev.seed, store=store, hooks=hooks, meta=RunMeta(parent=run_id))


@dataclass(frozen=True)
class StreamDifference:
    """The first place two runs' event streams differ."""

    seq: int
    left: str
    right: str


def first_difference(store: AbstractEventStore, run_a: str, run_b: str) -> StreamDifference | None:
    """Compare two runs' event streams event by event (run ids aside); ``None`` if identical."""
    a, b = store.read(run_a), store.read(run_b)
    for ra, rb in zip(a, b):
        if ra.seq != rb.seq or ra.event != rb.event:
            return StreamDifference(ra.seq, _describe(ra), _describe(rb))
    if len(a) != len(b):
        n = min(len(a), len(b))
        return StreamDifference(n, _describe(a[n]) if n < len(a) else "(end)", _describe(b[n]) if n < len(b) else "(end)")
    return None


def _describe(rec: Recorded) -> str:
    ev = rec.event
    if isinstance(ev, EtaRecorded):
        return f"EtaRecorded(step={ev.step}, digest={hash(ev.eta.tobytes()) & 0xFFFFFFFF:08x})"
    return repr(ev)[:200]
