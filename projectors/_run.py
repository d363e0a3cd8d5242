"""Driving a relaxation: record its events in batches, then fire the hooks."""

from __future__ import annotations

import functools
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from complexity_from_constraints.entities import DivergedError, InvalidEntityError, RelaxConfig, StoreTransactionError, System
from complexity_from_constraints.events import (
    AbstractEventStore,
    EtaRecorded,
    HookFailure,
    InMemoryStore,
    Recorded,
    RunMeta,
    RunStarted,
    hooks,
)

from ._backend import AbstractBackend, make_backend
from ._compile import compile_system
from ._weighting import AbstractWeighting
from ._amortizers import AbstractAmortizer
from ._coordinator import Proposer, relaxation
from ._structure import check_candidates

HookMap = Mapping[str, Callable[..., Any] | Iterable[Callable[..., Any]]]


_LABELS: ContextVar[RunMeta | None] = ContextVar("cfc_run_labels", default=None)


@contextmanager
def labelled(**fields: Any) -> Iterator[None]:
    """Label every run ``relax`` starts in this block (``study=``, ``sweep=``, ``tags=``, ``parent=``, ``name=``).

    Tools that run many relaxations (``cfc experiment``) use it, so the runs of a
    study can be found by ``WHERE study = ...`` without the study passing labels down.

    >>> from complexity_from_constraints.entities import RelaxConfig, demo_system
    >>> from complexity_from_constraints.events import InMemoryStore
    >>> store = InMemoryStore()
    >>> with labelled(study="mine", tags={"lab": "north"}):
    ...     r = relax(demo_system(0), RelaxConfig(steps=2), store=store)
    >>> store.run_meta(r.run_id).study, store.run_meta(r.run_id).tags
    ('mine', {'lab': 'north'})
    """
    token = _LABELS.set(replace(_LABELS.get() or RunMeta(), **fields))
    try:
        yield
    finally:
        _LABELS.reset(token)


def current_labels() -> RunMeta | None:
    """The labels of the innermost :func:`labelled` block (``None`` outside one); tools that record runs
    themselves (the sweep driver) apply them as ``relax`` does.

    >>> with labelled(study="mine"):
    ...     current_labels().study
    'mine'
    >>> current_labels() is None
    True
    """
    return _LABELS.get()


@functools.cache  # importlib.metadata scans sys.path at every call: tens of ms per relax
def package_version() -> str:
    """The installed version of the package (recorded in every ``RunStarted``)."""
    try:
        return metadata.version("complexity-from-constraints")
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


@dataclass(frozen=True)
class ForkPoint:
    """Where a fork leaves its parent: the parent's run id, the step, and the parent's events up to it.

    ``events`` are the parent's events after its ``RunStarted``, up to and
    including step ``step``; ``relax(..., fork_point=...)`` copies them into
    the new run's log after its own ``RunStarted`` and relaxes on from there.
    """

    parent_run_id: str
    step: int
    events: tuple = ()


@dataclass(frozen=True)
class RunResult:
    """What ``relax`` returns: the run id, how it ended and the returned state."""

    run_id: str
    status: str
    steps: int
    energy: float
    ids: tuple[str, ...]
    eta: np.ndarray = field(repr=False)
    hook_failures: tuple[HookFailure, ...] = ()

    def eta_of(self, module_id: str) -> float:
        """η of one module in the returned state."""
        return float(self.eta[self.ids.index(module_id)])

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.ids, map(float, self.eta)))


_SMALL_EVENT_BYTES = 512  # what any event but η holds while it waits to be written: a generous figure for one
# StepCommitted, gate event or revision (an EtaRecorded holds its η array)


