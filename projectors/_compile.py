"""Compile a System into a struct of arrays, and evaluate its energy from them.

Compilation happens once per run: entities are grouped by kind, parameters
become arrays and endpoints become index arrays. Evaluation then loops only
over the (few) kinds, never over entities or edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from complexity_from_constraints.entities import AbstractCoupling, AbstractModule, GateModule, System

from ._backend import AbstractBackend, NumpyBackend


@dataclass(frozen=True)
class ModuleGroup:
    """All modules of one kind: where they sit in η, their parameters and weights."""

    cls: type[AbstractModule]
    ids: tuple[str, ...]
    index: Any
    span: slice | None  # the same positions as a slice when they are contiguous
    params: Mapping[str, Any]
    weight: Any

    def take(self, eta):
        return eta[self.span] if self.span is not None else eta[self.index]


@dataclass(frozen=True)
class CouplingGroup:
    """All couplings of one kind: endpoint indices, parameters and weights."""

    cls: type[AbstractCoupling]
    ids: tuple[str, ...]
    i: Any
    j: Any
    params: Mapping[str, Any]
    weight: Any


@dataclass(frozen=True)
class CompiledSystem:
    """A System as arrays, ready for vectorised evaluation on ``backend``."""

    system: System
    backend: AbstractBackend
    ids: tuple[str, ...]
    modules: tuple[ModuleGroup, ...]
    couplings: tuple[CouplingGroup, ...]
    edge_index: Any  # i of every group, then j of every group, in group order
    gate_ids: tuple[str, ...]
    gate_index: np.ndarray
    gate_threshold: np.ndarray
    constant: float  # γ · N
    position: Mapping[str, int]  # module id → index in η

    @property
    def n(self) -> int:
        return len(self.ids)

    def index_of(self, module_id: str) -> int:
        return self.position[module_id]


def compile_system(system: System, backend: AbstractBackend | None = None) -> CompiledSystem:
    """Group ``system``'s entities by kind into parameter and index arrays.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling
    >>> s = System(id="s", modules=[LandauModule(id="a"), LandauModule(id="b")],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b")])
    >>> cs = compile_system(s)
    >>> (cs.n, [g.cls.__name__ for g in cs.couplings])
    (2, ['QuadraticCoupling'])
    """
    be = backend or NumpyBackend()
    ids = system.module_ids
    position = {mid: k for k, mid in enumerate(ids)}
    fw = system.family_weights

    modules = []
    for cls, members in _by_kind(system.modules).items():
        index = np.fromiter((position[m.id] for m in members), dtype=np.int64, count=len(members))
        contiguous = bool(np.all(np.diff(index) == 1)) if len(index) > 1 else True
        span = slice(int(index[0]), int(index[-1]) + 1) if contiguous else None
        modules.append(ModuleGroup(
            cls=cls, ids=tuple(m.id for m in members), index=be.asarray(index, "int64"), span=span,
            params={p: be.asarray([getattr(m, p) for m in members]) for p in cls.params},
            weight=be.asarray([m.weight * fw.get(m.kind, 1.0) for m in members]),
        ))

    couplings = []
    for cls, members in _by_kind(system.couplings).items():
        couplings.append(CouplingGroup(
            cls=cls, ids=tuple(c.id for c in members),
            i=be.asarray([position[c.i] for c in members], "int64"),
            j=be.asarray([position[c.j] for c in members], "int64"),
            params={p: be.asarray([getattr(c, p) for c in members]) for p in cls.params},
            weight=be.asarray([c.weight * fw.get(c.kind, 1.0) for c in members]),
        ))
    gates = [m for m in system.modules if isinstance(m, GateModule)]
    return CompiledSystem(
        system=system, backend=be, ids=ids, modules=tuple(modules), couplings=tuple(couplings),
        edge_index=edge_index_of(be, couplings),
        gate_ids=tuple(g.id for g in gates),
        gate_index=np.array([position[g.id] for g in gates], dtype=np.int64),
        gate_threshold=np.array([g.threshold for g in gates], dtype=np.float64),
        constant=system.complexity_cost * len(ids),
        position=position,
    )


def edge_index_of(be: AbstractBackend, couplings) -> Any:
    """Endpoint indices for the single scatter-add: every group's ``i``, then every group's ``j``."""
    if not couplings:
        return be.asarray(np.zeros(0, np.int64), "int64")
    return be.asarray(np.concatenate([be.to_numpy(g.i) for g in couplings] + [be.to_numpy(g.j) for g in couplings]),
                      "int64")


def energy_and_gradient(cs: CompiledSystem, eta) -> tuple[float, Any]:
    r"""Total energy and its gradient at ``eta`` (module order of the System).

    .. math::
        𝓕(η) = Σ_{kinds} Σ_i w_i f(η_i) + Σ_{kinds} Σ_e w_e φ(η_{i_e}, η_{j_e}) + γN

    and :math:`∂𝓕/∂η` assembled with one scatter-add over all edge endpoints.
    """
    be, xp = cs.backend, cs.backend.xp
    energy = cs.constant
    grad = xp.zeros_like(eta)
    for g in cs.modules:
        f, df = g.cls.energy_grad(xp, g.take(eta), g.params)
        energy += be.to_float(xp.sum(g.weight * f))
        if g.span is not None:
            grad[g.span] = g.weight * df
        else:
            grad[g.index] = g.weight * df
    if cs.couplings:
        parts_i, parts_j = [], []
        for c in cs.couplings:
            phi, di, dj = c.cls.energy_grad(xp, eta[c.i], eta[c.j], c.params)
            energy += be.to_float(xp.sum(c.weight * phi))
            parts_i.append(c.weight * di)
            parts_j.append(c.weight * dj)
        grad = grad + be.scatter_add(cs.edge_index, xp.concatenate(parts_i + parts_j), cs.n)
    return energy, grad


def energy(cs: CompiledSystem, eta) -> float:
    """Total energy 𝓕(η)."""
    return energy_and_gradient(cs, eta)[0]


def hessian_diagonal(cs: CompiledSystem, eta):
    r"""Diagonal of the Hessian of 𝓕: :math:`w_i f_i''(η_i) + Σ_e w_e ∂^2φ_e/∂η_i^2`."""
    be, xp = cs.backend, cs.backend.xp
    diag = xp.zeros_like(eta)
    for g in cs.modules:
        h = g.weight * g.cls.hessian_diagonal(xp, g.take(eta), g.params)
        if g.span is not None:
            diag[g.span] = h
        else:
            diag[g.index] = h
    if cs.couplings:
        parts_i, parts_j = [], []
        for c in cs.couplings:
            hi, hj = c.cls.hessian_diagonal(xp, eta[c.i], eta[c.j], c.params)
            parts_i.append(c.weight * hi)
            parts_j.append(c.weight * hj)
        diag = diag + be.scatter_add(cs.edge_index, xp.concatenate(parts_i + parts_j), cs.n)
    return diag


def _by_kind(entities) -> dict[type, list]:
    groups: dict[type, list] = {}
    for e in entities:
        groups.setdefault(type(e), []).append(e)
    return groups
