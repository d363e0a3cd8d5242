"""The coordinator: one relaxation loop shared by every solver and every control.

    pieces before the step (structure, homotopy, active set) → objective changed? rebuild it,
    re-evaluate the reference → the solver proposes → pieces adjust it (noise) → accept or reject
    on the fixed objective → pieces judge it → StepCommitted → pieces observe it (record, adapt, stop)

The loop is a generator of events; whoever drives it (``relax``) records them.
The state it ends on is always the best accepted one: acceptance requires the
objective not to increase, and a rejected proposal never replaces the state.
Every control is a piece (:mod:`projectors._controls`, :mod:`projectors._observers`)
built by :func:`pieces_for` only when configured; each one that acts emits an
event (or a named entry in the step's ``diagnostics``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Generator, Iterator

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError, RelaxConfig, SnapshotConfig
from complexity_from_constraints.events import EtaRecorded, Event, RunFinished, SolverSwitched, StepCommitted
from complexity_from_constraints.events._types import finite_step, known_finite, non_finite_field

from . import _coordinate_descent, _prox, _snapshot  # noqa: F401  (the first two register their solvers)
from ._weighting import AbstractWeighting, make_weighting
from ._compile import CompiledSystem
from ._controls import (
    FreeEnergy,
    HomotopyRamp,
    NoiseInjection,
    Proposer,
    Restructure,
    StabilityGuard,
    WarmStartMask,
    WeightAdaptation,
)
from ._loop import AbstractPiece, Run, Step, Weights
from ._observers import CheckMonotone, RecordState, RecordTerms, StopAtFloor, StopEarly, WatchDiagnostics
from ._pieces import Homotopy, Noise
from ._solvers import SOLVERS, State, StepContext, make_solver

FLOOR_PATIENCE = 10  # accepted steps in a row with the objective exactly unchanged before a run is stalled


@dataclass(frozen=True)
class Outcome:
    """How a relaxation ended; ``eta`` is the returned (best accepted) state."""

    eta: np.ndarray
    energy: float
    status: str
    steps: int
    best_step: int
    ids: tuple[str, ...]


def projected_gradient_norm(backend, eta, grad) -> float:
    r""":math:`‖η - \mathrm{clip}(η - ∇𝓕, 0, 1)‖_2`: zero exactly at a box-constrained stationary point.

    On numpy the residual is built in one array, in place (four element-wise
    passes and the sum, no temporaries); the bits are those of the plain formula.

    >>> from complexity_from_constraints.projectors import NumpyBackend
    >>> projected_gradient_norm(NumpyBackend(), np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.3, -4.0]))
    0.3
    """
    if isinstance(eta, np.ndarray) and isinstance(grad, np.ndarray) and eta.dtype == grad.dtype == backend.dtype:
        r = np.subtract(eta, grad)
        r.clip(0.0, 1.0, out=r)
        np.subtract(eta, r, out=r)
        np.multiply(r, r, out=r)
        total = np.add.reduce(r, None)  # what r.sum() calls, without its Python frame
        return math.sqrt(float(total))  # both round the square root correctly: the same bits as xp.sqrt
    xp = backend.xp
    r = eta - backend.clip01(eta - grad)
    return backend.to_float(xp.sqrt(xp.sum(r * r)))


def unchanged(backend, new, old) -> bool:
    """Whether ``new`` equals ``old`` element for element; a moved state is usually told by its first value or block."""
    head = min(len(new), 1024)
    if isinstance(new, np.ndarray) and isinstance(old, np.ndarray):
        if head and new.ndim == 1 and new.shape == old.shape and new[0] != old[0]:
            return False  # the first value moved: no pass at all
        return bool((new[:head] == old[:head]).all()) and bool((new[head:] == old[head:]).all())
    xp = backend.xp
    if not bool(xp.all(new[:head] == old[:head])):
        return False
    return bool(xp.all(new[head:] == old[head:]))


def initial_eta(cs: CompiledSystem, config: RelaxConfig, seed: int) -> np.ndarray:
    """The starting state: the warm start's, measured, uniform from the seed, or given."""
    given = config.warm_start.eta0 if config.warm_start is not None else config.eta0
    field = "warm_start.eta0" if config.warm_start is not None else "eta0"
    if given == "measured":
        eta = cs.system.initial_eta()
    elif given == "uniform":
        if seed < 0:
            raise InvalidEntityError("relax", None, "seed", seed, f"must be ≥ 0: it draws {field}='uniform'")
        eta = np.random.default_rng(seed).uniform(0.0, 1.0, cs.n)
    else:
        eta = np.asarray(given, dtype=np.float64)
        if eta.shape != (cs.n,):
            raise InvalidEntityError("RelaxConfig", None, field, f"{len(eta)} values",
                                     f"needs one value per module ({cs.n})")
        if not np.all((eta >= 0) & (eta <= 1)):
            bad = int(np.flatnonzero(~((eta >= 0) & (eta <= 1)))[0])
            raise InvalidEntityError("RelaxConfig", None, f"{field}.{bad}", float(eta[bad]), "must lie in [0, 1]")
    return eta


