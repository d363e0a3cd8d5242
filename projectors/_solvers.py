"""Solvers: the ways the coordinator proposes a step. One contract, one loop.

A solver sees the current accepted :class:`State` through a
:class:`StepContext` and returns a :class:`Proposal`; the loop decides
acceptance on the fixed objective, records events and tells the solver what
it decided (:meth:`AbstractSolver.feedback`). Whenever the objective changes
(homotopy, a weighting, a revision, an expansion) or the active set
does, the loop calls :meth:`AbstractSolver.reset` with the re-evaluated state,
so no solver ever compares energies across objectives.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError, MissingDependencyError, RelaxConfig

from ._objective import Evaluation, Objective
from ._plugins import find, known


@dataclass(frozen=True)
class State:
    """An accepted point: η, the objective's value and gradient there, and the energy U."""

    eta: Any
    value: float
    grad: Any
    energy: float

    @classmethod
    def at(cls, objective: Objective, eta) -> State:
        ev = objective.evaluate(eta)
        return cls(eta, ev.value, ev.grad, ev.energy)


@dataclass(frozen=True)
class StepContext:
    """What a solver may read when it proposes step ``step``.

    ``threshold`` is the largest objective value the loop will accept;
    ``step_cap`` the stability guard's largest step (``inf`` without one);
    ``mask`` a 0/1 array of the coordinates allowed to move, or ``None``.
    """

    step: int
    objective: Objective
    state: State
    threshold: float
    step_cap: float = math.inf
    mask: Any = None


@dataclass(frozen=True)
class Proposal:
    """A proposed point and what the solver concluded about it."""

    eta: Any
    value: float
    grad: Any
    energy: float
    step_size: float
    backtracks: int
    accepted: bool
    reason: str
    diagnostics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, eta, ev: Evaluation, step_size: float, backtracks: int, accepted: bool, reason: str,
           diagnostics: dict[str, float] | None = None) -> Proposal:
        return cls(eta, ev.value, ev.grad, ev.energy, step_size, backtracks, accepted, reason, diagnostics or {})

    def as_state(self) -> State:
        return State(self.eta, self.value, self.grad, self.energy)


class AbstractSolver:
    """How steps are proposed. Subclasses set ``name`` and implement :meth:`propose`.

    The loop owns acceptance: it accepts a proposal only if ``proposal.accepted``
    and its value is at most ``ctx.threshold``, records the step, and tells the
    solver what it decided through :meth:`feedback`. ``numpy_only`` solvers work
    on host arrays (sequential or scipy code) and refuse other backends with a
    clear error. A solver with ``inner_state`` (ADMM's split and dual variables)
    can make progress while its proposed η stays put, so the loop does not read
    an unmoved proposal as a stall.

    >>> from complexity_from_constraints.entities import RelaxConfig, standard_system
    >>> from complexity_from_constraints.projectors import relax
    >>> @register_solver
    ... class FixedStep(AbstractSolver):
    ...     name = "fixed_step_example"
    ...     def propose(self, ctx):
    ...         be, alpha = ctx.objective.backend, self.config.step_size
    ...         eta = be.clip01(ctx.state.eta - alpha * ctx.state.grad)
    ...         return Proposal.of(eta, ctx.objective.evaluate(eta), alpha, 0, True, "decrease")
    >>> relax(standard_system(20, seed=0), RelaxConfig(solver="fixed_step_example", steps=50)).status
    'max_steps'
    """

    name: ClassVar[str]
    numpy_only: ClassVar[bool] = False
    inner_state: ClassVar[bool] = False

    def __init__(self, config: RelaxConfig):
        self.config = config

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        """Start (again) from ``state`` under ``objective`` with active-set ``mask``; ``step`` steps are done."""

    def propose(self, ctx: StepContext) -> Proposal:  # pragma: no cover - abstract
        raise NotImplementedError

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        """The loop's decision on ``proposal``, made from the state ``previous``."""

    def export_state(self) -> dict[str, Any] | None:
        """The solver's inner state for a snapshot (JSON values, numpy arrays), or ``None``: it cannot resume mid-run.

        ``None`` by default (an unknown solver may hold anything); replay then
        re-runs such a run from its start.
        """
        return None

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict[str, Any]) -> None:
        """Go on from :meth:`export_state`'s ``saved`` on a freshly built solver, as if it had run to ``step``."""
        raise NotImplementedError(f"solver {self.name!r} cannot resume from a snapshot")


