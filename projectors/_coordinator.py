"""The coordinator: one relaxation loop shared by every solver.

    read state → (structure, homotopy, weights changed? re-evaluate the reference)
               → the solver proposes → noise → accept or reject on the fixed objective
               → emit events → apply them → adapt weights

The loop is a generator of events; whoever drives it (``relax``) records them.
The state it ends on is always the best accepted one: acceptance requires the
objective not to increase, and a rejected proposal never replaces the state.
Every piece of the loop is off unless configured, and each one that acts
emits an event (or a named entry in the step's ``diagnostics``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np

from complexity_from_constraints.entities import Candidate, InvalidEntityError, MonotonicityError, RelaxConfig
from complexity_from_constraints.events import (
    CouplingsCapped,
    EntityRevised,
    EscapeDetected,
    EtaRecorded,
    Event,
    ExpansionRejected,
    GateClosed,
    GateOpened,
    HomotopyBackedOff,
    MarginWarning,
    ModuleAdded,
    ObjectiveScaled,
    RunFinished,
    SolverSwitched,
    StabilityBounded,
    StepCommitted,
    TermsRecorded,
    WarmStartProposed,
    WeightsAdapted,
)

from . import _coordinate_descent, _prox  # noqa: F401  (they register their solvers)
from ._adapters import AbstractWeightAdapter, AdaptContext, make_adapter
from ._compile import CompiledSystem, energy_and_gradient
from ._objective import (
    Objective,
    configured_weights,
    coupling_cap_scale,
    coupling_kinds_of,
    lipschitz_rows,
    step_cap,
    term_breakdown,
)
from ._pieces import Homotopy, Noise, Watch
from ._solvers import Proposal, State, StepContext, make_solver
from ._structure import evaluate_candidate, revise

Proposer = Callable[[int, tuple[str, ...], np.ndarray], "Candidate | None"]


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
    r""":math:`‖η - \mathrm{clip}(η - ∇𝓕, 0, 1)‖_2`: zero exactly at a box-constrained stationary point."""
    xp = backend.xp
    r = eta - backend.clip01(eta - grad)
    return backend.to_float(xp.sqrt(xp.sum(r * r)))


def initial_eta(cs: CompiledSystem, config: RelaxConfig, seed: int) -> np.ndarray:
    """The starting state: the warm start's, measured, uniform from the seed, or given."""
    given = config.warm_start.eta0 if config.warm_start is not None else config.eta0
    field = "warm_start.eta0" if config.warm_start is not None else "eta0"
    if given == "measured":
        eta = np.array([m.initial_eta() for m in cs.system.modules], dtype=np.float64)
    elif given == "uniform":
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


def _gate_events(cs: CompiledSystem, eta: np.ndarray, was_open: np.ndarray, step: int) -> tuple[list[Event], np.ndarray]:
    values = eta[cs.gate_index]
    now_open = values >= cs.gate_threshold
    events: list[Event] = []
    for k in np.flatnonzero(now_open != was_open):
        cls = GateOpened if now_open[k] else GateClosed
        events.append(cls(gate_id=cs.gate_ids[k], step=step, eta=float(values[k])))
    return events, now_open


def _structural_changes(cs: CompiledSystem, config: RelaxConfig, step: int, eta, energy: float,
                        offers, proposer: Proposer | None):
    """Apply the revisions and the expansion offer due at ``step``; yields events, returns the new state."""
    events: list[Event] = []
    for rev in config.revisions:
        if rev.step == step:
            cs, entity = revise(cs, rev.entity_id, rev.changes)
            events.append(EntityRevised(step=step, entity_id=rev.entity_id, version=entity.version,
                                        changes=rev.changes, entity=entity.model_dump(mode="json")))
    grew = False
    exp = config.expansion
    if exp is not None and step % exp.every == 0:
        host = cs.backend.to_numpy(eta)
        candidate = proposer(step, cs.ids, host) if proposer is not None else next(offers, None)
        if candidate is not None:
            if events:  # a revision this step changed the objective: ΔF is measured against the new one
                energy = energy_and_gradient(cs, eta)[0]
            ev = evaluate_candidate(cs, eta, energy, candidate, exp)
            if ev.admitted(exp.tau):
                cs, eta, grew = ev.compiled, ev.eta, True
                events.append(ModuleAdded(step=step, module=candidate.module.model_dump(mode="json"),
                                          couplings=[c.model_dump(mode="json") for c in candidate.couplings],
                                          delta_f=ev.delta_f, tau=exp.tau, eta=float(cs.backend.to_numpy(eta)[-1]),
                                          parent_id=ev.parent_id))
            else:
                events.append(ExpansionRejected(step=step, module_id=candidate.module.id, delta_f=ev.delta_f, tau=exp.tau))
    return cs, eta, events, grew