def state_digest(eta: np.ndarray) -> str:
    """SHA-256 of η as little-endian float64: identifies a state bit for bit."""
    return hashlib.sha256(np.ascontiguousarray(eta, dtype="<f8").tobytes()).hexdigest()


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def pieces_for(cs: CompiledSystem, config: RelaxConfig, seed: int, proposer: Proposer | None = None,
               weighting: AbstractWeighting | None = None, replaying: bool = False) -> list[AbstractPiece]:
    """The loop's pieces for ``config``, in the order they act within a step; a control not configured is not built.

    Adding a control means one piece here and one field of :class:`RelaxConfig`, never an edit of the loop.
    ``replaying`` records η at every change whatever ``config.snapshots`` says (a replay reads η from it).
    """
    pieces: list[AbstractPiece] = []
    if config.warm_start is not None:
        pieces.append(WarmStartMask(config.warm_start, cs.ids))
    if config.revisions or config.expansion is not None:
        pieces.append(Restructure(config, proposer))
    if config.homotopy is not None:
        homotopy = Homotopy(config.homotopy)
        if proposer is None:  # a proposer may bring kinds and ids no one can check here
            homotopy.check(cs.system, config.expansion.candidates if config.expansion is not None else ())
        pieces.append(HomotopyRamp(homotopy))
    if config.noise is not None:
        pieces.append(NoiseInjection(Noise(config.noise, seed)))
    if config.free_energy is not None:
        pieces.append(FreeEnergy(config.free_energy.temperature, config.free_energy.epsilon))
    if config.stability is not None:
        s = config.stability
        pieces.append(StabilityGuard(s.cap_fraction, s.warn_margin, s.coupling_target))
    if config.monotone == "strict":
        pieces.append(CheckMonotone(config))
    snapshots = None if replaying or not isinstance(config.snapshots, SnapshotConfig) else config.snapshots
    pieces.append(RecordState(None if snapshots is None else snapshots.every, snapshots is not None and snapshots.previous))
    if config.diagnostics is not None:
        pieces.append(WatchDiagnostics(config.diagnostics))
    if config.record_terms_every:
        pieces.append(RecordTerms(config.record_terms_every))
    if not getattr(SOLVERS[config.solver], "inner_state", False):
        pieces.append(StopAtFloor(FLOOR_PATIENCE))
    if config.early_stop is not None:
        pieces.append(StopEarly(config.early_stop.patience, config.early_stop.delta))
    if weighting is not None or config.weighting is not None:
        pieces.append(WeightAdaptation(weighting if weighting is not None else make_weighting(config.weighting),
                                       configured=weighting is None))
    return pieces