SOLVERS: dict[str, Callable[[RelaxConfig], AbstractSolver]] = {}


def register_solver(cls: type[AbstractSolver]) -> type[AbstractSolver]:
    """Class decorator: make ``cls`` selectable as ``RelaxConfig(solver=cls.name)``.

    The name is recorded with the run; a re-run in another process finds it if
    that process registered it too, or through an installed entry point of
    ``complexity_from_constraints.solvers`` (see ``projectors._plugins``).
    """
    SOLVERS[cls.name] = cls
    return cls


def make_solver(config: RelaxConfig, backend) -> AbstractSolver:
    """The solver ``config.solver`` names (registered here, or an installed entry point), checked against the backend."""
    factory = find(SOLVERS, "solvers", config.solver)
    if factory is None:
        raise InvalidEntityError("RelaxConfig", None, "solver", config.solver,
                                 f"no such solver in this process (known: {known(SOLVERS, 'solvers')}); "
                                 "register_solver() it, or install the package whose entry point provides it")
    solver = factory(config)
    if solver.numpy_only and backend.name != "numpy":
        raise InvalidEntityError("RelaxConfig", None, "solver", config.solver,
                                 f"runs on the numpy backend only (got backend {backend.name!r})")
    return solver


def masked(d, mask):
    return d if mask is None else d * mask


def box_step(be, eta, s: float, d):
    r""":math:`\mathrm{clip}(η - s d, 0, 1)`; on numpy in one fresh array, in place (the same bits, no temporaries)."""
    if isinstance(d, np.ndarray) and isinstance(eta, np.ndarray) and d.dtype == eta.dtype == be.dtype:
        x = np.multiply(s, d)
        np.subtract(eta, x, out=x)
        return x.clip(0.0, 1.0, out=x)
    return be.clip01(eta - s * d)


def _norm(be, v) -> float:
    return be.to_float(be.xp.sqrt(be.xp.sum(v * v)))


