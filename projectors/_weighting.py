"""Term-weightings: change per-kind weights from what the run measures.

Every weighting starts from the configured weights (the System's family weight
of every present kind, 1.0 where none was set) and sees only the
:class:`WeightingContext` the loop builds after an accepted step. What it returns
becomes a ``WeightsAdapted`` event, and the loop re-evaluates the reference
energy under the new objective before the next acceptance test.

Write your own by subclassing :class:`AbstractWeighting`::

    class HalveGates(AbstractWeighting):
        name = "halve_gates"
        def adapt(self, ctx):
            return {"gate": ctx.weights["gate"] / 2} if "gate" in ctx.weights else None

and pass ``relax(..., weighting=HalveGates())``. Code is not recorded: the log
keeps the weighting's name and every weight it set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping

import numpy as np

from complexity_from_constraints.entities import AgmPhaseWeighting, AutoBalanceWeighting, GradNormWeighting, MissingDependencyError, SmallGainWeighting

from ._objective import LipschitzRows
from ._plugins import find, known


@dataclass(frozen=True)
class WeightingContext:
    """What a weighting sees after an accepted step.

    ``weights``: the current per-kind term weights; ``configured``: the
    System's; ``grad_norms``: each kind's weighted gradient norm at the
    accepted state; ``energies``: accepted energies so far, oldest first;
    ``step_size``: the last step's size; ``rows``: computes the Gershgorin
    rows of the current objective (see :class:`~projectors.LipschitzRows`).
    """

    step: int
    weights: Mapping[str, float]
    configured: Mapping[str, float]
    grad_norms: Mapping[str, float]
    energies: tuple[float, ...]
    step_size: float
    coupling_kinds: tuple[str, ...]
    rows: Callable[[], LipschitzRows] = field(repr=False)


class AbstractWeighting:
    """A term-weighting: ``adapt(ctx)`` returns new weights by kind (all or some), or ``None``.

    ``every`` asks the loop to call it after every that many accepted steps;
    ``details`` (optional) is recorded with each change. A kind whose
    configured family weight is 0 is switched off: the loop keeps it at 0.
    The new weights are recorded as a ``WeightsAdapted`` event and are in
    force from the next step; the loop re-evaluates the reference energy
    under them before that step's acceptance test.

    Pass an instance as ``relax(..., weighting=obj)``, or register a factory by
    name (:func:`register_weighting`) and configure it as
    ``RelaxConfig(weighting=CustomWeighting(name=...))`` so that a re-run rebuilds it.

    >>> from complexity_from_constraints.entities import RelaxConfig, standard_system
    >>> from complexity_from_constraints.events import InMemoryStore
    >>> from complexity_from_constraints.projectors import relax
    >>> class DampCouplings(AbstractWeighting):
    ...     name, every = "damp_couplings", 5
    ...     def adapt(self, ctx):  # halve every coupling kind whose gradient dominates
    ...         return {k: ctx.weights[k] / 2 for k in ctx.coupling_kinds if ctx.grad_norms.get(k, 0) > 1.0} or None
    >>> store = InMemoryStore()
    >>> r = relax(standard_system(50, seed=0), RelaxConfig(steps=20, step_size=0.5), weighting=DampCouplings(), store=store)
    >>> [e.event.weighting for e in store.read(r.run_id, types=["WeightsAdapted"])][:1]
    ['damp_couplings']
    """

    name: ClassVar[str] = "custom"
    every: int = 1

    def __init__(self) -> None:
        self.details: dict[str, float] = {}

    def adapt(self, ctx: WeightingContext) -> Mapping[str, float] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def export_state(self) -> dict | None:
        """What a snapshot needs to go on with this weighting mid-run (JSON values), or ``None``: it cannot.

        ``None`` by default, since an unknown weighting may hold anything; a
        replay of a run that used one then re-runs it from the start.
        """
        return None

    def import_state(self, state: dict) -> None:
        """Restore :meth:`export_state`'s state on a weighting freshly built from the same config."""


def _clamp(w: float, floor: float, ceiling: float | None, configured: float = 1.0) -> float:
    """``w`` within ``[floor, ceiling] × configured``: bounds are relative to the kind's configured weight."""
    w = max(floor * configured, w)
    return min(ceiling * configured, w) if ceiling is not None else w


def _valid_norms(norms: Mapping[str, float]) -> dict[str, float]:
    """Norms with NaN or infinite entries replaced by the mean of the valid ones."""
    good = [v for v in norms.values() if math.isfinite(v)]
    mean = sum(good) / len(good) if good else 0.0
    return {k: (v if math.isfinite(v) else mean) for k, v in norms.items()}


class _Configured(AbstractWeighting):
    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.every = config.every

    def export_state(self) -> dict | None:
        return {"details": dict(self.details)}

    def import_state(self, state: dict) -> None:
        self.details = dict(state["details"])


class AutoBalance(_Configured):
    name = "auto_balance"

    def adapt(self, ctx: WeightingContext) -> dict[str, float] | None:
        cfg, out = self.config, {}
        for kind, n in _valid_norms(ctx.grad_norms).items():
            if n / cfg.target > cfg.max_ratio:
                out[kind] = _clamp(ctx.weights[kind] * cfg.target / n, cfg.floor, cfg.ceiling, ctx.configured[kind])
        return out or None


