"""The objective a run descends: the compiled energy, its term scales, and optionally −T·S.

Term weights, homotopy scales and the coupling auto-cap all act the same way:
they multiply the weights of whole kinds (or single entities) in the compiled
arrays. :class:`Objective` holds the unscaled compiled System and the current
multipliers, and rebuilds the scaled arrays when they change; solvers only
ever call :meth:`Objective.evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError

from ._compile import CompiledSystem, energy_and_gradient, hessian_diagonal

ENTROPY_CLIP = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """The objective at one η: ``value`` (what acceptance compares), its gradient, and the energy U."""

    value: float
    grad: Any
    energy: float


def kinds_of(cs: CompiledSystem) -> tuple[str, ...]:
    """Every kind present in ``cs``: module kinds, then coupling kinds."""
    return tuple(g.cls.model_fields["kind"].default for g in (*cs.modules, *cs.couplings))


def coupling_kinds_of(cs: CompiledSystem) -> tuple[str, ...]:
    return tuple(g.cls.model_fields["kind"].default for g in cs.couplings)


def configured_weights(cs: CompiledSystem) -> dict[str, float]:
    """The System's family weight of every present kind (1.0 where none was configured)."""
    fw = cs.system.family_weights
    return {k: float(fw.get(k, 1.0)) for k in kinds_of(cs)}


@dataclass(frozen=True)
class Objective:
    r"""The function a run minimises.

    .. math::
        \mathcal{O}(η) = Σ_k m_k \big[Σ_{e∈k} s_e w_e φ_e\big] + γN \;(- T Σ_i H(η_i))

    with ``multipliers`` :math:`m_k` per kind, ``entity_scales`` :math:`s_e`
    per entity id, :math:`w_e` the compiled weight (entity × family) and the
    entropy term only when ``temperature`` is set. ``cs`` is the scaled
    compiled System that solvers evaluate.
    """

    base: CompiledSystem
    multipliers: Mapping[str, float] = field(default_factory=dict)
    entity_scales: Mapping[str, float] = field(default_factory=dict)
    temperature: float | None = None
    cs: CompiledSystem = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cs", _scaled(self.base, self.multipliers, self.entity_scales))

    @property
    def backend(self):
        return self.base.backend

    def rescaled(self, multipliers: Mapping[str, float], entity_scales: Mapping[str, float]) -> Objective:
        """The same objective with new multipliers and entity scales."""
        return Objective(self.base, dict(multipliers), dict(entity_scales), self.temperature)

    def rebased(self, base: CompiledSystem) -> Objective:
        """The same scales over a changed compiled System (after a revision or an expansion)."""
        return Objective(base, self.multipliers, self.entity_scales, self.temperature)

    def evaluate(self, eta) -> Evaluation:
        """Objective value, gradient and energy U at ``eta``."""
        energy, grad = energy_and_gradient(self.cs, eta)
        if self.temperature is None:
            return Evaluation(energy, grad, energy)
        be, xp = self.backend, self.backend.xp
        p = xp.clip(eta, ENTROPY_CLIP, 1 - ENTROPY_CLIP)
        entropy = -(p * xp.log(p) + (1 - p) * xp.log(1 - p))
        t = self.temperature
        # d(−T·H)/dp = T·logit(p)
        return Evaluation(energy - t * be.to_float(xp.sum(entropy)), grad + t * xp.log(p / (1 - p)), energy)

    def hessian_diagonal(self, eta):
        """Hessian diagonal of the energy terms (local plus coupling) at ``eta``."""
        return hessian_diagonal(self.cs, eta)


def _scaled(cs: CompiledSystem, multipliers: Mapping[str, float], entity_scales: Mapping[str, float]) -> CompiledSystem:
    if not multipliers and not entity_scales:
        return cs
    be = cs.backend

    def scale(group):
        kind = group.cls.model_fields["kind"].default
        m = float(multipliers.get(kind, 1.0))
        weight = group.weight * m if m != 1.0 else group.weight
        hits = [(k, entity_scales[i]) for k, i in enumerate(group.ids) if i in entity_scales]
        if hits:
            s = np.ones(len(group.ids))
            for k, v in hits:
                s[k] = v
            weight = weight * be.asarray(s)
        return group if weight is group.weight else replace(group, weight=weight)

    return replace(cs, modules=tuple(scale(g) for g in cs.modules), couplings=tuple(scale(g) for g in cs.couplings))