@register_solver
class ProjectedGradient(AbstractSolver):
    r"""Projected gradient with the direction pieces and the step rule of the config.

    Direction: :math:`d = g`, then (each optional) :math:`d_i ← d_i/\max(|D_{ii}|, f)`,
    norm clipping, normalisation, the active-set mask. Step:
    :math:`η' = \mathrm{clip}(η - s d)` (Euclidean) or
    :math:`η' = σ(\operatorname{logit} η - s d)` (mirror).

    ``line_search="none"``: one trial at α; a rejected step halves α.
    ``"armijo"``: trials at :math:`s = α, βα, …` until
    :math:`𝓞(η') ≤ 𝓞(η) - c⟨g, η - η'⟩` (the decrease the projected step
    predicts, ≥ 0 because every :math:`d_i` has the sign of :math:`g_i`);
    after ``max_backtracks`` failures the step is rejected, never taken, and
    the next search starts below its last trial (so at the floating-point
    floor α shrinks until the run stalls instead of repeating the failure).
    """

    name = "projected_gradient"

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        if not hasattr(self, "alpha"):
            self.alpha = self.config.step_size

    def direction(self, ctx: StepContext):
        """The configured transform of the gradient at the current state."""
        cfg, be = self.config.direction, ctx.objective.backend
        xp = be.xp
        d = ctx.state.grad
        if cfg.precondition:
            d = d / xp.clip(xp.abs(ctx.objective.hessian_diagonal(ctx.state.eta)), cfg.precondition_floor, None)
        if cfg.max_norm is not None:
            n = _norm(be, d)
            if n > cfg.max_norm:
                d = d * (cfg.max_norm / n)
        if cfg.normalize:
            n = _norm(be, d)
            if n > 0:
                d = d / n
        return masked(d, ctx.mask)

    def trial(self, objective: Objective, eta, d, s: float):
        """The point a step of size ``s`` along ``-d`` reaches on the box."""
        be = objective.backend
        if self.config.direction.update == "euclidean":
            return box_step(be, eta, s, d)
        xp, eps = be.xp, self.config.direction.mirror_epsilon
        e = xp.clip(eta, eps, 1 - eps)
        moved = 1 / (1 + xp.exp(-(xp.log(e / (1 - e)) - s * d)))
        return xp.where(d == 0, eta, moved)

    def propose(self, ctx: StepContext) -> Proposal:
        d = self.direction(ctx)
        s = min(self.alpha, ctx.step_cap)
        if self.config.line_search == "none":
            trial = self.trial(ctx.objective, ctx.state.eta, d, s)
            ev = ctx.objective.evaluate(trial)
            ok = ev.value <= ctx.threshold
            return Proposal.of(trial, ev, s, 0, ok, "decrease" if ok else _failure(ev))
        return self.armijo(ctx, d, s)

    def armijo(self, ctx: StepContext, d, s: float) -> Proposal:
        be, cfg = ctx.objective.backend, self.config
        eta, g = ctx.state.eta, ctx.state.grad
        for k in range(cfg.max_backtracks + 1):
            trial = self.trial(ctx.objective, eta, d, s)
            predicted = be.to_float(be.xp.sum(g * (eta - trial)))
            ev = ctx.objective.evaluate(trial)
            if ev.value <= ctx.threshold - cfg.armijo_c * predicted:
                return Proposal.of(trial, ev, s, k, True, "armijo")
            if k < cfg.max_backtracks:
                s *= cfg.backtrack_factor
        return Proposal.of(trial, ev, s, cfg.max_backtracks, False, "armijo_failed")

    def export_state(self) -> dict[str, Any] | None:
        return {"alpha": self.alpha}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict[str, Any]) -> None:
        self.alpha = saved["alpha"]

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        if self.config.line_search == "armijo":
            if accepted:
                self.alpha = min(self.config.step_size, proposal.step_size / self.config.backtrack_factor)
            else:  # the same search from the same α would fail the same way: go on below its last trial
                self.alpha = proposal.step_size * self.config.backtrack_factor
        elif not accepted:
            self.alpha = proposal.step_size * 0.5


def _failure(ev: Evaluation) -> str:
    return "energy_increase" if math.isfinite(ev.value) else "not_finite"