class _Weights:
    """The per-kind term weights, the homotopy scales and the coupling cap, folded into one :class:`Objective`."""

    def __init__(self, cs: CompiledSystem, config: RelaxConfig):
        self.configured = configured_weights(cs)
        self.weights = dict(self.configured)
        self.cap = 1.0
        self.ramp: dict[str, float] = {}
        self.temperature = config.free_energy.temperature if config.free_energy is not None else None
        self.objective = self.build(cs)

    def build(self, cs: CompiledSystem) -> Objective:
        for k, w in configured_weights(cs).items():  # kinds that arrived by expansion start as configured
            self.configured.setdefault(k, w)
            self.weights.setdefault(k, w)
        couplings = coupling_kinds_of(cs)
        kinds, entities = Homotopy.split(self.ramp, couplings)
        multipliers = {}
        for k, w0 in self.configured.items():
            m = (self.weights[k] / w0 if w0 > 0 else 1.0) * kinds.get(k, 1.0) * (self.cap if k in couplings else 1.0)
            if m != 1.0:
                multipliers[k] = m
        self.objective = Objective(cs, multipliers, entities, self.temperature)
        return self.objective


def relaxation(cs: CompiledSystem, config: RelaxConfig, seed: int, proposer: Proposer | None = None,
               adapter: AbstractWeightAdapter | None = None, start_step: int = 0) -> Generator[Event, None, Outcome]:
    """Relax ``cs`` under ``config``, yielding every event; returns the :class:`Outcome`.

    Events per step, in order: revisions and expansion due at that step
    (``EntityRevised``, ``ModuleAdded``/``ExpansionRejected``), objective
    changes (``ObjectiveScaled``, ``StabilityBounded``), one
    ``StepCommitted`` (accepted or not, with the pieces' ``diagnostics``),
    ``MarginWarning`` when the contraction margin is below its threshold,
    then, when the state changed, one ``EtaRecorded``, any
    ``GateOpened``/``GateClosed`` and ``EscapeDetected``; ``TermsRecorded``
    when due; ``WeightsAdapted`` when an adapter changed the weights (in
    effect from the next step). Step 0 records the initial state (after
    ``WarmStartProposed``, ``CouplingsCapped`` and ``StabilityBounded`` when
    configured). Whenever the objective changes, the reference is
    re-evaluated under the new objective before the step's acceptance test.

    ``start_step`` > 0 continues a run whose steps up to ``start_step`` are
    already in the log (a fork): the loop starts from the config's ``eta0``
    at that step, emits no step-0 events, and still stops at step ``steps``.
    """
    be = cs.backend
    solver = make_solver(config, be)
    adapter = adapter if adapter is not None else make_adapter(config.adapter) if config.adapter is not None else None
    homotopy = Homotopy(config.homotopy) if config.homotopy is not None else None
    if homotopy is not None and proposer is None:  # a proposer may bring kinds and ids no one can check here
        homotopy.check(cs.system, config.expansion.candidates if config.expansion is not None else ())
    noise = Noise(config.noise, seed) if config.noise is not None else None
    eps = config.free_energy.epsilon if config.free_energy is not None else 0.0
    ws = config.warm_start
    active_steps = ws.active_steps if ws is not None and ws.active else 0
    mask = None
    if active_steps:
        unknown = sorted(set(ws.active) - set(cs.ids))
        if unknown:
            raise InvalidEntityError("RelaxConfig", None, "warm_start.active", unknown[0], "is not a module of the System")
        host_mask = np.zeros(cs.n)
        host_mask[[cs.index_of(i) for i in ws.active]] = 1.0
        mask = be.asarray(host_mask)

    weights = _Weights(cs, config)
    if homotopy is not None:
        weights.ramp = homotopy.scales(start_step)
    eta = be.asarray(initial_eta(cs, config, seed))
    if ws is not None:
        yield WarmStartProposed(source=ws.source, signature=ws.signature, active=list(ws.active),
                                active_steps=ws.active_steps, confidence=ws.confidence)

    def bound(step: int) -> Generator[Event, None, float]:
        """The stability guard's step cap under the current objective (``inf`` without a guard)."""
        if config.stability is None:
            return math.inf
        rows = lipschitz_rows(weights.objective.cs)
        cap = step_cap(rows.lipschitz, config.stability.cap_fraction)
        nonlocal lipschitz
        lipschitz = rows.lipschitz
        yield StabilityBounded(step=step, lipschitz=rows.lipschitz, step_cap=cap)
        return cap

    lipschitz = math.nan
    objective = weights.build(cs)
    if config.stability is not None and config.stability.coupling_target is not None:
        full = weights.ramp
        weights.ramp = {}  # cap the full-strength objective, not the ramp's start
        rows = lipschitz_rows(weights.build(cs).cs)
        weights.cap = coupling_cap_scale(rows, coupling_kinds_of(cs), config.stability.coupling_target)
        weights.ramp = full
        if weights.cap < 1.0:
            after = lipschitz_rows(weights.build(cs).cs).lipschitz
            yield CouplingsCapped(step=start_step, scale=weights.cap, target=config.stability.coupling_target,
                                  lipschitz_before=rows.lipschitz, lipschitz_after=after)
        objective = weights.build(cs)
    cap = yield from bound(start_step)

    state = State.at(objective, eta)
    if not math.isfinite(state.value):
        raise InvalidEntityError("System", cs.system.id, "modules", "initial state", f"energy is not finite ({state.value})")
    solver.reset(objective, state, start_step, mask)
    pg = projected_gradient_norm(be, state.eta, state.grad)
    host = _readonly(be.to_numpy(state.eta))
    gate_events, gates_open = _gate_events(cs, host, np.zeros(len(cs.gate_ids), bool), start_step)
    if start_step == 0:
        diag0 = {"free_energy": state.value} if weights.temperature is not None else {}
        yield StepCommitted(step=0, energy=state.energy, pg_norm=pg, step_size=config.step_size, backtracks=0,
                            accepted=True, reason="initial", diagnostics=diag0)
        yield EtaRecorded(step=0, eta=host)
        yield from gate_events
        if config.record_terms_every:
            yield _terms(objective, state.eta, 0)

    watch = Watch(config.diagnostics, state.energy) if config.diagnostics is not None else None
    if watch is not None:
        watch.observe(host, state.energy)
    energies = [state.energy]
    pending_weights = False
    accepted_count = calm = 0
    last_backtracks, drop_ratio = 0, 0.0
    step, best_step, stalled, early = start_step, start_step, False, False
    offers = iter(config.expansion.candidates if config.expansion is not None else ())
    # While a homotopy ramps the objective is still changing: converging or stalling on it is not the end.
    while step < config.steps and not early and (
            (homotopy is not None and homotopy.ramping(step)) or (pg > config.tol and not stalled)):
        step += 1
        changed_objective = pending_weights
        pending_weights = False
        grew = False
        if config.revisions or config.expansion is not None:
            cs, eta_new, changes, grew = _structural_changes(cs, config, step, state.eta, state.energy, offers, proposer)
            yield from changes
            if changes:
                state = State(eta_new, state.value, state.grad, state.energy)
                changed_objective = True
                if grew:
                    gates_open = np.append(gates_open, np.zeros(len(cs.gate_ids) - len(gates_open), bool))
                    if mask is not None:
                        mask = be.asarray(np.append(be.to_numpy(mask), np.ones(cs.n - len(mask))))
        if homotopy is not None and (homotopy.ramping(step - 1) or changed_objective):
            scales = homotopy.scales(step)
            if scales != weights.ramp:
                weights.ramp = scales
                changed_objective = True
                yield ObjectiveScaled(step=step, scales=scales)
        mask_ends = mask is not None and step == active_steps + 1
        if mask_ends:
            mask = None
        if changed_objective:
            objective = weights.build(cs)
            state = State.at(objective, state.eta)  # the reference under the new objective
            cap = yield from bound(step)
        if changed_objective or mask_ends:
            solver.reset(objective, state, step - 1, mask)

        ctx = StepContext(step, objective, state, state.value - eps, cap, mask)
        p = solver.propose(ctx)
        if p.diagnostics.get("switched"):
            yield SolverSwitched(step=step, solver="coordinate", reason="gradient_stalled")
        noise_norm = 0.0
        if noise is not None:
            p, noise_norm = _add_noise(noise, step, objective, state, p, ctx, last_backtracks, drop_ratio)
        accepted = p.accepted and p.value <= ctx.threshold
        # At the floating-point floor a proposal no longer moves η, or only shrinks α: stop honestly.
        still = accepted and bool(be.xp.all(p.eta == state.eta))
        stalled = (still and not solver.inner_state) or p.step_size < config.min_step_size
        accepted = accepted and not stalled
        if accepted and config.monotone == "strict" and p.energy > state.energy + 1e-12 * max(1.0, abs(state.energy)):
            raise MonotonicityError(
                f"step {step}: the accepted proposal ({p.reason}, solver {config.solver!r}) raised the energy U "
                f"from {state.energy!r} to {p.energy!r}"
                + (f" while lowering U − T·S to {p.value!r}" if weights.temperature is not None else ""))
        solver.feedback(p, accepted or still, state)  # not moving is no failure: α stays (it matters mid-ramp)
        previous = state
        diagnostics = dict(p.diagnostics)
        if accepted:
            state = p.as_state()
            pg = projected_gradient_norm(be, state.eta, state.grad)
            best_step = step
            drop_ratio = max(previous.energy - state.energy, 0.0) / max(abs(previous.energy), 1e-12)
        elif homotopy is not None and not stalled and homotopy.ramping(step) and homotopy.rejected():
            yield HomotopyBackedOff(step=step, starts=dict(homotopy.starts))
        elif changed_objective:
            pg = projected_gradient_norm(be, state.eta, state.grad)
        last_backtracks = p.backtracks
        if noise is not None:
            diagnostics["noise"] = noise_norm
        if weights.temperature is not None:
            diagnostics["free_energy"] = state.value
        if config.stability is not None:
            diagnostics["margin"] = (2 / lipschitz if lipschitz > 0 else math.inf) - p.step_size
        host = _readonly(be.to_numpy(state.eta)) if accepted or grew else host
        if watch is not None and accepted:
            diagnostics.update(watch.observe(host, state.energy))
        yield StepCommitted(step=step, energy=state.energy, pg_norm=pg, step_size=p.step_size, backtracks=p.backtracks,
                            accepted=accepted, reason="stalled" if stalled else p.reason,
                            trial_energy=p.energy if math.isfinite(p.energy) else None,
                            diagnostics={k: v for k, v in diagnostics.items() if math.isfinite(v)})
        warn = config.stability.warn_margin if config.stability is not None else None
        if warn is not None and diagnostics["margin"] < warn:
            yield MarginWarning(step=step, margin=diagnostics["margin"], threshold=warn, lipschitz=lipschitz,
                                step_size=p.step_size)
        if accepted or grew:
            yield EtaRecorded(step=step, eta=host)
            if len(cs.gate_ids):
                gate_events, gates_open = _gate_events(cs, host, gates_open, step)
                yield from gate_events
        if accepted and watch is not None:
            escape = watch.escape(noise_norm, previous, state, be)
            if escape is not None:
                yield EscapeDetected(step=step, **escape)
        if config.record_terms_every and step % config.record_terms_every == 0:
            yield _terms(objective, state.eta, step)
        if not accepted:
            continue
        accepted_count += 1
        energies.append(state.energy)
        if config.early_stop is not None:
            calm = calm + 1 if abs(previous.energy - state.energy) < config.early_stop.delta else 0
            early = calm >= config.early_stop.patience
        if adapter is not None and accepted_count % adapter.every == 0:
            event = _adapt(adapter, weights, objective, state, step, energies, p.step_size, cs)
            if event is not None:
                pending_weights = True
                yield event

    if early:
        status = "early_stopped"
    else:
        status = "converged" if pg <= config.tol else "stalled" if stalled else "max_steps"
    yield RunFinished(status=status, steps=step, final_energy=state.energy, best_step=best_step,
                      final_digest=state_digest(host))
    return Outcome(eta=host, energy=state.energy, status=status, steps=step, best_step=best_step, ids=cs.ids)


