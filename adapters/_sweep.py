"""Sweeps: many runs over axes of config fields, System parameters and seeds, on a process pool or Ray.

A :class:`SweepSpec` is a base (a System and a ``RelaxConfig``) plus axes. Its
points are the Cartesian product of the axes' values and the seeds; each point
is one run whose id follows from the sweep's digest and the point, so running
the same sweep again resumes it: complete runs are skipped, missing ones run.

Workers never open the store. Each relaxes its point into memory and sends the
run's events back; the driver, the store's single writer, appends each complete
run in one batch (a failed point never leaves a partial run). A worker that
dies has its point retried up to ``max_retries`` times; a point whose input is
invalid fails at once with the reason. Every point's status is kept in the
store's ``sweep_points`` table (views ``v_sweeps``, ``v_sweep_points``).

Axis paths:

- a config field, dotted for nested ones: ``step_size``, ``stability.cap_fraction``;
- a parameter of one entity of the System: ``system.<entity id>.<field>``;
- ``seed`` (or the spec's ``seeds``).

>>> from complexity_from_constraints.entities import RelaxConfig, standard_system
>>> spec = SweepSpec(name="demo", system=standard_system(20, seed=0), config=RelaxConfig(steps=20),
...                  axes=[ListAxis(path="step_size", values=[0.05, 0.1])], seeds=[0, 1, 2])
>>> len(spec.points()), spec.points()[0].values
(6, {'step_size': 0.05, 'seed': 0})
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from complexity_from_constraints.entities import InvalidEntityError, LogIntegrityError

from complexity_from_constraints.events import AbstractEventStore, RunMeta

from ._sweep_engines import AbstractEngine, LocalEngine, PointOutcome, RayEngine, SerialEngine, make_engine, run_point
from ._sweep_spec import FAULTS_ENV, Axis, GridAxis, Job, JobList, ListAxis, Point, RandomAxis, SweepSpec

__all__ = ["AbstractEngine", "Axis", "EngineChoice", "FAULTS_ENV", "GridAxis", "Job", "JobList", "ListAxis", "LocalEngine", "Point", "PointOutcome",
           "RandomAxis", "RayEngine", "SerialEngine", "SweepResult", "SweepSpec", "engine_choice", "make_engine", "run_point", "running_on", "sweep"]


# -- the engine a block of code runs on -------------------------------------------------------

@dataclass(frozen=True)
class EngineChoice:
    """Where tools that run many relaxations (a study's ``relax_all``) send them: ``serial`` (this process),
    ``local`` (a process pool of ``workers``) or ``ray`` (a local cluster, or the one at ``address``)."""

    engine: str = "serial"
    workers: int | None = None
    address: str | None = None


_ENGINE: ContextVar[EngineChoice | None] = ContextVar("cfc_engine", default=None)


@contextmanager
def running_on(engine: str = "local", workers: int | None = None, address: str | None = None) -> Iterator[EngineChoice]:
    """Run the relaxations that tools start in this block (every study's) on ``engine``.

    ``cfc experiment --engine --workers`` wraps a study in it; outside any block, studies run serially.

    >>> with running_on("local", workers=2) as choice:
    ...     engine_choice() == choice
    True
    >>> engine_choice() is None
    True
    """
    if engine not in ("serial", "local", "ray"):
        raise InvalidEntityError("running_on", None, "engine", engine, "choose serial, local or ray")
    choice = EngineChoice(engine, workers, address)
    token = _ENGINE.set(choice)
    try:
        yield choice
    finally:
        _ENGINE.reset(token)


def engine_choice() -> EngineChoice | None:
    """The engine of the innermost :func:`running_on` block (``None`` outside one)."""
    return _ENGINE.get()


# -- the driver --------------------------------------------------------------------------------

@dataclass
class SweepResult:
    """How a sweep went: per point its run id and status, and the driver's ingest figures."""

    sweep_id: str
    status: dict[str, str] = field(default_factory=dict)  # run id → complete | skipped | failed
    reasons: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    eta_values: int = 0
    ingest_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(s == status for s in self.status.values())

    @property
    def ingest_rate(self) -> float:
        """η values appended per second of the driver's append time."""
        return self.eta_values / self.ingest_seconds if self.ingest_seconds > 0 else math.nan


def sweep(spec: SweepSpec | JobList, *, store: AbstractEventStore, engine: str | AbstractEngine = "local",
          workers: int | None = None, address: str | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> SweepResult:
    """Run every point of ``spec`` not yet complete in ``store``; append each finished run whole.

    Args:
        spec: the sweep, or a :class:`JobList` (each job its own System, config and seed).
        store: where the runs go (the driver is its only writer).
        engine: ``"local"`` (a process pool), ``"ray"``, ``"serial"``, or an engine object.
        workers: processes (local) or CPUs of a local Ray cluster; default the number of cores.
        address: an existing Ray cluster to join.
        progress: ``fn(done, total, what)`` after each point.

    Returns:
        A :class:`SweepResult`; failed points are listed with their reasons, never half stored.
    """
    points = spec.points()
    result = SweepResult(spec.sweep_id())
    book = _Bookkeeping.of(store)
    book.register(spec, points)
    todo = []
    stored = {info.run_id: info.complete for info in store.runs()}  # one query, not two per point
    for point in points:
        if point.run_id not in stored:
            todo.append(point.index)
        elif stored[point.run_id]:
            result.status[point.run_id] = "skipped"
        else:  # only a crash of an older writer could leave this; its events are not ours to extend
            _fail(result, book, point, "an incomplete run with this id is already in the store", 0)
    done = len(points) - len(todo)
    if progress:
        progress(done, len(points), "points")
    spec_json = spec.canonical_json()
    from complexity_from_constraints.projectors import current_labels

    labels = current_labels() or RunMeta()  # a study's label (``labelled(study=…)``) reaches its sweep's runs
    runner = make_engine(engine, workers, address)
    runner.faults = os.environ.get(FAULTS_ENV)
    runner.encoded = hasattr(store, "append_runs")  # a DuckDB store: workers compress and serialise, the driver inserts
    ingest = _Ingest(store, book, spec, result, labels)
    # While workers use every core, DuckDB's own threads only contend with them: the driver inserts on one.
    threads = getattr(store, "threads", None) if not isinstance(runner, SerialEngine) else None
    with threads(1) if threads is not None else nullcontext():
        _drive(runner, spec_json, todo, points, spec, result, book, ingest, done, progress)
    return result


def _drive(runner: AbstractEngine, spec_json: str, todo: list[int], points: list[Point], spec: Any,
           result: SweepResult, book: _Bookkeeping, ingest: _Ingest, done: int,
           progress: Callable[[int, int, str], None] | None) -> None:
    """Run the points ``todo`` on ``runner``, retrying dead workers' points, and hand each finished run to ``ingest``."""
    try:
        attempts: dict[int, int] = {}
        while todo:
            retry = []
            for index, outcome in runner.run(spec_json, todo):
                point = points[index]
                attempts[index] = attempts.get(index, 0) + 1
                result.attempts[point.run_id] = attempts[index]
                if isinstance(outcome, BaseException):
                    if attempts[index] <= spec.max_retries:
                        retry.append(index)
                        continue
                    reason = f"worker failed {attempts[index]} time(s): {type(outcome).__name__}: {outcome}"
                    _fail(result, book, point, reason, attempts[index])
                elif outcome.error is not None:
                    _fail(result, book, point, outcome.error, attempts[index])
                else:
                    ingest.add(point, outcome, attempts[index])
                done += 1
                if progress:
                    progress(done, len(points), "points")
            ingest.flush()
            todo = sorted(retry)
    finally:
        runner.close()
        ingest.flush()


class _Ingest:
    """Appends finished runs in groups, one transaction per group: a commit costs tens of milliseconds, which
    many small runs would otherwise each pay. A group holds whole runs only; if one run of it is refused,
    the others are stored one by one and the refused one is marked failed, so nothing is half stored.
    A group is written when it holds ``max_runs`` runs or ``max_values`` η values, or ``max_wait`` seconds
    after its first run arrived (and whenever the engine has nothing more to give)."""

    def __init__(self, store: AbstractEventStore, book: _Bookkeeping, spec: Any, result: SweepResult,
                 labels: RunMeta, max_runs: int = 64, max_values: int = 1 << 22, max_wait: float = 1.0):
        self.store, self.book, self.spec, self.result, self.labels = store, book, spec, result, labels
        self.max_runs, self.max_values, self.max_wait = max_runs, max_values, max_wait
        self.pending: list[tuple[Point, PointOutcome, int, int]] = []
        self.values, self.since = 0, 0.0

    def add(self, point: Point, outcome: PointOutcome, attempts: int) -> None:
        values = (outcome.encoded.eta_values if outcome.encoded is not None else
                  sum(r.event.eta.size for r in outcome.events if r.event.type == "EtaRecorded"))
        if not self.pending:
            self.since = time.perf_counter()
        self.pending.append((point, outcome, attempts, values))
        self.values += values
        if (len(self.pending) >= self.max_runs or self.values >= self.max_values
                or time.perf_counter() - self.since >= self.max_wait):
            self.flush()

    def flush(self) -> None:
        group, self.pending, self.values = self.pending, [], 0
        if not group:
            return
        started = time.perf_counter()
        try:
            with self._transaction():
                self._store(group)
        except LogIntegrityError:  # one run of the group was refused: the group rolled back whole
            for item in group:
                try:
                    with self._transaction():
                        self._store([item])
                except LogIntegrityError as exc:
                    _fail(self.result, self.book, item[0], f"{type(exc).__name__}: {exc}", item[2])
        self.result.ingest_seconds += time.perf_counter() - started

    def _transaction(self):
        transaction = getattr(self.store, "transaction", None)
        return transaction() if transaction is not None else nullcontext()

    def _meta(self, point: Point, outcome: PointOutcome) -> RunMeta:
        labels = self.labels
        return RunMeta(
            name=f"{self.spec.name}/p{point.index}", sweep=self.result.sweep_id, started_at=outcome.started_at,
            duration_s=outcome.seconds, study=labels.study, parent=labels.parent,
            tags={**labels.tags, **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in point.values.items()}})

    def _store(self, group: list[tuple[Point, PointOutcome, int, int]]) -> None:
        encoded = [(outcome.encoded, self._meta(point, outcome)) for point, outcome, _, _ in group
                   if outcome.encoded is not None]
        if encoded:
            self.store.append_runs(encoded)  # type: ignore[attr-defined]
        for point, outcome, _, _ in group:
            if outcome.encoded is None:
                self.store.record_meta(point.run_id, self._meta(point, outcome))
                self.store.append(point.run_id, list(outcome.events))
        self.book.set_many(self.spec, [(point, "complete", attempts, None, outcome.seconds)
                                       for point, outcome, attempts, _ in group])
        for point, _, _, values in group:
            self.result.eta_values += values
            self.result.status[point.run_id] = "complete"


def _fail(result: SweepResult, book: _Bookkeeping, point: Point, reason: str, attempts: int) -> None:
    result.status[point.run_id] = "failed"
    result.reasons[point.run_id] = reason
    book.set(None, point, "failed", attempts, reason, None)


class _Bookkeeping:
    """The sweep's own tables in a DuckDB store (``sweeps``, ``sweep_points``); nothing for other stores."""

    def __init__(self, store: Any):
        self.store = store

    @classmethod
    def of(cls, store: AbstractEventStore) -> _Bookkeeping:
        from ._duckdb_store import DuckDBStore

        return cls(store) if isinstance(store, DuckDBStore) else _NoBookkeeping(store)

    def register(self, spec: SweepSpec | JobList, points: list[Point]) -> None:
        sweep_id = spec.sweep_id()
        with self.store.transaction():
            self.store._execute("INSERT INTO sweeps SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                                "(SELECT 1 FROM sweeps WHERE sweep_id = ?)",
                                [sweep_id, spec.name, spec.digest(), spec.canonical_json(), sweep_id])
            known = {r[0] for r in self.store._execute("SELECT point FROM sweep_points WHERE sweep_id = ?", [sweep_id])}
            rows = [(sweep_id, p.index, p.run_id, p.seed, json.dumps({k: v for k, v in p.values.items() if k != "seed"}))
                    for p in points if p.index not in known]
            if rows:
                import pyarrow as pa

                table = pa.table({"sweep_id": [r[0] for r in rows], "point": [r[1] for r in rows],
                                  "run_id": [r[2] for r in rows], "seed": [r[3] for r in rows],
                                  "axes": [r[4] for r in rows], "status": ["pending"] * len(rows),
                                  "attempts": [0] * len(rows), "reason": pa.nulls(len(rows), pa.string()),
                                  "seconds": pa.nulls(len(rows), pa.float64())})
                self.store._insert_rows("sweep_points", table)
        self.sweep_id = sweep_id

    def set(self, spec: SweepSpec | JobList | None, point: Point, status: str, attempts: int, reason: str | None,
            seconds: float | None) -> None:
        self.set_many(spec, [(point, status, attempts, reason, seconds)])

    def set_many(self, spec: SweepSpec | JobList | None,
                 updates: list[tuple[Point, str, int, str | None, float | None]]) -> None:
        """Each point's status, attempts, reason and seconds, in one UPDATE."""
        import pyarrow as pa

        rows = pa.table({"point": pa.array([u[0].index for u in updates], pa.int32()),
                         "status": pa.array([u[1] for u in updates], pa.string()),
                         "attempts": pa.array([u[2] for u in updates], pa.int32()),
                         "reason": pa.array([u[3] for u in updates], pa.string()),
                         "seconds": pa.array([u[4] for u in updates], pa.float64())})
        self.store._insert_rows("sweep_points", rows, (
            "UPDATE sweep_points AS p SET status = u.status, attempts = u.attempts, reason = u.reason, "
            "seconds = u.seconds FROM _cfc_rows AS u WHERE p.sweep_id = ? AND p.point = u.point"), [self.sweep_id])


class _NoBookkeeping(_Bookkeeping):
    def register(self, spec, points):
        pass

    def set_many(self, spec, updates):
        pass