class GradNorm(_Configured):
    name = "gradnorm"

    def adapt(self, ctx: WeightingContext) -> dict[str, float]:
        cfg = self.config
        return {kind: _clamp(ctx.weights[kind] * (1 + cfg.rate * cfg.alpha * (1 - n / cfg.target)), cfg.floor, cfg.ceiling,
                             ctx.configured[kind])
                for kind, n in _valid_norms(ctx.grad_norms).items()}


def phase_metrics(values) -> dict[str, float]:
    r"""Relative-change statistics of a series: rate, variance, trend, oscillation (see :class:`~entities.AgmPhaseWeighting`)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return {"rate": 0.0, "variance": 0.0, "trend": 0.0, "oscillation": 0.0}
    r = np.clip(1 - np.abs(v[:-1] - v[1:]) / (np.abs(v[:-1]) + np.abs(v[1:]) + 1e-8), 0, 1)
    trend = float(np.polyfit(np.arange(5), r[-5:], 1)[0]) if r.size >= 5 else 0.0
    oscillation = float(np.var(np.abs(np.diff(r)))) if r.size >= 2 else 0.0
    return {"rate": float(r.mean()), "variance": float(r.var()), "trend": trend, "oscillation": oscillation}


class AgmPhase(_Configured):
    name = "agm_phase"

    def adapt(self, ctx: WeightingContext) -> dict[str, float] | None:
        cfg = self.config
        m = phase_metrics(ctx.energies[-cfg.history:])
        self.details = m
        if m["rate"] > 0.7 and m["trend"] > 0 and m["oscillation"] < 0.05:
            up, down = cfg.increase, cfg.decrease
        elif m["rate"] < 0.3 or m["oscillation"] > 0.1:
            up, down = cfg.decrease, cfg.increase
        else:
            return None
        out = {k: _clamp(ctx.weights[k] * up, cfg.floor, cfg.ceiling, ctx.configured[k]) for k in ctx.coupling_kinds}
        if "gate" in ctx.weights:
            out["gate"] = _clamp(ctx.weights["gate"] * down, cfg.floor, cfg.ceiling, ctx.configured["gate"])
        return out


class SmallGain(_Configured):
    name = "small_gain"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.scores: dict[str, float] = {}

    def adapt(self, ctx: WeightingContext) -> dict[str, float] | None:
        cfg, rows = self.config, ctx.rows()
        lipschitz = rows.lipschitz
        limit = 2 * cfg.cap_fraction / ctx.step_size
        budget = cfg.rho * max(0.0, limit - lipschitz)
        costs = {k: rows.cost(k) for k in ctx.coupling_kinds}
        for k, c in costs.items():
            if c > 0:
                value = ctx.grad_norms.get(k, 0.0) ** 2 / c
                self.scores[k] = cfg.ema * value + (1 - cfg.ema) * self.scores.get(k, value)
        factors: dict[str, float] = {}
        out: dict[str, float] = {}
        spent = 0.0
        for k in sorted((k for k in costs if costs[k] > 0), key=lambda k: (-self.scores[k], k)):
            w = ctx.weights[k]
            proposed = _clamp(w * (1 + cfg.max_step_change), cfg.floor, cfg.ceiling, ctx.configured[k])
            if proposed == w or w <= 0:
                continue
            trial = factors | {k: proposed / w}
            cost = rows.lipschitz_with(trial) - lipschitz
            if cost <= budget:
                factors, out[k], spent = trial, proposed, cost
        self.details = {"lipschitz": lipschitz, "lipschitz_limit": limit, "budget": budget, "spent": spent}
        return out or None

    def export_state(self) -> dict | None:
        return {"details": dict(self.details), "scores": dict(self.scores)}

    def import_state(self, state: dict) -> None:
        self.details, self.scores = dict(state["details"]), dict(state["scores"])


WEIGHTINGS: dict[type, Callable[..., AbstractWeighting]] = {
    AutoBalanceWeighting: AutoBalance, GradNormWeighting: GradNorm, AgmPhaseWeighting: AgmPhase, SmallGainWeighting: SmallGain,
}


_BY_NAME: dict[str, Callable[..., AbstractWeighting]] = {}


def register_weighting(key: type | str, factory: Callable[..., AbstractWeighting]) -> None:
    """Make a ``RelaxConfig`` weighting build ``factory(config)``.

    ``key`` is a config model type of the ``weighting`` union, or a name: then
    ``RelaxConfig(weighting=CustomWeighting(name=key, options={...}))`` builds it, in
    this process; an installed package can offer the same name as an entry
    point of ``complexity_from_constraints.weightings`` instead.

    >>> from complexity_from_constraints.entities import CustomWeighting, RelaxConfig
    >>> class Halve(AbstractWeighting):
    ...     name = "halve"
    ...     def adapt(self, ctx):
    ...         return {k: w / 2 for k, w in ctx.weights.items()}
    >>> register_weighting("halve", lambda config: Halve())
    >>> make_weighting(CustomWeighting(name="halve")).name
    'halve'
    """
    if isinstance(key, str):
        _BY_NAME[key] = factory
    else:
        WEIGHTINGS[key] = factory


def make_weighting(config) -> AbstractWeighting:
    """The weighting a config model describes (by its type, else by its name or kind through the entry points)."""
    factory = WEIGHTINGS.get(type(config))
    name = getattr(config, "name", None) if config.kind == "custom" else config.kind
    if factory is None:
        factory = find(_BY_NAME, "weightings", name)
    if factory is None:
        raise MissingDependencyError(
            f"no weighting {name!r} in this process (known: {known(_BY_NAME, 'weightings') or 'none'}): "
            "register_weighting() it, or install the package whose entry point provides it")
    return factory(config)
