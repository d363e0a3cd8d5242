"""The event-log interface and an in-memory implementation.

A store keeps, per run, an append-only sequence of :class:`Recorded` events
with gap-free sequence numbers ``seq`` starting at 0. :meth:`AbstractEventStore.append`
is atomic: a batch is stored whole or not at all, so a crash leaves a prefix
of whole batches. A run without a ``RunFinished`` event is *incomplete*.

Guarantees every store keeps (the contract suite in ``tests/events`` checks each):

- **Acknowledged** means committed: an event is acknowledged once the
  :meth:`~AbstractEventStore.append` call that carried it has returned, which is
  also when its hook signals fire. An acknowledged event survives a crash of
  the process (for a store with a file) and is never rewritten.
- :meth:`~AbstractEventStore.new_run_id` *reserves* the id it returns, under
  the store's lock: two relaxations of the same System, config and seed in one
  store get different ordinals, and a run's log holds one computation's events.
- ``append`` checks and writes under the same lock, so concurrent writers can
  neither interleave nor duplicate seqs; it refuses, before writing anything,
  an event holding NaN or ±inf (:class:`NonFiniteValueError`).
- Batches written by ``relax`` end on step boundaries, so the log is a prefix
  of whole steps.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from complexity_from_constraints.entities import (
    LogIntegrityError,
    NonFiniteValueError,
    UnknownRunError,
    content_digest,
)

from ._types import EtaRecorded, Event, RunFinished, RunStarted, non_finite_field


@dataclass(frozen=True)
class Recorded:
    """An event with its place in a run's log; ``event_id`` is deterministic."""

    run_id: str
    seq: int
    event: Event

    @property
    def event_id(self) -> str:
        return f"{self.run_id}/{self.seq}"

    @property
    def step(self) -> int | None:
        return getattr(self.event, "step", None)


@dataclass(frozen=True)
class RunInfo:
    """A row of the run registry."""

    run_id: str
    system_id: str
    system_digest: str
    seed: int
    n_modules: int
    complete: bool


@dataclass(frozen=True)
class RunMeta:
    """What people call a run and where it came from: metadata that replay, re-run and diff ignore.

    ``started_at`` (ISO 8601, UTC) and ``duration_s`` are the only wall-clock
    values the project keeps, and they live here, outside the log.
    """

    name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    study: str | None = None
    sweep: str | None = None
    parent: str | None = None  # the run this one forks or re-runs
    started_at: str | None = None
    duration_s: float | None = None


