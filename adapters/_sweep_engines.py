"""Where a sweep's points run: in this process, on a process pool, or on Ray; each yields outcomes as they finish.

Workers never open the store: each relaxes its point into memory and sends the run's events back.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from complexity_from_constraints.entities import CfcError, DivergedError, InvalidEntityError
from complexity_from_constraints.events import Recorded

from ._run_rows import EncodedRun, encode_run
from ._sweep_spec import JobList, Point, SweepSpec, parse_plan

@dataclass(frozen=True)
class PointOutcome:
    """What a worker sends back: the run's events (under the point's run id), or its rows ready for a DuckDB
    store (``encoded``), or the reason it failed."""

    run_id: str
    events: tuple[Recorded, ...] = ()
    encoded: EncodedRun | None = None
    error: str | None = None
    seconds: float = 0.0
    started_at: str | None = None


@lru_cache(maxsize=2)
def _plan(spec_json: str) -> tuple[SweepSpec | JobList, list[Point]]:
    """The plan and its points, parsed once per worker process (a worker runs many points of one plan)."""
    plan = parse_plan(spec_json)
    return plan, plan.points()


def run_point(spec_json: str, index: int, faults: str | None = None, encoded: bool = False) -> PointOutcome:
    """Relax one point of a sweep or job list into memory and return its events (what every engine's workers call).

    With ``encoded`` the worker also does the store's share of the work: it compresses η and serialises the
    payloads into the rows of a DuckDB store (:func:`encode_run`), so the driver only inserts them.
    ``faults`` is the folder of :data:`FAULTS_ENV` (tests only).
    """
    from complexity_from_constraints.events import InMemoryStore
    from complexity_from_constraints.projectors import relax

    spec, points = _plan(spec_json)
    point = points[index]
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
    rows = encode_run(point.run_id, events) if encoded else None
    return PointOutcome(point.run_id, () if encoded else events, rows, seconds=time.perf_counter() - started,
                        started_at=meta.started_at if meta else None)


# -- engines -----------------------------------------------------------------------------------

class AbstractEngine:
    """Runs points somewhere and yields their outcomes as they finish (order free).

    ``run(spec_json, indices)`` yields ``(index, PointOutcome | BaseException)``;
    an exception means the worker died or could not report (the driver retries).
    """

    name: str = "abstract"

    faults: str | None = None  # set by the driver from FAULTS_ENV
    encoded: bool = False  # set by the driver: workers send store rows (a DuckDB store) rather than events

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
                yield index, run_point(spec_json, index, self.faults, self.encoded)
            except Exception as exc:  # an untyped failure inside the run: reported, not fatal to the sweep
                yield index, exc


class LocalEngine(AbstractEngine):
    """A process pool on this machine (``workers`` defaults to the number of cores)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self, spec_json: str) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            if "fork" in multiprocessing.get_all_start_methods():
                # fork: the workers start in milliseconds with the plan already parsed here (inherited), instead of
                # each importing the package and parsing the plan. Only this thread runs Python at the fork, and
                # the workers never touch the driver's store, so nothing its threads hold is used in a worker.
                _plan(spec_json)
                context, start = multiprocessing.get_context("fork"), gc.freeze
            else:  # forkserver: a clean server process that has imported the package once
                context, start = multiprocessing.get_context("forkserver"), None
                context.set_forkserver_preload([__name__, "complexity_from_constraints.projectors"])
            # gc.freeze in a forked worker: what it inherited (the plan, its System) is never traversed by its
            # collector again, so a worker's collections cost what its own runs allocate, and the inherited pages
            # are not copied by the collector writing to them.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=start)
        return self._pool

    def run(self, spec_json, indices):
        pending: dict[Future, int] = {self._executor(spec_json).submit(run_point, spec_json, i, self.faults, self.encoded): i for i in indices}
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
        pending = {self._remote.remote(spec_ref, i, self.faults, self.encoded): i for i in indices}
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