@register_solver
class Accelerated(AbstractSolver):
    r"""FISTA-style accelerated projected gradient with backtracking and restart.

    .. math::
        y = x_k + \frac{t_{k-1} - 1}{t_k}(x_k - x_{k-1}), \quad
        x_{k+1} = \mathrm{clip}(y - s∇𝓞(y)), \quad t_{k+1} = \tfrac{1 + \sqrt{1 + 4t_k^2}}{2}

    s shrinks by ``backtrack_factor`` until the quadratic upper bound
    :math:`𝓞(x_{k+1}) ≤ 𝓞(y) + ⟨∇𝓞(y), x_{k+1} - y⟩ + ‖x_{k+1} - y‖^2/2s`
    holds, and grows by 1/β after a step that needed no backtracking. When
    the restart test fires, momentum is dropped and a plain projected-gradient
    step from :math:`x_k` is proposed instead, so the accepted sequence is
    monotone.
    """

    name = "accelerated"

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        self.alpha = getattr(self, "alpha", self.config.step_size)
        self._backend = objective.backend
        self.previous = None  # x_{k-1}
        self.t = 1.0

    def _descend(self, ctx: StepContext, y: State, s: float) -> tuple[Any, Evaluation, float, int]:
        be, cfg = ctx.objective.backend, self.config
        xp = be.xp
        d = masked(y.grad, ctx.mask)
        for k in range(cfg.max_backtracks + 1):
            x_new = box_step(be, y.eta, s, d)
            ev = ctx.objective.evaluate(x_new)
            diff = x_new - y.eta
            bound = y.value + be.to_float(xp.sum(y.grad * diff)) + be.to_float(xp.sum(diff * diff)) / (2 * s)
            if ev.value <= bound + 1e-12 * max(1.0, abs(y.value)):
                return x_new, ev, s, k
            if k < cfg.max_backtracks:
                s *= cfg.backtrack_factor
        return x_new, ev, s, cfg.max_backtracks

    def propose(self, ctx: StepContext) -> Proposal:
        be, x = ctx.objective.backend, ctx.state
        s = min(self.alpha, ctx.step_cap)
        t_next = self._t_next = (1 + math.sqrt(1 + 4 * self.t * self.t)) / 2
        if self.previous is not None:
            beta = (self.t - 1) / t_next
            y_eta = be.clip01(x.eta + beta * masked(x.eta - self.previous, ctx.mask))
            y = State.at(ctx.objective, y_eta)
        else:
            y = x
        x_new, ev, s, k = self._descend(ctx, y, s)
        restart = (ev.value > ctx.threshold if self.config.accelerated.restart == "function"
                   else be.to_float(be.xp.sum(y.grad * (x_new - x.eta))) > 0)
        if restart and y is not x:
            self.previous, self.t = None, 1.0
            x_new, ev, s, k2 = self._descend(ctx, x, s)
            ok = ev.value <= ctx.threshold
            return Proposal.of(x_new, ev, s, k + k2, ok, "restart" if ok else _failure(ev))
        ok = ev.value <= ctx.threshold
        return Proposal.of(x_new, ev, s, k, ok, "accelerated" if ok else _failure(ev))

    def export_state(self) -> dict[str, Any] | None:
        previous = None if self.previous is None else self._backend.to_numpy(self.previous)
        return {"alpha": self.alpha, "t": self.t, "previous": previous}

    def import_state(self, objective: Objective, state: State, step: int, mask, saved: dict[str, Any]) -> None:
        self.reset(objective, state, step, mask)
        self.alpha, self.t = saved["alpha"], saved["t"]
        self.previous = None if saved["previous"] is None else objective.backend.asarray(saved["previous"])

    def feedback(self, proposal: Proposal, accepted: bool, previous: State) -> None:
        if not accepted:
            self.previous, self.t = None, 1.0
            self.alpha = proposal.step_size * self.config.backtrack_factor
            return
        self.alpha = proposal.step_size / (self.config.backtrack_factor if proposal.backtracks == 0 else 1.0)
        self.previous = previous.eta
        self.t = 1.0 if proposal.reason == "restart" else self._t_next


