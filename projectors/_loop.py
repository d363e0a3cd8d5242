"""What the relaxation loop shares with its pieces: the run's state, a step's decision, the piece protocol.

A piece is one control of the loop (a homotopy, a stability guard, a weight
weighting, …). It implements any of the hooks of :class:`AbstractPiece`; every
hook it leaves alone does nothing. The loop calls each hook on every piece in
the order :func:`~projectors._coordinator.pieces_for` built them, so that
order is also the order of their events within a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import numpy as np

from complexity_from_constraints.entities import RelaxConfig

from ._compile import CompiledSystem
from ._objective import Objective, configured_weights, coupling_kinds_of
from ._pieces import Homotopy
from ._solvers import Proposal, State, StepContext


class Weights:
    """The per-kind term weights, the homotopy scales, the coupling cap and the temperature, folded into one :class:`Objective`."""

    def __init__(self, cs: CompiledSystem):
        self.configured = configured_weights(cs)
        self.weights = dict(self.configured)
        self.cap = 1.0
        self.ramp: dict[str, float] = {}
        self.temperature: float | None = None
        self.built: dict[str, Any] = {}  # what the objective in force was built from (a snapshot rebuilds it)

    def build(self, cs: CompiledSystem) -> Objective:
        for k, w in configured_weights(cs).items():  # kinds that arrived by expansion start as configured
            self.configured.setdefault(k, w)
            self.weights.setdefault(k, w)
        self.built = self._fields()
        couplings = coupling_kinds_of(cs)
        kinds, entities = Homotopy.split(self.ramp, couplings)
        multipliers = {}
        for k, w0 in self.configured.items():
            m = (self.weights[k] / w0 if w0 > 0 else 1.0) * kinds.get(k, 1.0) * (self.cap if k in couplings else 1.0)
            if m != 1.0:
                multipliers[k] = m
        return Objective(cs, multipliers, entities, self.temperature)

    def _fields(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "cap": self.cap, "ramp": dict(self.ramp), "temperature": self.temperature}

    def export_state(self) -> dict[str, Any]:
        """The weights now, and those the objective in force was built from (a weighting's change waits for the next step)."""
        return {"configured": dict(self.configured), "now": self._fields(), "built": dict(self.built)}

    def import_state(self, cs: CompiledSystem, state: dict[str, Any]) -> Objective:
        """Restore :meth:`export_state`'s weights; returns the objective in force, rebuilt exactly as it was built."""
        self.configured = dict(state["configured"])
        self._set(state["built"])
        objective = self.build(cs)
        self._set(state["now"])
        return objective

    def _set(self, fields: dict[str, Any]) -> None:
        self.weights, self.cap = dict(fields["weights"]), fields["cap"]
        self.ramp, self.temperature = dict(fields["ramp"]), fields["temperature"]


@dataclass(eq=False)
class Run:
    """The loop's state: everything a piece may read, and the few fields it may change.

    Pieces may change ``cs``/``state`` (a structural change), ``weights``
    (and then set ``changed``), ``mask`` (and then set ``reset``), ``slack``,
    ``cap``, ``grew`` and ``stop``. ``changed`` makes the loop rebuild the
    objective and re-evaluate the reference before the step; ``stop`` ends
    the run with that status after the step.
    """

    config: RelaxConfig
    cs: CompiledSystem
    weights: Weights
    step: int
    start_step: int
    state: State = None  # type: ignore[assignment]  # set once the objective is built
    objective: Objective = None  # type: ignore[assignment]
    mask: Any = None
    cap: float = math.inf
    slack: float = 0.0
    host: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # η of the state, read-only
    host_finite: bool = False  # host is an accepted state whose projected-gradient norm was finite
    before: np.ndarray | None = field(default=None, repr=False)  # host as the step under way began (η of the step before)
    pg: float = math.inf
    best_step: int = 0
    stalled: bool = False
    changed: bool = False
    reset: bool = False
    grew: bool = False
    stop: str | None = None

    @property
    def backend(self):
        return self.cs.backend


@dataclass
class Step:
    """One step's decision, as the pieces see it after the loop made it.

    ``proposal`` is ``None`` for the initial state (step 0, or a fork's first
    step); ``previous`` is the state the step started from; ``changed`` says
    the objective changed before the step; ``diagnostics`` become the
    ``StepCommitted`` event's (non-finite entries are left out).
    """

    step: int
    proposal: Proposal | None
    accepted: bool
    stalled: bool
    previous: State
    changed: bool = False
    diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def initial(self) -> bool:
        return self.proposal is None


class AbstractPiece:
    """One control of the loop. Every hook is optional; events are yielded, state changes go through :class:`Run`.

    - ``start``: before the initial state is evaluated (step-0 facts: a warm
      start, a coupling cap); may change the weights, the mask or the slack.
    - ``before``: at the start of each step; may change the System, the
      state or the objective (set ``run.changed``) or the mask (``run.reset``).
    - ``reframe``: the objective was (re)built and the reference re-evaluated.
    - ``adjust``: may replace the solver's proposal before acceptance.
    - ``judge``: after the decision, before ``StepCommitted``: adds named
      ``diagnostics``, yields events, may raise.
    - ``after``: after ``StepCommitted``: observes, yields events, may ask to
      stop (``run.stop``) or change the objective from the next step on.
    - ``holds``: True while the run must go on even if it converged or
      stalled (the objective is still changing).

    ``judge`` and ``after`` also see the initial state (``step.initial``),
    once, before the first step.

    Snapshot mode (``RelaxConfig.snapshots``) saves every piece's state with
    :meth:`export_state` (JSON values and numpy arrays) and a replay restores
    it with :meth:`import_state` on a freshly built piece; a piece whose state
    cannot be saved sets ``resumable = False`` (replay then re-runs from the
    start). A piece without state needs neither.
    """

    resumable: ClassVar[bool] = True

    def export_state(self) -> dict[str, Any]:
        return {}

    def import_state(self, run: Run, state: dict[str, Any]) -> None:
        pass

    def start(self, run: Run) -> Iterable:
        return ()

    def before(self, run: Run) -> Iterable:
        return ()

    def reframe(self, run: Run) -> Iterable:
        return ()

    def adjust(self, run: Run, ctx: StepContext, proposal: Proposal) -> Proposal:
        return proposal

    def judge(self, run: Run, step: Step) -> Iterable:
        return ()

    def after(self, run: Run, step: Step) -> Iterable:
        return ()

    def holds(self, run: Run) -> bool:
        return False