def term_breakdown(cs: CompiledSystem, eta) -> tuple[dict[str, float], dict[str, float]]:
    """Per kind: the weighted energy and the norm of its weighted gradient, at ``eta``."""
    be, xp = cs.backend, cs.backend.xp
    energies: dict[str, float] = {}
    norms: dict[str, float] = {}
    for g in cs.modules:
        kind = g.cls.model_fields["kind"].default
        f, df = g.cls.energy_grad(xp, g.take(eta), g.params)
        energies[kind] = be.to_float(xp.sum(g.weight * f))
        gk = g.weight * df
        norms[kind] = be.to_float(xp.sqrt(xp.sum(gk * gk)))
    for c in cs.couplings:
        kind = c.cls.model_fields["kind"].default
        phi, di, dj = c.cls.energy_grad(xp, eta[c.i], eta[c.j], c.params)
        energies[kind] = be.to_float(xp.sum(c.weight * phi))
        grad = be.scatter_add(xp.concatenate([c.i, c.j]), xp.concatenate([c.weight * di, c.weight * dj]), cs.n)
        norms[kind] = be.to_float(xp.sqrt(xp.sum(grad * grad)))
    return energies, norms


@dataclass(frozen=True)
class LipschitzRows:
    r"""Gershgorin rows of a bound on the Hessian over the whole box, split by kind.

    ``rows[kind][i]`` is kind's contribution to row i,
    :math:`w\max|∂_i^2| + w\max|∂_i∂_j|` summed over its terms touching i;
    :math:`L = \max_i Σ_k \text{rows}[k][i]`.
    """

    rows: Mapping[str, np.ndarray]
    n: int

    @property
    def total(self) -> np.ndarray:
        out = np.zeros(self.n)
        for r in self.rows.values():
            out += r
        return out

    @property
    def lipschitz(self) -> float:
        return float(self.total.max()) if self.n else 0.0

    def lipschitz_with(self, factors: Mapping[str, float]) -> float:
        """L after multiplying each kind's rows by ``factors[kind]`` (default 1)."""
        out = np.zeros(self.n)
        for k, r in self.rows.items():
            out += factors.get(k, 1.0) * r
        return float(out.max()) if self.n else 0.0

    def cost(self, kind: str) -> float:
        """The kind's largest row contribution: what scaling it by (1 + x) adds to L, at most x times this."""
        r = self.rows.get(kind)
        return float(r.max()) if r is not None and r.size else 0.0


def lipschitz_rows(cs: CompiledSystem) -> LipschitzRows:
    """Per-kind Gershgorin rows from each kind's largest curvature on :math:`[0, 1]^N`."""
    be, xp = cs.backend, cs.backend.xp
    rows: dict[str, np.ndarray] = {}
    for g in cs.modules:
        kind = g.cls.model_fields["kind"].default
        bound = g.cls.curvature_bound(xp, xp.ones_like(g.weight), g.params)
        if bound is None:
            raise _unbounded(g)
        row = np.zeros(cs.n)
        row[be.to_numpy(g.index)] = be.to_numpy(g.weight * bound)
        rows[kind] = rows.get(kind, 0) + row
    for c in cs.couplings:
        kind = c.cls.model_fields["kind"].default
        bound = c.cls.curvature_bound(xp, xp.ones_like(c.weight), c.params)
        if bound is None:
            raise _unbounded(c)
        ii, jj, ij = (be.to_numpy(c.weight * b) for b in bound)
        row = np.zeros(cs.n)
        np.add.at(row, be.to_numpy(c.i), ii + ij)
        np.add.at(row, be.to_numpy(c.j), jj + ij)
        rows[kind] = rows.get(kind, 0) + row
    return LipschitzRows(rows, cs.n)


def _unbounded(group) -> InvalidEntityError:
    """The stability guard's refusal of a kind with no curvature bound on the box: the kind says what is missing."""
    field, value, reason = group.cls.curvature_unbounded(group.params)
    return InvalidEntityError(group.cls.__name__, group.ids[0], field, value,
                              f"{reason}. The stability guard caps the step by a curvature bound that holds on the "
                              "whole box and cannot run without one (without the guard the System relaxes unguarded)")


def step_cap(lipschitz: float, fraction: float) -> float:
    """The largest step the guard allows: ``fraction · 2/L`` (infinite when L = 0)."""
    return fraction * 2.0 / lipschitz if lipschitz > 0 else math.inf


def coupling_cap_scale(rows: LipschitzRows, couplings: tuple[str, ...], target: float) -> float:
    r"""Largest :math:`s ≤ 1` with :math:`\max_i(D_i + s C_i) ≤` target (D: module rows, C: coupling rows)."""
    local = np.zeros(rows.n)
    coupled = np.zeros(rows.n)
    for k, r in rows.rows.items():
        (coupled if k in couplings else local).__iadd__(r)
    if rows.n == 0 or float((local + coupled).max()) <= target:
        return 1.0
    if float(local.max()) > target:
        raise InvalidEntityError("StabilityConfig", None, "coupling_target", target,
                                 f"is below the module terms' own bound ({float(local.max()):.6g}); "
                                 "scaling couplings cannot reach it")
    live = coupled > 0
    return float(min(1.0, np.min((target - local[live]) / coupled[live])))