class _Recorder:
    """Assigns seqs, buffers events, appends whole batches, then dispatches hooks.

    A batch ends on a step boundary: once ``flush_every`` steps (or
    ``flush_values`` η values, or ``8 · flush_values`` bytes) are buffered, the batch is cut when the first
    event of the *next* step arrives (an event with another ``step``), never
    between a step's ``StepCommitted``, ``EtaRecorded`` and gate events. So the
    log, after a crash or as a hook's ``replay`` sees it mid-run, is a prefix of
    whole steps.

    With ``pipelined``, batches are appended by one background thread (a
    store such as DuckDB releases the GIL while it writes, so recording
    overlaps the next steps' computation). While that writer is idle, a batch
    is cut as soon as it holds half a full one (``flush_values / 2`` η values,
    or half the byte bound): the writer starts before the first full batch,
    and the work left when the loop ends is about half a batch. While it is
    busy, batches grow to full size, so commits stay few: each costs a few ms
    in DuckDB, and a batch too small to fill its row groups goes through the
    WAL and is written again at the checkpoint (at 10⁶ modules a batch per
    frame cost 1.5 s more at close and 0.5 GiB more memory). Batches still commit one after
    another in seq order, and the hooks of a batch fire in this thread only
    after its commit; if an append fails, the store's seq check refuses every
    later batch, so the log keeps a gap-free prefix.

    The queue to the writer is bounded by bytes: batches handed over but not
    yet committed hold at most ``queue_bytes`` (η arrays at their size, other
    events at a fixed 512 bytes), except that one batch is always let through.
    A loop that computes faster than the store writes waits for the oldest
    batch to commit (back-pressure), so memory stays bounded whatever the run's
    length. ``pending_bytes`` and ``peak_pending_bytes`` say how full it is.

    Raises:
        StoreTransactionError: the calling thread holds the store's open
            ``transaction()``: the run would wait for ever on its own lock
            (pipelined), or announce through hooks events that a rollback then
            takes back. Refused before anything is written; the reserved run id
            is given back.
    """

    def __init__(self, store: AbstractEventStore, run_id: str, flush_every: int, flush_values: int, pipelined: bool,
                 queue_bytes: int = 1 << 26):
        if store.in_transaction():
            store.release_run_id(run_id)
            raise StoreTransactionError(
                f"relax cannot record into {getattr(store, 'path', 'the store')} inside its open transaction(); "
                f"run it outside the `with store.transaction():` block", getattr(store, "path", None))
        self.store, self.run_id = store, run_id
        self.flush_every, self.flush_values, self.queue_bytes = flush_every, flush_values, queue_bytes
        self.seq = store.next_seq(run_id)
        self.buffer: list[Recorded] = []
        self.steps = self.values = self.bytes = 0
        self.due = False  # the buffer is full: cut it at the next step boundary
        self.step: int | None = None  # the step of the last buffered event that has one
        self.failures: list[HookFailure] = []
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfc-writer") if pipelined else None
        self.pending: deque[tuple[Future[None], list[Recorded], int]] = deque()
        self.pending_bytes = self.peak_pending_bytes = 0

    def add(self, event) -> None:
        step = getattr(event, "step", None)
        if step is not None:
            if self.due and self.step is not None and step != self.step:
                self.flush()  # the previous step is whole: this event opens the next one
            self.step = step
        self.buffer.append(Recorded(self.run_id, self.seq, event))
        self.seq += 1
        if isinstance(event, EtaRecorded):
            self.steps += 1
            self.values += event.eta.size
            self.bytes += event.eta.nbytes
        else:
            self.bytes += _SMALL_EVENT_BYTES
        # η values and bytes bound a batch alike: runs without η frames (or with few) cut by bytes too
        self.due = (self.steps >= self.flush_every or self.values >= self.flush_values
                    or self.bytes >= 8 * self.flush_values
                    or (self.pool is not None and (2 * self.values >= self.flush_values  # half a full batch
                                                   or self.bytes >= 4 * self.flush_values)
                        and (not self.pending or self.pending[-1][0].done())))

    def flush(self, wait: bool = False) -> None:
        batch, size, self.buffer = self.buffer, self.bytes, []
        self.steps = self.values = self.bytes = 0
        self.due = False
        if batch:
            if self.pool is None:
                self.store.append(self.run_id, batch)
                self.failures.extend(hooks.dispatch(batch))
            else:
                while self.pending and self.pending_bytes + size > self.queue_bytes:
                    self._commit_oldest()  # back-pressure: the writer is behind by a full queue
                self.pending.append((self.pool.submit(self.store.append, self.run_id, batch), batch, size))
                self.pending_bytes += size
                self.peak_pending_bytes = max(self.peak_pending_bytes, self.pending_bytes)
        while self.pending and (wait or self.pending[0][0].done()):
            self._commit_oldest()

    def _commit_oldest(self) -> None:
        future, committed, size = self.pending.popleft()
        self.pending_bytes -= size
        future.result()  # waits; re-raises a failed append here, in the caller's thread
        self.failures.extend(hooks.dispatch(committed))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.store.release_run_id(self.run_id)  # a no-op once the run is registered