@register_solver
class Lbfgsb(AbstractSolver):
    r"""scipy's L-BFGS-B on the box, as a reference whose iterations are recorded like any other.

    At each reset, ``scipy.optimize.minimize(method="L-BFGS-B")`` starts on
    the remaining steps with the box ``[0, 1]^N`` (inactive coordinates get
    the bound ``[η_i, η_i]``), and each proposal advances it by one iteration:
    scipy runs in a worker thread that pauses in its callback until the next
    proposal, so a run holds one iterate and one evaluation, not the whole
    trajectory, and nothing is computed past the step where the loop stops or
    resets. When scipy stops early, the next proposal repeats the state, which
    the loop records as stalled.
    """

    name = "lbfgsb"
    numpy_only = True
    _run: _ScipyIterations | None = None

    def reset(self, objective: Objective, state: State, step: int, mask=None) -> None:
        try:
            from scipy.optimize import Bounds
        except ImportError:  # pragma: no cover - scipy is a dependency
            raise MissingDependencyError("solver 'lbfgsb' needs scipy: pip install scipy") from None
        if self._run is not None:
            self._run.close()
            self._run = None
        remaining = self.config.steps - step
        if remaining <= 0:
            return
        x0 = np.asarray(state.eta, np.float64)
        if mask is None:
            bounds = Bounds(np.zeros(x0.size), np.ones(x0.size))
        else:
            free = np.asarray(mask) > 0
            bounds = Bounds(np.where(free, 0.0, x0), np.where(free, 1.0, x0))
        options = {"maxiter": remaining, "maxfun": 20 * remaining + 20, "ftol": 0.0,
                   "gtol": self.config.tol * 1e-3, "maxcor": 10}
        self._run = _ScipyIterations(objective, x0, bounds, options)
        weakref.finalize(self, self._run.close)  # an abandoned run must not leave its thread waiting

    def propose(self, ctx: StepContext) -> Proposal:
        item = self._run.next() if self._run is not None else None
        if item is None:
            s = ctx.state
            return Proposal(s.eta, s.value, s.grad, s.energy, 0.0, 0, True, "lbfgsb")
        x, ev = item
        ok = ev.value <= ctx.threshold
        return Proposal.of(x, ev, 1.0, 0, ok, "lbfgsb" if ok else _failure(ev))


class _ScipyIterations:
    """``scipy.optimize.minimize(method="L-BFGS-B")`` in a worker thread, one iteration per :meth:`next`.

    The two threads never run at once: :meth:`next` lets the worker go on to
    its next callback and waits there, so the objective is evaluated by one
    thread at a time, in scipy's order. Only the latest evaluation is kept;
    the iterate scipy reports is the point it evaluated last (the end of its
    line search), and any other point is evaluated again.
    """

    def __init__(self, objective: Objective, x0: np.ndarray, bounds, options: dict):
        self._objective = objective
        self._go = threading.Semaphore(0)
        self._ready = threading.Semaphore(0)
        self._item: Any = None
        self._last: tuple[np.ndarray, Evaluation] | None = None
        self._stopping = self._done = False
        self._thread = threading.Thread(target=self._work, args=(x0, bounds, options), name="lbfgsb", daemon=True)
        self._thread.start()

    def next(self) -> tuple[np.ndarray, Evaluation] | None:
        """The next iterate and its evaluation, or ``None`` once scipy has stopped."""
        if self._done:
            return None
        self._go.release()
        self._ready.acquire()
        item, self._item = self._item, None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item is None:
            self._done = True
        return item

    def close(self) -> None:
        """Stop the worker (scipy halts at its next callback); idempotent."""
        if not self._done:
            self._done = self._stopping = True
            self._go.release()

    def _fun(self, x):
        x = np.array(x)
        ev = self._objective.evaluate(x)
        self._last = (x, ev)
        return ev.value, np.asarray(ev.grad, np.float64)

    def _callback(self, intermediate_result) -> None:
        xk = np.array(intermediate_result.x)
        last = self._last
        same = last is not None and last[0].shape == xk.shape and last[0].tobytes() == xk.tobytes()
        ev = last[1] if same else self._objective.evaluate(xk)
        self._last = None
        self._item = (xk, ev)
        self._ready.release()
        self._go.acquire()
        if self._stopping:
            raise StopIteration  # scipy >= 1.11 ends the minimisation

    def _work(self, x0: np.ndarray, bounds, options: dict) -> None:
        from scipy.optimize import minimize

        self._go.acquire()
        try:
            if not self._stopping:
                minimize(self._fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=self._callback,
                         options=options)
            self._item = None
        except BaseException as exc:  # handed to the caller of next()
            self._item = exc
        finally:
            self._objective = None  # type: ignore[assignment]
            self._ready.release()
