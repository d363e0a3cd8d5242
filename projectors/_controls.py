"""The loop's pieces that change what is relaxed: the active set, the System, the objective, the proposal.

Each piece is built by :func:`~projectors._coordinator.pieces_for` only when
its control is configured, and follows :class:`~projectors._loop.AbstractPiece`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from complexity_from_constraints.entities import Candidate, InvalidEntityError, RelaxConfig, WarmStart
from complexity_from_constraints.events import (
    CouplingsCapped,
    EntityRevised,
    ExpansionRejected,
    HomotopyBackedOff,
    MarginWarning,
    ModuleAdded,
    ObjectiveScaled,
    StabilityBounded,
    WarmStartProposed,
    WeightsAdapted,
)

from ._weighting import AbstractWeighting, WeightingContext
from ._loop import AbstractPiece, Run, Step
from ._objective import coupling_cap_scale, coupling_kinds_of, lipschitz_rows, step_cap, term_breakdown
from ._pieces import Homotopy, Noise
from ._solvers import Proposal, State, StepContext
from ._structure import evaluate_candidate, revise

Proposer = Callable[[int, tuple[str, ...], np.ndarray], "Candidate | None"]


class WarmStartMask(AbstractPiece):
    """Records the warm start and, for its first ``active_steps`` steps, lets only its ``active`` modules move."""

    def __init__(self, warm_start: WarmStart, ids: tuple[str, ...]):
        self.warm_start = warm_start
        unknown = sorted(set(warm_start.active) - set(ids))
        if unknown and warm_start.active_steps:
            raise InvalidEntityError("RelaxConfig", None, "warm_start.active", unknown[0], "is not a module of the System")
        self.active_steps = warm_start.active_steps if warm_start.active else 0

    def start(self, run: Run) -> Iterator:
        ws = self.warm_start
        if self.active_steps:
            mask = np.zeros(run.cs.n)
            mask[[run.cs.index_of(i) for i in ws.active]] = 1.0
            run.mask = run.backend.asarray(mask)
        yield WarmStartProposed(source=ws.source, signature=ws.signature, active=list(ws.active),
                                active_steps=ws.active_steps, confidence=ws.confidence)

    def before(self, run: Run) -> Iterator:
        if run.mask is not None and run.step == self.active_steps + 1:
            run.mask, run.reset = None, True
        return iter(())


class Restructure(AbstractPiece):
    """Applies the revisions due at each step, then offers an expansion candidate when one is due.

    Not resumable from a snapshot: the System it changed (and a proposer's code) is not in one.
    """

    resumable = False

    def __init__(self, config: RelaxConfig, proposer: Proposer | None):
        self.revisions, self.expansion, self.proposer = config.revisions, config.expansion, proposer
        self.offers = iter(config.expansion.candidates if config.expansion is not None else ())

    def before(self, run: Run) -> Iterator:
        step, cs, eta = run.step, run.cs, run.state.eta
        changed = False
        for rev in self.revisions:
            if rev.step == step:
                cs, entity = revise(cs, rev.entity_id, rev.changes)
                changed = True
                yield EntityRevised(step=step, entity_id=rev.entity_id, version=entity.version,
                                    changes=rev.changes, entity=entity.model_dump(mode="json"))
        exp = self.expansion
        if exp is not None and step % exp.every == 0:
            host = cs.backend.to_numpy(eta)
            candidate = self.proposer(step, cs.ids, host) if self.proposer is not None else next(self.offers, None)
            if candidate is not None:
                changed = True
                ev = evaluate_candidate(cs, eta, candidate, exp)  # on the System after this step's revisions
                if ev.admitted(exp.tau):
                    cs, eta, run.grew = ev.compiled, ev.eta, True
                    if run.mask is not None:
                        run.mask = run.backend.asarray(np.append(run.backend.to_numpy(run.mask), np.ones(cs.n - len(run.mask))))
                    yield ModuleAdded(step=step, module=candidate.module.model_dump(mode="json"),
                                      couplings=[c.model_dump(mode="json") for c in candidate.couplings],
                                      delta_f=ev.delta_f, tau=exp.tau, eta=float(cs.backend.to_numpy(eta)[-1]),
                                      parent_id=ev.parent_id)
                else:
                    yield ExpansionRejected(step=step, module_id=candidate.module.id, delta_f=ev.delta_f, tau=exp.tau)
        if changed:
            s = run.state
            run.cs, run.state, run.changed = cs, State(eta, s.value, s.grad, s.energy), True


class HomotopyRamp(AbstractPiece):
    """Ramps the configured scales up to 1 over ``steps`` steps, backing the starts off after rejected steps."""

    def __init__(self, homotopy: Homotopy):
        self.homotopy = homotopy

    def start(self, run: Run) -> Iterator:
        run.weights.ramp = self.homotopy.scales(run.start_step)
        return iter(())

    def before(self, run: Run) -> Iterator:
        h = self.homotopy
        if h.ramping(run.step - 1) or run.changed:
            scales = h.scales(run.step)
            if scales != run.weights.ramp:
                run.weights.ramp, run.changed = scales, True
                yield ObjectiveScaled(step=run.step, scales=scales)

    def judge(self, run: Run, step: Step) -> Iterator:
        h = self.homotopy
        if not (step.initial or step.accepted or step.stalled) and h.ramping(step.step) and h.rejected():
            yield HomotopyBackedOff(step=step.step, starts=dict(h.starts))

    def holds(self, run: Run) -> bool:
        return self.homotopy.ramping(run.step)

    def export_state(self) -> dict:
        return {"starts": dict(self.homotopy.starts), "rejections": self.homotopy.rejections}

    def import_state(self, run: Run, state: dict) -> None:
        self.homotopy.starts, self.homotopy.rejections = dict(state["starts"]), state["rejections"]


class NoiseInjection(AbstractPiece):
    """Adds seeded gradient-orthogonal noise to an accepted proposal, kept only if the objective does not rise."""

    def __init__(self, noise: Noise):
        self.noise = noise
        self.norm = 0.0
        self.backtracks, self.drop_ratio = 0, 0.0

    def adjust(self, run: Run, ctx: StepContext, p: Proposal) -> Proposal:
        be, objective, state = run.backend, ctx.objective, ctx.state
        grad = be.to_numpy(state.grad)
        m = self.noise.magnitude(ctx.step, grad, self.backtracks, self.drop_ratio)
        curvature = be.to_numpy(objective.hessian_diagonal(state.eta)) if self.noise.config.mode == "metric" else None
        z = self.noise.vector(m, grad, curvature, None if ctx.mask is None else be.to_numpy(ctx.mask))
        self.norm = 0.0
        if z is None or not p.accepted:
            return p
        noisy = be.clip01(p.eta + be.asarray(z))
        ev = objective.evaluate(noisy)
        if ev.value > ctx.threshold:
            return p
        self.norm = float(np.linalg.norm(be.to_numpy(noisy) - be.to_numpy(p.eta)))
        return Proposal.of(noisy, ev, p.step_size, p.backtracks, True, p.reason, p.diagnostics)

    def judge(self, run: Run, step: Step) -> Iterator:
        if not step.initial:
            if step.accepted:
                prev, now = step.previous.energy, run.state.energy
                self.drop_ratio = max(prev - now, 0.0) / max(abs(prev), 1e-12)
            self.backtracks = step.proposal.backtracks
            step.diagnostics["noise"] = self.norm  # the diagnostics watch reads it to tell an escape
        return iter(())

    def export_state(self) -> dict:
        n = self.noise
        return {"rng": n.rng.bit_generator.state, "previous_grad": n.previous_grad, "norm": self.norm,
                "backtracks": self.backtracks, "drop_ratio": self.drop_ratio}

    def import_state(self, run: Run, state: dict) -> None:
        self.noise.rng.bit_generator.state = state["rng"]
        self.noise.previous_grad = state["previous_grad"]
        self.norm, self.backtracks, self.drop_ratio = state["norm"], state["backtracks"], state["drop_ratio"]


class FreeEnergy(AbstractPiece):
    """Descends U − T·S instead of U (accepting up to ``epsilon`` above the reference) and reports its value."""

    def __init__(self, temperature: float, epsilon: float):
        self.temperature, self.epsilon = temperature, epsilon

    def start(self, run: Run) -> Iterator:
        run.weights.temperature, run.slack = self.temperature, self.epsilon
        return iter(())

    def judge(self, run: Run, step: Step) -> Iterator:
        step.diagnostics["free_energy"] = run.state.value
        return iter(())


class StabilityGuard(AbstractPiece):
    """Caps the step at ``cap_fraction · 2/L`` of the current objective; optionally scales couplings down to a target L."""

    def __init__(self, cap_fraction: float, warn_margin: float | None, coupling_target: float | None):
        self.cap_fraction, self.warn_margin, self.coupling_target = cap_fraction, warn_margin, coupling_target
        self.lipschitz = math.nan

    def start(self, run: Run) -> Iterator:
        if self.coupling_target is None:
            return
        weights, cs = run.weights, run.cs
        ramp, weights.ramp = weights.ramp, {}  # cap the full-strength objective, not the ramp's start
        rows = lipschitz_rows(weights.build(cs).cs)
        weights.cap = coupling_cap_scale(rows, coupling_kinds_of(cs), self.coupling_target)
        weights.ramp = ramp
        if weights.cap < 1.0:
            after = lipschitz_rows(weights.build(cs).cs).lipschitz
            yield CouplingsCapped(step=run.start_step, scale=weights.cap, target=self.coupling_target,
                                  lipschitz_before=rows.lipschitz, lipschitz_after=after)

    def reframe(self, run: Run) -> Iterator:
        self.lipschitz = lipschitz_rows(run.objective.cs).lipschitz
        run.cap = step_cap(self.lipschitz, self.cap_fraction)
        yield StabilityBounded(step=run.step, lipschitz=self.lipschitz, step_cap=run.cap)

    def judge(self, run: Run, step: Step) -> Iterator:
        if not step.initial:
            step.diagnostics["margin"] = (2 / self.lipschitz if self.lipschitz > 0 else math.inf) - step.proposal.step_size
        return iter(())

    def after(self, run: Run, step: Step) -> Iterator:
        if self.warn_margin is not None and not step.initial and step.diagnostics["margin"] < self.warn_margin:
            yield MarginWarning(step=step.step, margin=step.diagnostics["margin"], threshold=self.warn_margin,
                                lipschitz=self.lipschitz, step_size=step.proposal.step_size)

    def export_state(self) -> dict:
        return {"lipschitz": self.lipschitz}

    def import_state(self, run: Run, state: dict) -> None:
        self.lipschitz = state["lipschitz"]


class WeightAdaptation(AbstractPiece):
    """After every ``weighting.every`` accepted steps, lets the weighting set the term weights of the next steps.

    Resumable when the weighting was built from the config and can export its
    state (the built-in ones); an object handed to ``relax`` is not recorded.
    """

    def __init__(self, weighting: AbstractWeighting, configured: bool = True):
        self.weighting = weighting
        self.energies: list[float] = []
        self.accepted = 0
        self.resumable = configured and weighting.export_state() is not None

    def export_state(self) -> dict:
        return {"energies": list(self.energies), "accepted": self.accepted, "weighting": self.weighting.export_state()}

    def import_state(self, run: Run, state: dict) -> None:
        self.energies, self.accepted = list(state["energies"]), state["accepted"]
        self.weighting.import_state(state["weighting"])

    def after(self, run: Run, step: Step) -> Iterator:
        if step.initial:
            self.energies = [run.state.energy]
            return
        if not step.accepted:
            return
        self.accepted += 1
        self.energies.append(run.state.energy)
        if self.accepted % self.weighting.every == 0:
            event = self.adapt(run, step)
            if event is not None:
                run.changed = True
                yield event

    def adapt(self, run: Run, step: Step) -> WeightsAdapted | None:
        weighting, weights, objective = self.weighting, run.weights, run.objective
        _, norms = term_breakdown(objective.cs, run.state.eta)
        ctx = WeightingContext(step=step.step, weights=dict(weights.weights), configured=dict(weights.configured),
                           grad_norms=norms, energies=tuple(self.energies), step_size=step.proposal.step_size,
                           coupling_kinds=coupling_kinds_of(run.cs), rows=lambda: lipschitz_rows(objective.cs))
        proposed = weighting.adapt(ctx)
        if not proposed:
            return None
        unknown = sorted(set(proposed) - set(weights.weights))
        if unknown:
            raise InvalidEntityError(type(weighting).__name__, None, "weights", unknown[0], "is not a kind of this System")
        bad = [(k, v) for k, v in proposed.items() if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise InvalidEntityError(type(weighting).__name__, None, f"weights.{bad[0][0]}", bad[0][1], "must be finite and ≥ 0")
        # A kind configured at weight 0 is compiled out: no multiplier brings it back, so it stays 0 (and the log says so).
        new = weights.weights | {k: float(v) for k, v in proposed.items() if weights.configured[k] > 0}
        if new == weights.weights:
            return None
        previous, weights.weights = weights.weights, new
        details = {k: float(v) for k, v in getattr(weighting, "details", {}).items() if math.isfinite(v)}
        return WeightsAdapted(step=step.step, weighting=weighting.name, weights=new, previous=previous, details=details)