class AbstractEventStore(abc.ABC):
    """Where runs' events live. Implementations differ only in persistence.

    Subclasses call ``super().__init__()``: it creates the store's re-entrant
    lock, which :meth:`append` and :meth:`new_run_id` hold, and the set of
    reserved run ids.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._reserved: set[str] = set()

    @abc.abstractmethod
    def _write(self, run_id: str, batch: Sequence[Recorded], new_run: RunStarted | None) -> None:
        """Persist one checked batch atomically."""

    @abc.abstractmethod
    def next_seq(self, run_id: str) -> int:
        """The seq the next appended event of ``run_id`` must have (0 for a new run)."""

    @abc.abstractmethod
    def read(self, run_id: str, *, until_step: int | None = None, types: Iterable[str] | None = None) -> list[Recorded]:
        """The run's events in seq order, optionally only up to ``until_step`` / of ``types``."""

    @abc.abstractmethod
    def runs(self) -> list[RunInfo]:
        """Every run, in the order they were started."""

    def latest_eta(self, run_id: str, step: int) -> EtaRecorded | None:
        """The last η frame recorded at or before ``step`` (``None`` if none)."""
        frames = [r.event for r in self.read(run_id, until_step=step, types=[EtaRecorded.type])]
        return frames[-1] if frames else None  # type: ignore[return-value]

    def etas_at(self, run_id: str, steps: Iterable[int]) -> dict[int, EtaRecorded]:
        """The η frames recorded at exactly these ``steps``, by step (a step without a frame is left out).

        A store may fetch them together (DuckDB: one query and one pass over
        their chain, where ``latest_eta`` per step would decode it again each time).
        """
        found = {}
        for step in set(steps):
            frame = self.latest_eta(run_id, step)
            if frame is not None and frame.step == step:
                found[step] = frame
        return found

    def append(self, run_id: str, batch: Sequence[Recorded]) -> None:
        """Append a batch atomically, checking it extends the log without gaps.

        The checks and the write happen under the store's lock, so two threads
        appending to one run cannot both pass the seq check. When it returns,
        the batch is committed: its events are *acknowledged*.

        Raises:
            LogIntegrityError: wrong run id, a gap or duplicate seq, a first batch
                that does not start with RunStarted, or events after RunFinished.
            NonFiniteValueError: an event holds NaN or ±inf (it names the event and field).
        """
        if not batch:
            return
        for rec in batch:  # pure checks first: nothing of a refused batch is written
            if rec.run_id != run_id:
                raise LogIntegrityError(f"batch for run {run_id!r} holds an event of run {rec.run_id!r}")
            bad = non_finite_field(rec.event)
            if bad is not None:
                raise NonFiniteValueError(
                    f"run {run_id!r}, seq {rec.seq} ({rec.event.type}): field {bad!r} is not finite; "
                    f"the log keeps finite numbers only")
        with self._lock:
            expected = self.next_seq(run_id)
            for offset, rec in enumerate(batch):
                if rec.seq != expected + offset:
                    raise LogIntegrityError(f"run {run_id!r}: expected seq {expected + offset}, got {rec.seq}")
            new_run = None
            if expected == 0:
                if not isinstance(batch[0].event, RunStarted):
                    raise LogIntegrityError(f"run {run_id!r} must start with RunStarted")
                new_run = batch[0].event
            elif self.is_complete(run_id):
                raise LogIntegrityError(f"run {run_id!r} is finished; its log is closed")
            if any(isinstance(r.event, RunStarted) for r in batch[1 if new_run else 0:]):
                raise LogIntegrityError(f"run {run_id!r}: RunStarted may only be the first event")
            self._write(run_id, batch, new_run)
            if new_run is not None:
                self._reserved.discard(run_id)  # the registry holds it now

    def module_ids(self, run_id: str) -> tuple[str, ...]:
        """The run's module ids in η order, modules added by expansion included (at the end)."""
        records = self.read(run_id, types=["RunStarted", "ModuleAdded"])
        if not records:
            raise UnknownRunError(f"no run {run_id!r} in this store")
        ids = records[0].event.system.module_ids  # type: ignore[union-attr]
        return ids + tuple(r.event.module["id"] for r in records[1:])  # type: ignore[union-attr]

    def is_complete(self, run_id: str) -> bool:
        return bool(self.read(run_id, types=["RunFinished"]))

    def run_info(self, run_id: str) -> RunInfo:
        for info in self.runs():
            if info.run_id == run_id:
                return info
        raise UnknownRunError(f"no run {run_id!r} in this store")

    def new_run_id(self, started: RunStarted) -> str:
        """Reserve and return a readable, deterministic id: a digest of system, config and seed, plus an ordinal.

        The ordinal is the first one neither stored nor reserved; the id stays
        reserved (no other call returns it) until its first batch registers the
        run or :meth:`release_run_id` gives it back. So concurrent runs of the
        same System, config and seed get ``…-1``, ``…-2``, … in call order.
        """
        stem = content_digest([started.system_digest, started.config.model_dump(mode="json"), started.seed])[:10]
        with self._lock:
            taken = self._taken_ids(stem) | self._reserved
            n = 1
            while f"{stem}-{n}" in taken:
                n += 1
            self._reserved.add(f"{stem}-{n}")
            return f"{stem}-{n}"

    def release_run_id(self, run_id: str) -> None:
        """Give back a reserved id whose run never wrote a batch (no-op otherwise)."""
        with self._lock:
            self._reserved.discard(run_id)

    def _taken_ids(self, stem: str) -> set[str]:
        """The stored run ids that start with ``stem`` (a store may answer with a narrower query)."""
        return {info.run_id for info in self.runs() if info.run_id.startswith(stem)}

    def in_transaction(self) -> bool:
        """Whether the calling thread holds an open multi-statement transaction of this store (never, by default)."""
        return False

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Remove whole runs, all or none, and return how many events went: the one mutation of the log.

        A store that keeps a log of its own records what was deleted and when.
        Unknown ids raise :class:`UnknownRunError` before anything is removed.
        """
        raise NotImplementedError(f"{type(self).__name__} does not delete runs")

    def record_meta(self, run_id: str, meta: RunMeta) -> None:
        """Keep ``meta`` for ``run_id`` (replacing what was kept). Not part of the log: no seq, no hooks."""
        self.__dict__.setdefault("_run_meta", {})[run_id] = meta

    def run_meta(self, run_id: str) -> RunMeta | None:
        """The metadata kept for ``run_id``, if any."""
        return self.__dict__.get("_run_meta", {}).get(run_id)

    def close(self) -> None:
        """Release resources (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InMemoryStore(AbstractEventStore):
    """A store in a Python dict; useful for tests and throw-away runs.

    >>> from complexity_from_constraints.events import InMemoryStore
    >>> InMemoryStore().runs()
    []
    """

    def __init__(self) -> None:
        super().__init__()
        self._logs: dict[str, list[Recorded]] = {}
        self._infos: dict[str, RunInfo] = {}

    def _write(self, run_id, batch, new_run):
        with self._lock:
            log = self._logs.setdefault(run_id, [])
            log.extend(batch)
            if new_run is not None:
                self._infos[run_id] = RunInfo(run_id, new_run.system.id, new_run.system_digest, new_run.seed,
                                              new_run.system.n_modules, False)

    def next_seq(self, run_id):
        with self._lock:
            return len(self._logs.get(run_id, ()))

    def read(self, run_id, *, until_step=None, types=None):
        with self._lock:
            if run_id not in self._logs:
                raise UnknownRunError(f"no run {run_id!r} in this store")
            log = list(self._logs[run_id])
        wanted = set(types) if types is not None else None
        out = []
        for rec in log:
            if wanted is not None and rec.event.type not in wanted:
                continue
            if until_step is not None and rec.step is not None and rec.step > until_step:
                continue
            if until_step is not None and isinstance(rec.event, RunFinished):
                continue
            out.append(rec)
        return out

    def runs(self):
        with self._lock:
            return [RunInfo(i.run_id, i.system_id, i.system_digest, i.seed, i.n_modules,
                            any(isinstance(r.event, RunFinished) for r in self._logs[i.run_id]))
                    for i in self._infos.values()]

    def delete_runs(self, run_ids):
        with self._lock:
            unknown = sorted(set(run_ids) - set(self._logs))
            if unknown:
                raise UnknownRunError(f"no run {unknown[0]!r} in this store")
            removed = 0
            for run_id in set(run_ids):
                removed += len(self._logs.pop(run_id))
                self._infos.pop(run_id, None)
                self.__dict__.get("_run_meta", {}).pop(run_id, None)
            return removed


class NullStore(AbstractEventStore):
    """Recording off: batches are checked and counted, then dropped.

    Hooks still fire (after each batch is "committed" here), and the run
    registry is kept so run ids stay unique; nothing can be read back.
    """

    def __init__(self) -> None:
        super().__init__()
        self._next: dict[str, int] = {}
        self._infos: dict[str, RunInfo] = {}
        self._finished: set[str] = set()

    def _write(self, run_id, batch, new_run):
        with self._lock:
            if new_run is not None:
                self._infos[run_id] = RunInfo(run_id, new_run.system.id, new_run.system_digest, new_run.seed,
                                              new_run.system.n_modules, False)
            self._next[run_id] = batch[-1].seq + 1
            if isinstance(batch[-1].event, RunFinished):
                self._finished.add(run_id)

    def next_seq(self, run_id):
        with self._lock:
            return self._next.get(run_id, 0)

    def read(self, run_id, *, until_step=None, types=None):
        raise UnknownRunError(f"run {run_id!r} was not recorded (NullStore keeps nothing)")

    def is_complete(self, run_id):
        with self._lock:
            return run_id in self._finished

    def runs(self):
        with self._lock:
            return [RunInfo(i.run_id, i.system_id, i.system_digest, i.seed, i.n_modules, i.run_id in self._finished)
                    for i in self._infos.values()]
