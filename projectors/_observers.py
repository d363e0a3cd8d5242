"""The loop's pieces that watch the run: the recorded state and gates, checks, diagnostics, terms, early stop.

None of them changes what is relaxed; each turns what it sees into events, a
named diagnostics entry, an error or a request to stop.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from complexity_from_constraints.entities import DiagnosticsConfig, MonotonicityError, RelaxConfig
from complexity_from_constraints.events import EscapeDetected, EtaRecorded, GateClosed, GateOpened, TermsRecorded

from ._loop import AbstractPiece, Run, Step
from ._objective import term_breakdown
from ._pieces import Watch


class RecordState(AbstractPiece):
    """Records η and the gates it opened or closed whenever the state changed (an accepted step, or a module added).

    With ``every`` (snapshot mode), η is recorded at every ``every``-th step
    instead, whether the state changed there or not, and with ``previous`` at
    the step before each of those too; gates still at every change.
    """

    def __init__(self, every: int | None = None, previous: bool = False) -> None:
        self.open = np.zeros(0, bool)
        self.every = every
        self.previous = previous

    def after(self, run: Run, step: Step) -> Iterator:
        changed = step.initial or step.accepted or run.grew
        if changed if self.every is None else (step.step % self.every == 0 or (
                self.previous and step.step % self.every == self.every - 1)):
            yield EtaRecorded(step=0 if step.initial else step.step, eta=run.host)
        if not changed:
            return
        cs = run.cs
        if not cs.gate_ids and not self.open.size:
            return  # no gates: nothing opens or closes
        was = np.append(self.open, np.zeros(len(cs.gate_ids) - len(self.open), bool))  # gates added by expansion start closed
        values = run.host[cs.gate_index]
        self.open = values >= cs.gate_threshold
        for k in np.flatnonzero(self.open != was):
            cls = GateOpened if self.open[k] else GateClosed
            yield cls(gate_id=cs.gate_ids[k], step=step.step, eta=float(values[k]))

    def export_state(self) -> dict:
        return {"open": self.open}

    def import_state(self, run: Run, state: dict) -> None:
        self.open = state["open"]


class CheckMonotone(AbstractPiece):
    """``monotone="strict"``: an accepted step that raises the energy U is an error (even if it lowered U − T·S)."""

    def __init__(self, config: RelaxConfig):
        self.solver = config.solver

    def judge(self, run: Run, step: Step) -> Iterator:
        p, before = step.proposal, step.previous.energy
        if step.accepted and not step.initial and p.energy > before + 1e-12 * max(1.0, abs(before)):
            raise MonotonicityError(
                f"step {step.step}: the accepted proposal ({p.reason}, solver {self.solver!r}) raised the energy U "
                f"from {before!r} to {p.energy!r}"
                + (f" while lowering U − T·S to {p.value!r}" if run.weights.temperature is not None else ""))
        return iter(())


class WatchDiagnostics(AbstractPiece):
    """Sensitivity dispersion and confidence of each accepted step, and ``EscapeDetected`` when noise moved the run out."""

    def __init__(self, config: DiagnosticsConfig):
        self.config = config
        self.watch: Watch | None = None

    def judge(self, run: Run, step: Step) -> Iterator:
        if step.accepted and not step.initial:
            step.diagnostics.update(self.watch.observe(run.host, run.state.energy))
        return iter(())

    def after(self, run: Run, step: Step) -> Iterator:
        if step.initial:
            self.watch = Watch(self.config, run.state.energy)
            self.watch.observe(run.host, run.state.energy)
        elif step.accepted:
            escape = self.watch.escape(step.diagnostics.get("noise", 0.0), step.previous, run.state, run.backend)
            if escape is not None:
                yield EscapeDetected(step=step.step, **escape)

    def export_state(self) -> dict:
        w = self.watch
        return {"e0": w.e0, "window": list(w.window), "energies": list(w.energies)}

    def import_state(self, run: Run, state: dict) -> None:
        self.watch = Watch(self.config, state["e0"])
        self.watch.window.extend(state["window"])
        self.watch.energies.extend(state["energies"])


class RecordTerms(AbstractPiece):
    """Every ``every`` steps (and at step 0), each kind's weighted energy and gradient norm."""

    def __init__(self, every: int):
        self.every = every

    def after(self, run: Run, step: Step) -> Iterator:
        if step.step % self.every == 0:
            energies, norms = term_breakdown(run.objective.cs, run.state.eta)
            yield TermsRecorded(step=step.step, energy=energies, grad_norm=norms)


class StopEarly(AbstractPiece):
    """Stops the run after ``patience`` accepted steps in a row that each moved the energy by less than ``delta``."""

    def __init__(self, patience: int, delta: float):
        self.patience, self.delta = patience, delta
        self.calm = 0

    def after(self, run: Run, step: Step) -> Iterator:
        if step.accepted and not step.initial:
            self.calm = self.calm + 1 if abs(step.previous.energy - run.state.energy) < self.delta else 0
            if self.calm >= self.patience:
                run.stop = "early_stopped"
        return iter(())

    def export_state(self) -> dict:
        return {"calm": self.calm}

    def import_state(self, run: Run, state: dict) -> None:
        self.calm = state["calm"]


class StopAtFloor(AbstractPiece):
    """Ends the run (status ``stalled``) after ``patience`` accepted steps in a row that left the objective exactly unchanged.

    At the floating-point floor a solver can keep moving η by rounding-sized
    amounts that no longer change the objective; each such step is recorded
    with ``diagnostics["unchanged_steps"]``, the count so far. Not built for
    solvers with inner state (ADMM), which progress while the objective stays.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.unchanged = 0

    def judge(self, run: Run, step: Step) -> Iterator:
        if step.accepted and not step.initial:
            self.unchanged = self.unchanged + 1 if run.state.value == step.previous.value and not step.changed else 0
            if self.unchanged:
                step.diagnostics["unchanged_steps"] = float(self.unchanged)
            if self.unchanged >= self.patience:
                run.stop = "stalled"
        return iter(())

    def export_state(self) -> dict:
        return {"unchanged": self.unchanged}

    def import_state(self, run: Run, state: dict) -> None:
        self.unchanged = state["unchanged"]