def relax(
    system: System,
    config: RelaxConfig | None = None,
    *,
    seed: int = 0,
    store: AbstractEventStore | None = None,
    hooks: HookMap | None = None,
    backend: AbstractBackend | None = None,
    flush_every: int = 256,
    flush_values: int = 1 << 22,
    pipelined: bool = True,
    queue_bytes: int = 1 << 26,
    proposer: Proposer | None = None,
    weighting: AbstractWeighting | None = None,
    amortizer: AbstractAmortizer | None = None,
    fork_point: ForkPoint | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    meta: RunMeta | None = None,
) -> RunResult:
    """Relax ``system`` and record every event of the run in ``store``.

    Events are appended in atomic batches of up to ``flush_every`` steps (or
    ``flush_values`` recorded η values, or ``8 · flush_values`` bytes), by a
    background writer (unless ``pipelined=False``) that gets a batch early, at
    half that size, whenever it is idle; batches waiting for that
    writer hold at most ``queue_bytes`` (one batch always passes), and the loop
    waits for the writer when they would hold more, so memory stays bounded.
    After each batch is committed, the hook signals fire
    for its events, in order, in the calling thread. ``hooks`` connects extra
    receivers for this run only, e.g. ``{"gate_opened": fn}``.

    Args:
        system: the System to relax.
        config: how to relax it (default :class:`RelaxConfig()`).
        seed: the run's seed (used by ``eta0="uniform"`` and stochastic pieces).
        store: where to record; default a fresh :class:`InMemoryStore`.
        hooks: receivers for this run, keyed by signal name.
        backend: an array backend object; default: built by name from the
            config, ``make_backend(config.backend, device=config.device,
            dtype=config.dtype)`` (numpy, float64 unless configured). An
            object passed here is not recorded: the log keeps the config's
            fields, and a re-run builds its backend from them.
        proposer: ``fn(step, ids, eta) -> Candidate | None`` offering expansion
            candidates instead of ``config.expansion.candidates`` (needs
            ``config.expansion`` for its schedule and τ). Code is not recorded
            in the log: re-running such a run needs the same proposer.
        weighting: a term-weighting object (see :class:`AbstractWeighting`)
            used instead of ``config.weighting``; its name and every weight it
            sets are recorded, its code is not.
        amortizer: proposes the starting state and an active set before the
            run (see :class:`AbstractAmortizer`); the proposal is written into
            the recorded config's ``warm_start``, so a re-run repeats it
            exactly without the amortizer.
        fork_point: continue another run from one of its steps (see
            :class:`ForkPoint`; ``projectors.fork`` builds it): ``config.eta0``
            must hold the parent's η at that step and ``system`` its System
            there.
        name: what people call the run (default ``<system id>-<solver>-s<seed>-<ordinal>``);
            ``cfc`` commands accept it wherever they take a run.
        tags: ``key=value`` labels to find the run by (``cfc runs --tag k=v``).
        meta: the rest of the run's metadata (study, sweep, parent), for tools that
            start runs. Metadata, the start time and the duration are kept beside
            the log, never in it: replay, re-run and diff ignore them.

    Returns:
        A :class:`RunResult` with the run id and the returned (best accepted) state.

    Raises:
        DivergedError: after the run is committed, when its energy, gradient
            or η stopped being finite (its ``RunFinished`` says ``diverged``).

    >>> from complexity_from_constraints.entities import System, LandauModule, RelaxConfig
    >>> s = System(id="one", modules=[LandauModule(id="m", a=-1.0, b=1.0)])
    >>> r = relax(s, RelaxConfig(steps=500, step_size=0.1))
    >>> (r.status, round(r.eta_of("m"), 4))   # η* = sqrt(-a / 2b)
    ('converged', 0.7071)
    """
    config = config or RelaxConfig()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:  # one rule for every seed
        raise InvalidEntityError("relax", None, "seed", seed, "a seed is an integer ≥ 0 (it seeds numpy's generators)")
    if amortizer is not None:
        proposal = amortizer.propose(system, config, seed)
        config = RelaxConfig.model_validate(config.model_dump() | {"warm_start": proposal.model_dump()})
    if config.expansion is not None:
        check_candidates(system, config.expansion.candidates)
    if proposer is not None and config.expansion is None:
        raise InvalidEntityError("RelaxConfig", None, "expansion", None, "a proposer needs an expansion schedule")
    store = store if store is not None else InMemoryStore()
    config = config.for_modules(len(system.module_ids))  # "auto" recording resolved and recorded, so a re-run repeats it
    started = RunStarted(system=system, config=config, seed=seed, package_version=package_version(),
                         system_digest=system.digest(),
                         parent_run_id=fork_point.parent_run_id if fork_point is not None else None,
                         parent_step=fork_point.step if fork_point is not None else None)
    if backend is None:
        backend = make_backend(config.backend, device=config.device, dtype=config.dtype)
    compiled = compile_system(system, backend)
    loop = relaxation(compiled, config, seed, proposer, weighting,
                      start_step=fork_point.step if fork_point is not None else 0)
    opening = _opening(loop)  # bad input (solver, pieces, seed, initial state) raises here, before anything is recorded
    run_id = store.new_run_id(started)
    meta = meta or _LABELS.get()
    meta = replace(meta or RunMeta(), started_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                   name=name or (meta.name if meta else None) or _default_name(system, config, seed, run_id),
                   tags={**(meta.tags if meta else {}), **(tags or {})},
                   parent=(meta.parent if meta else None) or (fork_point.parent_run_id if fork_point else None))
    clock = time.perf_counter()
    recorder = _Recorder(store, run_id, max(1, flush_every), max(1, flush_values), pipelined, max(1, queue_bytes))
    connected = _connect(hooks or {}, run_id)
    try:
        store.record_meta(run_id, meta)  # beside the log, so it may come first
        recorder.add(started)
        recorder.flush()  # register the run now, so a pipelined writer stores the System while we relax
        for event in (*(fork_point.events if fork_point is not None else ()), *opening):
            recorder.add(event)
        try:
            while True:
                recorder.add(next(loop))
        except StopIteration as stop:
            outcome = stop.value
        recorder.flush(wait=True)
        store.record_meta(run_id, replace(meta, duration_s=time.perf_counter() - clock))
    except BaseException:
        try:  # keep every whole event produced before the failure; the run stays incomplete
            recorder.flush(wait=True)
        except Exception:
            pass
        raise
    finally:
        recorder.close()
        for sig, fn in connected:
            sig.disconnect(fn)
    if outcome.status == "diverged":  # recorded and committed first, so the log shows how it ended
        raise DivergedError(run_id, outcome.steps, outcome.energy)
    return RunResult(run_id, outcome.status, outcome.steps, outcome.energy, outcome.ids, outcome.eta,
                     tuple(recorder.failures))


def _opening(loop) -> list:
    """The loop's events up to its first ``StepCommitted`` (or its end): everything it checks on its input happens by then."""
    events: list = []
    while not events or events[-1].type not in ("StepCommitted", "RunFinished"):
        try:
            events.append(next(loop))
        except StopIteration:  # pragma: no cover - the loop always ends with RunFinished, drawn above
            break
    return events


def _default_name(system: System, config: RelaxConfig, seed: int, run_id: str) -> str:
    return f"{system.id}-{config.solver}-s{seed}-{run_id.rsplit('-', 1)[-1]}"


def _connect(hook_map: HookMap, run_id: str):
    connected = []
    for name, fns in hook_map.items():
        sig = hooks.get(name)
        for fn in ([fns] if callable(fns) else list(fns)):
            only = hooks.for_run(run_id, fn)
            sig.connect(only)
            connected.append((sig, only))
    return connected
