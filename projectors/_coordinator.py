"""The coordinator: one relaxation loop shared by every way of proposing a step.

    read state → propose a step → accept or reject on the fixed objective
               → emit events → apply them

The loop is a generator of events; whoever drives it (``relax``) records them.
The state it ends on is always the best accepted one: acceptance requires
the energy not to increase, and a rejected proposal never replaces the state.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np

from entities import Candidate, InvalidEntityError, RelaxConfig
from events import (
    EntityRevised,
    EtaRecorded,
    Event,
    ExpansionRejected,
    GateClosed,
    GateOpened,
    ModuleAdded,
    RunFinished,
    StepCommitted,
)

from ._compile import CompiledSystem, energy_and_gradient
from ._structure import evaluate_candidate, revise

Proposer = Callable[[int, tuple[str, ...], np.ndarray], "Candidate | None"]


@dataclass(frozen=True)
class Proposal:
    """What one step proposes and whether the acceptance rule took it."""

    eta: Any
    energy: float
    grad: Any
    step_size: float
    backtracks: int
    accepted: bool
    reason: str


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


def step_fixed(cs: CompiledSystem, eta, energy: float, grad, alpha: float, config: RelaxConfig) -> Proposal:
    """η' = clip(η − α∇𝓕); accepted iff 𝓕(η') ≤ 𝓕(η), else rejected and α halves."""
    trial = cs.backend.clip01(eta - alpha * grad)
    e_trial, g_trial = energy_and_gradient(cs, trial)
    if e_trial <= energy:
        return Proposal(trial, e_trial, g_trial, alpha, 0, True, "decrease")
    reason = "energy_increase" if math.isfinite(e_trial) else "not_finite"
    return Proposal(trial, e_trial, g_trial, alpha, 0, False, reason)


def step_armijo(cs: CompiledSystem, eta, energy: float, grad, alpha: float, config: RelaxConfig) -> Proposal:
    r"""Projected Armijo backtracking.

    Tries :math:`η'(s) = \mathrm{clip}(η - s∇𝓕)` for :math:`s = α, βα, β^2α, …`
    and accepts the first with :math:`𝓕(η') ≤ 𝓕(η) - c⟨∇𝓕(η), η - η'⟩`. The
    inner product is the decrease the projected step predicts (it is ≥ 0). If
    ``max_backtracks`` reductions all fail, the step is rejected: no failed
    step is ever taken.
    """
    xp, be = cs.backend.xp, cs.backend
    s = alpha
    for k in range(config.max_backtracks + 1):
        trial = be.clip01(eta - s * grad)
        predicted = be.to_float(xp.sum(grad * (eta - trial)))
        e_trial, g_trial = energy_and_gradient(cs, trial)
        if e_trial <= energy - config.armijo_c * predicted:
            return Proposal(trial, e_trial, g_trial, s, k, True, "armijo")
        if k < config.max_backtracks:
            s *= config.backtrack_factor
    return Proposal(trial, e_trial, g_trial, s, config.max_backtracks, False, "armijo_failed")


STEP_RULES: dict[str, Callable[..., Proposal]] = {"none": step_fixed, "armijo": step_armijo}


def initial_eta(cs: CompiledSystem, config: RelaxConfig, seed: int) -> np.ndarray:
    """The starting state: measured, uniform from the seed, or given."""
    if config.eta0 == "measured":
        eta = np.array([m.initial_eta() for m in cs.system.modules], dtype=np.float64)
    elif config.eta0 == "uniform":
        eta = np.random.default_rng(seed).uniform(0.0, 1.0, cs.n)
    else:
        eta = np.asarray(config.eta0, dtype=np.float64)
        if eta.shape != (cs.n,):
            raise InvalidEntityError("RelaxConfig", None, "eta0", f"{len(eta)} values",
                                     f"needs one value per module ({cs.n})")
        if not np.all((eta >= 0) & (eta <= 1)):
            bad = int(np.flatnonzero(~((eta >= 0) & (eta <= 1)))[0])
            raise InvalidEntityError("RelaxConfig", None, f"eta0.{bad}", float(eta[bad]), "must lie in [0, 1]")
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


def relaxation(cs: CompiledSystem, config: RelaxConfig, seed: int,
               proposer: Proposer | None = None) -> Generator[Event, None, Outcome]:
    """Relax ``cs`` under ``config``, yielding every event; returns the :class:`Outcome`.

    Events per step: revisions and expansion due at that step
    (``EntityRevised``, ``ModuleAdded``/``ExpansionRejected``), one
    ``StepCommitted`` (accepted or not), then, when the state changed, one
    ``EtaRecorded`` and any ``GateOpened``/``GateClosed``. Step 0 records the
    initial state; gates open at step 0 emit ``GateOpened``. Whenever the
    objective changes, the reference energy is re-evaluated under the new
    objective before the step's acceptance test.
    """
    be = cs.backend
    rule = STEP_RULES[config.line_search]
    eta = be.asarray(initial_eta(cs, config, seed))
    energy, grad = energy_and_gradient(cs, eta)
    if not math.isfinite(energy):
        raise InvalidEntityError("System", cs.system.id, "modules", "initial state", f"energy is not finite ({energy})")
    pg = projected_gradient_norm(be, eta, grad)
    alpha = config.step_size
    yield StepCommitted(step=0, energy=energy, pg_norm=pg, step_size=alpha, backtracks=0, accepted=True, reason="initial")
    host = _readonly(be.to_numpy(eta))
    yield EtaRecorded(step=0, eta=host)
    gate_events, gates_open = _gate_events(cs, host, np.zeros(len(cs.gate_ids), bool), 0)
    yield from gate_events

    step, best_step, stalled = 0, 0, False
    offers = iter(config.expansion.candidates if config.expansion is not None else ())
    while step < config.steps and pg > config.tol and not stalled:
        step += 1
        changed = False
        if config.revisions or config.expansion is not None:
            cs, eta, changes, grew = _structural_changes(cs, config, step, eta, energy, offers, proposer)
            yield from changes
            if changes:
                energy, grad = energy_and_gradient(cs, eta)  # the objective changed: a new reference energy
                pg = projected_gradient_norm(be, eta, grad)
                changed = grew
                if grew:
                    gates_open = np.append(gates_open, np.zeros(len(cs.gate_ids) - len(gates_open), bool))
        p = rule(cs, eta, energy, grad, alpha, config)
        # At the floating-point floor a proposal no longer moves η, or only shrinks α: stop honestly.
        stalled = (p.accepted and bool(be.xp.all(p.eta == eta))) or p.step_size < config.min_step_size
        if p.accepted and not stalled:
            eta, energy, grad = p.eta, p.energy, p.grad
            pg = projected_gradient_norm(be, eta, grad)
            best_step = step
            if config.line_search == "armijo":
                alpha = min(config.step_size, p.step_size / config.backtrack_factor)
        elif config.line_search == "none":
            alpha = p.step_size * 0.5
        yield StepCommitted(step=step, energy=energy, pg_norm=pg, step_size=p.step_size, backtracks=p.backtracks,
                            accepted=p.accepted and not stalled, reason="stalled" if stalled else p.reason,
                            trial_energy=p.energy if math.isfinite(p.energy) else None)
        if (p.accepted and best_step == step) or changed:
            host = _readonly(be.to_numpy(eta))
            yield EtaRecorded(step=step, eta=host)
            if len(cs.gate_ids):
                gate_events, gates_open = _gate_events(cs, host, gates_open, step)
                yield from gate_events

    status = "converged" if pg <= config.tol else "stalled" if stalled else "max_steps"
    yield RunFinished(status=status, steps=step, final_energy=energy, best_step=best_step, final_digest=state_digest(host))
    return Outcome(eta=host, energy=energy, status=status, steps=step, best_step=best_step, ids=cs.ids)