def _terms(objective: Objective, eta, step: int) -> TermsRecorded:
    energies, norms = term_breakdown(objective.cs, eta)
    return TermsRecorded(step=step, energy=energies, grad_norm=norms)


def _add_noise(noise: Noise, step: int, objective: Objective, state: State, p: Proposal, ctx: StepContext,
               backtracks: int, drop_ratio: float) -> tuple[Proposal, float]:
    """Add gradient-orthogonal noise to an accepted proposal; keep it only if the objective does not rise."""
    be = objective.backend
    grad = be.to_numpy(state.grad)
    m = noise.magnitude(step, grad, backtracks, drop_ratio)
    curvature = be.to_numpy(objective.hessian_diagonal(state.eta)) if noise.config.mode == "metric" else None
    z = noise.vector(m, grad, curvature, None if ctx.mask is None else be.to_numpy(ctx.mask))
    if z is None or not p.accepted:
        return p, 0.0
    noisy = be.clip01(p.eta + be.asarray(z))
    ev = objective.evaluate(noisy)
    if ev.value <= ctx.threshold:
        moved = be.to_numpy(noisy) - be.to_numpy(p.eta)
        return Proposal.of(noisy, ev, p.step_size, p.backtracks, True, p.reason, p.diagnostics), float(np.linalg.norm(moved))
    return p, 0.0