def relaxation(cs: CompiledSystem, config: RelaxConfig, seed: int, proposer: Proposer | None = None,
               weighting: AbstractWeighting | None = None, start_step: int = 0,
               resume: tuple[dict, np.ndarray, str] | None = None, replaying: bool = False,
               until: int | None = None) -> Generator[Event, None, Outcome]:
    """Relax ``cs`` under ``config``, yielding every event; returns the :class:`Outcome`.

    Events per step, in order: revisions and expansion due at that step
    (``EntityRevised``, ``ModuleAdded``/``ExpansionRejected``), objective
    changes (``ObjectiveScaled``, ``StabilityBounded``), one
    ``StepCommitted`` (accepted or not, with the pieces' ``diagnostics``),
    ``MarginWarning`` when the contraction margin is below its threshold,
    then, when the state changed, one ``EtaRecorded``, any
    ``GateOpened``/``GateClosed`` and ``EscapeDetected``; ``TermsRecorded``
    when due; ``WeightsAdapted`` when a weighting changed the weights (in
    effect from the next step). Step 0 records the initial state (after
    ``WarmStartProposed``, ``CouplingsCapped`` and ``StabilityBounded`` when
    configured). Whenever the objective changes, the reference is
    re-evaluated under the new objective before the step's acceptance test.

    No event holds a non-finite number: when an accepted proposal, or the
    reference under a changed objective, is not finite, the step is
    recorded as rejected (``not_finite``) where it got that far, and the run
    ends ``diverged`` on its last finite state.

    ``start_step`` > 0 continues a run whose steps up to ``start_step`` are
    already in the log (a fork): the loop starts from the config's ``eta0``
    at that step, emits no step-0 events, and still stops at step ``steps``.

    Snapshot mode (``config.snapshots``): η is recorded every k steps and at
    the last step, and each k-th step ends with a ``LoopSnapshotted``.
    ``resume = (state, eta, run_id)`` goes on from such a snapshot's decoded
    state and η, yielding only the events of the steps after it;
    ``replaying`` records η at every change and no snapshot, and ``until``
    ends the loop after that step (what a replay reads).
    """
    config = config.for_modules(cs.n)
    every = config.snapshots.every if isinstance(config.snapshots, SnapshotConfig) and not replaying else None
    be, solver = cs.backend, make_solver(config, cs.backend)
    pieces = pieces_for(cs, config, seed, proposer, weighting, replaying)
    hooks = _Hooks(pieces)
    run = Run(config, cs, Weights(cs), step=start_step, start_step=start_step, best_step=start_step)
    blocked: list[str | None] = []  # whether the loop can be snapshot, known once the solver is reset
    try:
        if resume is not None:
            _snapshot.restore(run, solver, pieces, *resume)
        else:
            eta = be.asarray(initial_eta(cs, config, seed))
            yield from _each(hooks.start, run)
            run.objective = run.weights.build(cs)
            yield from _each(hooks.reframe, run)
            run.state = State.at(run.objective, eta)
            run.pg = projected_gradient_norm(be, eta, run.state.grad)
            _check_initial(run)
            solver.reset(run.objective, run.state, start_step, run.mask)
            run.host = _readonly(be.to_numpy(eta))
            initial = list(_commit(run, hooks, Step(start_step, None, True, False, run.state), "initial"))
            if start_step == 0:  # a fork's start is already in the log: its pieces observe it, nothing is yielded
                yield from initial
                if every is not None:
                    yield _snapshot.capture(run, solver, pieces, _blocked(blocked, solver, pieces))
        # While a piece holds the run (a homotopy ramping), converging or stalling on the current objective is not the end.
        last = config.steps if until is None else min(config.steps, until)
        tol, min_step_size, moves_alone = config.tol, config.min_step_size, not solver.inner_state
        propose, feedback = solver.propose, solver.feedback
        before, adjusts, holding = hooks.before, hooks.adjust, hooks.holds
        while run.step < last and run.stop is None and (
                (holding and any(holds(run) for holds in holding)) or (run.pg > tol and not run.stalled)):
            run.step, run.grew, run.before = run.step + 1, False, run.host
            if before:
                yield from _each(before, run)
            changed, reset, run.changed, run.reset = run.changed, run.changed or run.reset, False, False
            if changed:
                yield from _reframe(run, hooks)
            if reset:
                solver.reset(run.objective, run.state, run.step - 1, run.mask)
            ctx = StepContext(run.step, run.objective, run.state, run.state.value - run.slack, run.cap, run.mask)
            p = propose(ctx)
            if p.diagnostics.get("switched"):
                yield SolverSwitched(step=run.step, solver="coordinate", reason="gradient_stalled")
            for adjust in adjusts:
                p = adjust(run, ctx, p)
            accepted = p.accepted and p.value <= ctx.threshold
            pg = projected_gradient_norm(be, p.eta, p.grad) if accepted else math.nan
            diverged = accepted and not _finite(p.value, p.energy, pg)  # no state to go on from: end on the last one
            # At the floating-point floor a proposal no longer moves η, or only shrinks α: stop honestly.
            state = run.state
            still = accepted and not diverged and unchanged(be, p.eta, state.eta)
            run.stalled = stalled = (still and moves_alone) or p.step_size < min_step_size
            step = Step(run.step, p, accepted and not (stalled or diverged), stalled, state, changed, dict(p.diagnostics))
            feedback(p, step.accepted or still, state)  # not moving is no failure: α stays (it matters mid-ramp)
            if step.accepted:
                run.state, run.best_step, run.pg = p.as_state(), run.step, pg
            if step.accepted or run.grew:
                run.host = _readonly(be.to_numpy(run.state.eta))
                run.host_finite = step.accepted and not run.grew  # its projected-gradient norm is finite, so is η
            if diverged:
                run.stop = "diverged"
            yield from _commit(run, hooks, step, "not_finite" if diverged else "stalled" if stalled else p.reason)
            if every is not None and run.step % every == 0:
                yield _snapshot.capture(run, solver, pieces, _blocked(blocked, solver, pieces))
    except _NotFinite:
        run.stop = "diverged"  # an event would have held a non-finite number: the run ends on its last finite state
    if (every is not None and run.step % every and run.step > run.start_step  # the last step's η, for views and replay
            and not (config.snapshots.previous and run.step % every == every - 1)):  # unless it was recorded already
        yield EtaRecorded(step=run.step, eta=run.host)
    status = run.stop or ("converged" if run.pg <= config.tol else "stalled" if run.stalled else "max_steps")
    yield RunFinished(status=status, steps=run.step, final_energy=run.state.energy, best_step=run.best_step,
                      final_digest=state_digest(run.host))
    return Outcome(eta=run.host, energy=run.state.energy, status=status, steps=run.step, best_step=run.best_step,
                   ids=run.cs.ids)


