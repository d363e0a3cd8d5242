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
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal, Union

import numpy as np
from pydantic import Field, JsonValue, model_validator

from complexity_from_constraints.entities import (
    AbstractFrozen,
    CfcError,
    DivergedError,
    InvalidEntityError,
    RelaxConfig,
    System,
    content_digest,
)
from complexity_from_constraints.events import AbstractEventStore, Recorded, RunMeta

FAULTS_ENV = "CFC_SWEEP_FAULTS"
"""Test hook, read by the driver when a sweep starts: a folder; a file ``<run_id>.kill`` in it makes
the worker that picks up that point kill itself once (the file is removed first), as a crashed worker would."""


class _Axis(AbstractFrozen):
    path: str = Field(pattern=r"^(seed|system\.[A-Za-z0-9_.:\-]+\.[a-z_][a-z0-9_]*|[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*)$")

    def values_(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class ListAxis(_Axis):
    """The listed values, in order."""

    kind: Literal["list"] = "list"
    values: tuple[JsonValue, ...] = Field(min_length=1)

    def values_(self) -> list[Any]:
        return list(self.values)


class GridAxis(_Axis):
    """``num`` evenly spaced values from ``start`` to ``stop`` (geometrically with ``log``)."""

    kind: Literal["grid"] = "grid"
    start: float
    stop: float
    num: int = Field(ge=1, le=100_000)
    log: bool = False

    @model_validator(mode="after")
    def _check_log(self):
        if self.log and (self.start <= 0 or self.stop <= 0):
            raise InvalidEntityError("GridAxis", None, "start", self.start, "a log grid needs start, stop > 0")
        return self

    def values_(self) -> list[Any]:
        grid = np.geomspace(self.start, self.stop, self.num) if self.log else np.linspace(self.start, self.stop, self.num)
        return [float(v) for v in grid]


class RandomAxis(_Axis):
    """``n`` seeded uniform draws in [low, high] (log-uniform with ``log``; integers with ``integer``)."""

    kind: Literal["random"] = "random"
    low: float
    high: float
    n: int = Field(ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _check_range(self):
        if self.high < self.low:
            raise InvalidEntityError("RandomAxis", None, "high", self.high, f"must be ≥ low ({self.low})")
        if self.log and self.low <= 0:
            raise InvalidEntityError("RandomAxis", None, "low", self.low, "a log axis needs low > 0")
        return self

    def values_(self) -> list[Any]:
        rng = np.random.default_rng(self.seed)
        if self.integer:
            return [int(v) for v in rng.integers(int(self.low), int(self.high) + 1, self.n)]
        if self.log:
            return [float(v) for v in np.exp(rng.uniform(math.log(self.low), math.log(self.high), self.n))]
        return [float(v) for v in rng.uniform(self.low, self.high, self.n)]


Axis = Annotated[Union[ListAxis, GridAxis, RandomAxis], Field(discriminator="kind")]


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index, the value of every axis (``seed`` included) and its run id."""

    index: int
    values: dict[str, Any]
    run_id: str

    @property
    def seed(self) -> int:
        return int(self.values["seed"])


class SweepSpec(AbstractFrozen):
    """A validated sweep: a base System and config, axes, seeds. TOML or JSON on disk; identified by :meth:`digest`.

    ``name`` labels the sweep (and its runs); ``max_retries`` bounds how often a
    point whose worker died is tried again.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)
    system: System
    config: RelaxConfig = RelaxConfig()
    axes: tuple[Axis, ...] = ()
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    max_retries: int = Field(2, ge=0, le=10)

    @model_validator(mode="after")
    def _check_axes(self):
        paths = [a.path for a in self.axes]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise InvalidEntityError("SweepSpec", None, "axes", dupes[0], "is swept twice")
        if "seed" in paths and self.seeds != (0,):
            raise InvalidEntityError("SweepSpec", None, "seeds", list(self.seeds), "give seeds either here or as an axis")
        if any(s < 0 for s in self.seeds):
            raise InvalidEntityError("SweepSpec", None, "seeds", list(self.seeds), "seeds must be ≥ 0")
        ids = {m.id for m in self.system.modules} | {c.id for c in self.system.couplings}
        for axis in self.axes:
            if axis.path.startswith("system."):
                entity, _, name = axis.path[len("system."):].rpartition(".")
                if entity not in ids:
                    raise InvalidEntityError("SweepSpec", None, f"axes.{axis.path}", entity, "is not an entity of the System")
            elif axis.path != "seed":
                _check_config_path(axis.path)
        for point in self.points()[:1]:  # one point built in full: a bad value type shows here, not in a worker
            self.build(point)
        return self

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a ``.toml`` or ``.json`` file (errors name the file and the field)."""
        import tomllib

        path = Path(path)
        if not path.exists():
            raise CfcError(f"no such sweep spec: {path}")
        text = path.read_text()
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise CfcError(f"{path}: not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
        return cls.model_validate(data)

    def sweep_id(self) -> str:
        """A readable id from the name and the digest: equal specs, equal ids."""
        return f"{self.name}-{self.digest()[:8]}"

    def points(self) -> list[Point]:
        """Every point, axes varying slowest first, then the seeds."""
        axes = [(a.path, a.values_()) for a in self.axes]
        if not any(p == "seed" for p, _ in axes):
            axes.append(("seed", list(self.seeds)))
        stem = self.digest()[:10]
        out = []
        for index, combo in enumerate(product(*(values for _, values in axes))):
            values = dict(zip((p for p, _ in axes), combo))
            out.append(Point(index, values, f"{stem}-{content_digest(values)[:10]}"))
        return out

    def build(self, point: Point) -> tuple[System, RelaxConfig, int]:
        """The System, config and seed of ``point`` (each validated)."""
        config = self.config.model_dump(mode="json")
        changed: dict[str, dict[str, Any]] = {}
        for path, value in point.values.items():
            if path == "seed":
                continue
            if path.startswith("system."):
                entity, _, name = path[len("system."):].rpartition(".")
                changed.setdefault(entity, {})[name] = value
            else:
                _set(config, path.split("."), value)
        system = self.system
        if changed:
            system = System.model_validate(self.system.model_dump(mode="json") | {
                "modules": [_changed(m, changed) for m in self.system.modules],
                "couplings": [_changed(c, changed) for c in self.system.couplings],
            })
        return system, RelaxConfig.model_validate(config), point.seed


def _changed(entity, changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data = entity.model_dump(mode="json")
    return data | changes[entity.id] if entity.id in changes else data


def _set(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        if data.get(key) is None:
            data[key] = {}
        data = data[key]
    data[keys[-1]] = value


def _check_config_path(path: str) -> None:
    model: Any = RelaxConfig
    for key in path.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or key not in fields:
            raise InvalidEntityError("SweepSpec", None, "axes", path, "is not a RelaxConfig field")
        annotation = fields[key].annotation
        members = getattr(annotation, "__args__", (annotation,))
        model = next((m for m in members if hasattr(m, "model_fields")), None)


# -- running one point ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PointOutcome:
    """What a worker sends back: the run's events (under the point's run id) or the reason it failed."""

    run_id: str
    events: tuple[Recorded, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    started_at: str | None = None


def run_point(spec_json: str, index: int, faults: str | None = None) -> PointOutcome:
    """Relax one point of a sweep into memory and return its events (what every engine's workers call).

    ``faults`` is the folder of :data:`FAULTS_ENV` (tests only).
    """
    from complexity_from_constraints.events import InMemoryStore
    from complexity_from_constraints.projectors import relax

    spec = SweepSpec.model_validate_json(spec_json)
    point = spec.points()[index]
    if faults:
        marker = Path(faults) / f"{point.run_id}.kill"
        if marker.exists():
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
    started = time.perf_counter()
    store = InMemoryStore()
    try:
        system, config, seed = spec.build(point)
        run_id = relax(system, config, seed=seed, store=store, pipelined=False).run_id
    except DivergedError as exc:  # a result like any other: the run is recorded, and ends "diverged"
        run_id = exc.run_id
    except CfcError as exc:  # a deterministic refusal: trying again would give the same answer
        return PointOutcome(point.run_id, error=f"{type(exc).__name__}: {exc}")
    events = tuple(Recorded(point.run_id, r.seq, r.event) for r in store.read(run_id))
    meta = store.run_meta(run_id)
    return PointOutcome(point.run_id, events, seconds=time.perf_counter() - started,
                        started_at=meta.started_at if meta else None)


# -- engines -----------------------------------------------------------------------------------

class AbstractEngine:
    """Runs points somewhere and yields their outcomes as they finish (order free).

    ``run(spec_json, indices)`` yields ``(index, PointOutcome | BaseException)``;
    an exception means the worker died or could not report (the driver retries).
    """

    name: str = "abstract"

    faults: str | None = None  # set by the driver from FAULTS_ENV

    def run(self, spec_json: str, indices: list[int]) -> Iterable[tuple[int, PointOutcome | BaseException]]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (no-op by default)."""


class SerialEngine(AbstractEngine):
    """Every point in this process, one after another (the baseline, and for debugging)."""

    name = "serial"

    def run(self, spec_json, indices):
        for index in indices:
            try:
                yield index, run_point(spec_json, index, self.faults)
            except Exception as exc:  # an untyped failure inside the run: reported, not fatal to the sweep
                yield index, exc


class LocalEngine(AbstractEngine):
    """A process pool on this machine (``workers`` defaults to the number of cores)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # forkserver: workers fork from a clean server process that has imported the package once, so
            # they inherit none of the driver's threads or open files (DuckDB) and start in milliseconds
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__, "complexity_from_constraints.projectors"])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._pool

    def run(self, spec_json, indices):
        pending: dict[Future, int] = {self._executor().submit(run_point, spec_json, i, self.faults): i for i in indices}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = None
            for future in done:
                index = pending.pop(future)
                try:
                    yield index, future.result()
                except BrokenProcessPool as exc:  # a worker died: every point still in flight is lost with it
                    broken = exc
                    yield index, exc
                except Exception as exc:
                    yield index, exc
            if broken is not None:
                lost, pending = list(pending.values()), {}
                self.close()
                for index in lost:
                    yield index, broken

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RayEngine(AbstractEngine):
    """Ray tasks: a local cluster (``num_cpus=workers``), or the cluster at ``address``."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            from complexity_from_constraints.entities import MissingDependencyError

            raise MissingDependencyError('the ray engine needs ray: pip install -e ".[ray]"') from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address is not None:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        self._remote = ray.remote(max_retries=0)(run_point)

    def run(self, spec_json, indices):
        ray = self._ray
        spec_ref = ray.put(spec_json)
        pending = {self._remote.remote(spec_ref, i, self.faults): i for i in indices}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    yield index, ray.get(ref)
                except Exception as exc:  # a worker that died, or a task error
                    yield index, exc

    def close(self) -> None:
        if self._started:  # a local cluster this engine started goes with it; a joined one stays
            self._ray.shutdown()
            self._started = False


def make_engine(engine: str | AbstractEngine = "local", workers: int | None = None,
                address: str | None = None) -> AbstractEngine:
    """The engine called ``engine`` (``serial``, ``local`` or ``ray``), or ``engine`` itself."""
    if isinstance(engine, AbstractEngine):
        return engine
    if engine == "serial":
        return SerialEngine()
    if engine == "local":
        return LocalEngine(workers)
    if engine == "ray":
        return RayEngine(workers, address)
    raise InvalidEntityError("sweep", None, "engine", engine, "choose serial, local or ray")


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


def sweep(spec: SweepSpec, *, store: AbstractEventStore, engine: str | AbstractEngine = "local",
          workers: int | None = None, address: str | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> SweepResult:
    """Run every point of ``spec`` not yet complete in ``store``; append each finished run whole.

    Args:
        spec: the sweep.
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
    for point in points:
        if not _known(store, point.run_id):
            todo.append(point.index)
        elif store.is_complete(point.run_id):
            result.status[point.run_id] = "skipped"
        else:  # only a crash of an older writer could leave this; its events are not ours to extend
            _fail(result, book, point, "an incomplete run with this id is already in the store", 0)
    done = len(points) - len(todo)
    if progress:
        progress(done, len(points), "points")
    spec_json = spec.model_dump_json()
    runner = make_engine(engine, workers, address)
    runner.faults = os.environ.get(FAULTS_ENV)
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
                    started = time.perf_counter()
                    store.record_meta(point.run_id, RunMeta(
                        name=f"{spec.name}/p{point.index}", sweep=result.sweep_id, started_at=outcome.started_at,
                        duration_s=outcome.seconds, tags={k: json.dumps(v) if not isinstance(v, str) else v
                                                          for k, v in point.values.items()}))
                    store.append(point.run_id, list(outcome.events))
                    result.ingest_seconds += time.perf_counter() - started
                    result.eta_values += sum(r.event.eta.size for r in outcome.events if r.event.type == "EtaRecorded")
                    result.status[point.run_id] = "complete"
                    book.set(spec, point, "complete", attempts[index], None, outcome.seconds)
                done += 1
                if progress:
                    progress(done, len(points), "points")
            todo = sorted(retry)
    finally:
        runner.close()
    return result


def _known(store: AbstractEventStore, run_id: str) -> bool:
    return store.next_seq(run_id) > 0


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

    def register(self, spec: SweepSpec, points: list[Point]) -> None:
        sweep_id = spec.sweep_id()
        with self.store.transaction():
            self.store._execute("INSERT INTO sweeps SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                                "(SELECT 1 FROM sweeps WHERE sweep_id = ?)",
                                [sweep_id, spec.name, spec.digest(), spec.model_dump_json(), sweep_id])
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
                self.store._insert_arrow("sweep_points", table)
        self.sweep_id = sweep_id

    def set(self, spec: SweepSpec | None, point: Point, status: str, attempts: int, reason: str | None,
            seconds: float | None) -> None:
        self.store._execute("UPDATE sweep_points SET status = ?, attempts = ?, reason = ?, seconds = ? "
                            "WHERE sweep_id = ? AND point = ?",
                            [status, attempts, reason, seconds, self.sweep_id, point.index])


class _NoBookkeeping(_Bookkeeping):
    def register(self, spec, points):
        pass

    def set(self, spec, point, status, attempts, reason, seconds):
        pass