def _adapt(adapter: AbstractWeightAdapter, weights: _Weights, objective: Objective, state: State, step: int,
           energies: list[float], step_size: float, cs: CompiledSystem) -> WeightsAdapted | None:
    _, norms = term_breakdown(objective.cs, state.eta)
    ctx = AdaptContext(step=step, weights=dict(weights.weights), configured=dict(weights.configured), grad_norms=norms,
                       energies=tuple(energies), step_size=step_size, coupling_kinds=coupling_kinds_of(cs),
                       rows=lambda: lipschitz_rows(objective.cs))
    proposed = adapter.adapt(ctx)
    if not proposed:
        return None
    unknown = sorted(set(proposed) - set(weights.weights))
    if unknown:
        raise InvalidEntityError(type(adapter).__name__, None, "weights", unknown[0], "is not a kind of this System")
    bad = [(k, v) for k, v in proposed.items() if not (math.isfinite(v) and v >= 0)]
    if bad:
        raise InvalidEntityError(type(adapter).__name__, None, f"weights.{bad[0][0]}", bad[0][1], "must be finite and ≥ 0")
    # A kind configured at weight 0 is compiled out: no multiplier brings it back, so it stays 0 (and the log says so).
    new = weights.weights | {k: float(v) for k, v in proposed.items() if weights.configured[k] > 0}
    if new == weights.weights:
        return None
    previous, weights.weights = weights.weights, new
    details = {k: float(v) for k, v in getattr(adapter, "details", {}).items() if math.isfinite(v)}
    return WeightsAdapted(step=step, adapter=adapter.name, weights=new, previous=previous, details=details)