def _blocked(known: list[str | None], solver, pieces: list[AbstractPiece]) -> str | None:
    if not known:
        known.append(_snapshot.blocked_by(solver, pieces))
    return known[0]


class _NotFinite(Exception):
    """An event held a non-finite number; the run diverged (never recorded: no event may hold one)."""


class _Hooks:
    """Per hook, the pieces' methods in piece order, leaving out every piece that inherits the do-nothing default."""

    def __init__(self, pieces: list[AbstractPiece]):
        for hook in ("start", "before", "reframe", "adjust", "judge", "after", "holds"):
            default = getattr(AbstractPiece, hook)
            methods = (getattr(piece, hook) for piece in pieces)
            setattr(self, hook, [m for m in methods if getattr(m, "__func__", None) is not default])


def _each(methods: list, run: Run, *args) -> Iterator[Event]:
    """Every event of one hook's ``methods``, in order, each checked to hold finite numbers only."""
    for method in methods:
        for event in method(run, *args):
            yield _checked(run, event)


def _checked(run: Run, event):
    if run.host_finite and isinstance(event, EtaRecorded) and event.eta is run.host:
        return known_finite(event)  # accepted: a non-finite η_i would have made its projected-gradient norm non-finite
    if non_finite_field(event) is not None:
        if run.host is None:  # nothing relaxed yet: the input itself is out of range
            raise InvalidEntityError("System", run.cs.system.id, "modules", event.type,
                                     "holds a non-finite number for this System before any step")
        raise _NotFinite(event)
    return event


def _reframe(run: Run, hooks: _Hooks) -> Iterator[Event]:
    """Rebuild the objective and re-evaluate the reference under it (a non-finite reference ends the run)."""
    run.objective = run.weights.build(run.cs)
    state = State.at(run.objective, run.state.eta)
    pg = projected_gradient_norm(run.backend, state.eta, state.grad)
    if not _finite(state.value, state.energy, pg):
        raise _NotFinite(None)  # the run keeps its last finite state, as measured under the previous objective
    run.state, run.pg = state, pg
    yield from _each(hooks.reframe, run)


_isfinite = math.isfinite


def _finite(*values: float) -> bool:
    for v in values:
        if not math.isfinite(v):
            return False
    return True


def _check_initial(run: Run) -> None:
    s = run.state
    if not _finite(s.value, s.energy, run.pg):
        raise InvalidEntityError("System", run.cs.system.id, "modules", "initial state",
                                 f"energy is not finite ({s.value}) or its projected gradient is not ({run.pg})")


def _commit(run: Run, hooks: _Hooks, step: Step, reason: str) -> Iterator[Event]:
    """The pieces' judgement of ``step``, its ``StepCommitted``, then what the pieces observe after it."""
    if hooks.judge:  # most runs have none: no generator to start
        yield from _each(hooks.judge, run, step)
    p = step.proposal
    committed = StepCommitted(step=0 if p is None else step.step, energy=run.state.energy, pg_norm=run.pg,
                              step_size=run.config.step_size if p is None else p.step_size,
                              backtracks=0 if p is None else p.backtracks, accepted=step.accepted, reason=reason,
                              trial_energy=p.energy if p is not None and _isfinite(p.energy) else None,
                              diagnostics={k: v for k, v in step.diagnostics.items() if _isfinite(v)})
    yield committed if finite_step(committed) else _checked(run, committed)
    if hooks.after:
        yield from _each(hooks.after, run, step)
