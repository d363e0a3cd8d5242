"""Changing a compiled System mid-run: entity revisions and energy-gated expansion.

Both update the struct of arrays incrementally (only the arrays of the kind
that changed are copied), and both are recorded as events by the coordinator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from complexity_from_constraints.entities import (
    AbstractEntity,
    AbstractModule,
    Candidate,
    ExpansionConfig,
    GateModule,
    InvalidEntityError,
    ModuleArray,
    System,
)

from ._compile import CompiledSystem, CouplingGroup, ModuleGroup, compile_system, edge_index_of, energy_and_gradient


def revise(cs: CompiledSystem, entity_id: str, changes: dict[str, Any]) -> tuple[CompiledSystem, AbstractEntity]:
    """Apply ``changes`` to one entity (validated by ``evolve``) and update the compiled arrays.

    A change to the System itself (``entity_id`` is the System's id: family
    weights, complexity cost) recompiles; anything else copies only the
    arrays of the entity's kind group.
    """
    system = cs.system
    if entity_id == system.id:
        new_system = system.evolve(**changes)
        return compile_system(new_system, cs.backend), new_system  # type: ignore[arg-type]
    if system.has_arrays:
        found = system.array_of(entity_id)
        if found is not None:
            return _revise_member(cs, *found, changes)
        if any(a.id == entity_id for a in (*system.module_arrays, *system.coupling_arrays)):
            return _revise_array(cs, entity_id, changes)
    old = _find(system, entity_id)
    new = old.evolve(**changes)
    if isinstance(new, AbstractModule):
        modules = tuple(new if m.id == entity_id else m for m in system.modules)
        new_system = system.evolve(modules=modules)
        groups = tuple(_revised_group(cs, g, new) if entity_id in g.ids else g for g in cs.modules)
        cs2 = replace(cs, system=new_system, modules=groups)
        if isinstance(new, GateModule):
            k = cs.gate_ids.index(entity_id)
            threshold = cs.gate_threshold.copy()
            threshold[k] = new.threshold
            cs2 = replace(cs2, gate_threshold=threshold)
        return cs2, new
    couplings = tuple(new if c.id == entity_id else c for c in system.couplings)
    new_system = system.evolve(couplings=couplings)  # validates the endpoints again
    groups = tuple(_revised_group(cs, g, new) if entity_id in g.ids else g for g in cs.couplings)
    return replace(cs, system=new_system, couplings=groups, edge_index=edge_index_of(cs.backend, groups)), new


def _revise_member(cs: CompiledSystem, array, k: int, changes: dict[str, Any]) -> tuple[CompiledSystem, AbstractEntity]:
    """Member ``k`` of an array changes: the array gets version + 1, the compiled arrays change at one position.

    Returns the member as a plain entity (its version the array's), as ``EntityRevised`` records it.
    """
    system = cs.system
    if "i" in changes or "j" in changes:
        end = "i" if "i" in changes else "j"
        raise InvalidEntityError("Revision", array.member_id(k), f"changes.{end}", changes[end],
                                 "a member of a CouplingArray keeps its endpoints; revise the array to move them")
    new_array = array.with_member(k, changes)
    field = "module_arrays" if isinstance(new_array, ModuleArray) else "coupling_arrays"
    arrays = tuple(new_array if a.id == array.id else a for a in getattr(system, field))
    new_system = system.evolve(**{field: arrays})
    if isinstance(new_array, ModuleArray):
        member = new_array.member(k)
        groups = tuple(_revised_group(cs, g, member) if member.id in g.ids else g for g in cs.modules)
        cs2 = replace(cs, system=new_system, modules=groups)
        if isinstance(member, GateModule) and "threshold" in changes:
            threshold = cs.gate_threshold.copy()
            threshold[cs.gate_ids.index(member.id)] = member.threshold
            cs2 = replace(cs2, gate_threshold=threshold)
        return cs2, member
    member = new_array.member(k, system.module_ids)
    groups = tuple(_revised_group(cs, g, member) if member.id in g.ids else g for g in cs.couplings)
    return replace(cs, system=new_system, couplings=groups), member


def _revise_array(cs: CompiledSystem, array_id: str, changes: dict[str, Any]) -> tuple[CompiledSystem, AbstractEntity]:
    """A whole array changes (``values``, endpoints): re-validated, and the System compiled again."""
    system = cs.system
    field = "module_arrays" if any(a.id == array_id for a in system.module_arrays) else "coupling_arrays"
    new = next(a for a in getattr(system, field) if a.id == array_id).evolve(**changes)
    new_system = system.evolve(**{field: tuple(new if a.id == array_id else a for a in getattr(system, field))})
    return compile_system(new_system, cs.backend), new


def _find(system: System, entity_id: str) -> AbstractEntity:
    for entity in (*system.modules, *system.couplings):
        if entity.id == entity_id:
            return entity
    raise InvalidEntityError("Revision", None, "entity_id", entity_id, f"no such entity in System {system.id!r}")


def _revised_group(cs: CompiledSystem, group, entity):
    be, k = cs.backend, group.ids.index(entity.id)

    def put(array, value):
        host = np.array(be.to_numpy(array), copy=True)
        host[k] = value
        return be.asarray(host, str(host.dtype))

    params = {name: put(group.params[name], getattr(entity, name)) for name in group.cls.params}
    weight = put(group.weight, entity.weight * cs.system.family_weights.get(entity.kind, 1.0))
    if isinstance(group, CouplingGroup):
        return replace(group, params=params, weight=weight,
                       i=put(group.i, cs.position[entity.i]), j=put(group.j, cs.position[entity.j]))
    return replace(group, params=params, weight=weight)


def extend(cs: CompiledSystem, candidate: Candidate) -> CompiledSystem:
    """Append the candidate's module (at index N) and couplings to the compiled arrays."""
    be, module = cs.backend, candidate.module
    system = cs.system.evolve(modules=cs.system.modules + (module,), couplings=cs.system.couplings + candidate.couplings)
    n = cs.n
    position = {**cs.position, module.id: n}
    fw = system.family_weights

    def grow(array, values, dtype="float64"):
        return be.asarray(np.concatenate([be.to_numpy(array), np.asarray(values, dtype=dtype)]), dtype)

    modules, placed = [], False
    for g in cs.modules:
        if g.cls is type(module):
            span = slice(g.span.start, n + 1) if g.span is not None and g.span.stop == n else None
            g = replace(g, ids=g.ids + (module.id,), index=grow(g.index, [n], "int64"), span=span,
                        params={p: grow(g.params[p], [getattr(module, p)]) for p in g.cls.params},
                        weight=grow(g.weight, [module.weight * fw.get(module.kind, 1.0)]))
            placed = True
        modules.append(g)
    if not placed:
        modules.append(ModuleGroup(type(module), (module.id,), be.asarray([n], "int64"), slice(n, n + 1),
                                   {p: be.asarray([getattr(module, p)]) for p in type(module).params},
                                   be.asarray([module.weight * fw.get(module.kind, 1.0)])))

    couplings = list(cs.couplings)
    for c in candidate.couplings:
        ends = ([position[c.i]], [position[c.j]])
        weight = [c.weight * fw.get(c.kind, 1.0)]
        for k, g in enumerate(couplings):
            if g.cls is type(c):
                couplings[k] = replace(g, ids=g.ids + (c.id,), i=grow(g.i, ends[0], "int64"), j=grow(g.j, ends[1], "int64"),
                                       params={p: grow(g.params[p], [getattr(c, p)]) for p in g.cls.params},
                                       weight=grow(g.weight, weight))
                break
        else:
            couplings.append(CouplingGroup(type(c), (c.id,), be.asarray(ends[0], "int64"), be.asarray(ends[1], "int64"),
                                           {p: be.asarray([getattr(c, p)]) for p in type(c).params}, be.asarray(weight)))

    gate = isinstance(module, GateModule)
    return replace(
        cs, system=system, ids=cs.ids + (module.id,), modules=tuple(modules), couplings=tuple(couplings),
        edge_index=edge_index_of(be, couplings),
        gate_ids=cs.gate_ids + ((module.id,) if gate else ()),
        gate_index=np.append(cs.gate_index, [n]) if gate else cs.gate_index,
        gate_threshold=np.append(cs.gate_threshold, [module.threshold]) if gate else cs.gate_threshold,  # type: ignore[attr-defined]
        constant=system.complexity_cost * (n + 1), position=position,
    )


@dataclass(frozen=True)
class CandidateEvaluation:
    """A candidate's ΔF after its local relaxation, and the state it would bring."""

    candidate: Candidate
    delta_f: float
    compiled: CompiledSystem
    eta: Any  # the extended state (existing η unchanged, the new η relaxed)
    energy: float
    parent_id: str | None

    def admitted(self, tau: float) -> bool:
        return self.delta_f < -tau


def evaluate_candidate(cs: CompiledSystem, eta, candidate: Candidate, config: ExpansionConfig) -> CandidateEvaluation:
    r"""ΔF_new = 𝓕_new(η, η_new*) − 𝓕(η), with η_new* from a local relaxation (to ``local_tol``, at most ``local_steps``).

    Both terms are the System's own energy 𝓕 (its configured weights, no run
    scaling: weightings, homotopy ramps and the coupling cap shape how a
    run descends, not what a module is worth), so a module that adds nothing
    has ΔF = γ exactly. Only the new η moves: projected gradient steps on its
    coordinate, each kept only if 𝓕 decreases (else the step halves). γ
    enters through the extended System's ``complexity_cost · (N + 1)``.
    """
    be = cs.backend
    energy = energy_and_gradient(cs, eta)[0]
    new_cs = extend(cs, candidate)
    n = cs.n
    ext = be.asarray(np.append(be.to_numpy(eta), candidate.module.initial_eta()))
    e_new, grad = energy_and_gradient(new_cs, ext)
    step = config.local_step_size
    for _ in range(config.local_steps):
        if config.local_tol > 0 and _projected_gradient(be, ext, grad, n) <= config.local_tol:
            break
        trial_value = min(1.0, max(0.0, float(be.to_numpy(ext)[n]) - step * float(be.to_numpy(grad)[n])))
        trial = be.asarray(np.append(be.to_numpy(ext)[:n], trial_value))
        e_trial, g_trial = energy_and_gradient(new_cs, trial)
        if e_trial < e_new:
            ext, e_new, grad = trial, e_trial, g_trial
        else:
            step *= 0.5
    parent = _parent(new_cs, ext, candidate)
    return CandidateEvaluation(candidate, e_new - energy, new_cs, ext, e_new, parent)


def _projected_gradient(be, eta, grad, n: int) -> float:
    """|clip(η_n − g_n) − η_n|: the new η's projected-gradient norm (0 at a minimum on [0, 1])."""
    value = float(be.to_numpy(eta)[n])
    return abs(min(1.0, max(0.0, value - float(be.to_numpy(grad)[n]))) - value)


def _parent(cs: CompiledSystem, eta, candidate: Candidate) -> str | None:
    """The existing module whose coupling to the newcomer has the most negative energy."""
    be, new_id = cs.backend, candidate.module.id
    best, parent = 0.0, None
    host = be.to_numpy(eta)
    for c in candidate.couplings:
        other = c.j if c.i == new_id else c.i
        if other == new_id:
            continue
        cls = type(c)
        p = {name: np.array([getattr(c, name)]) for name in cls.params}
        phi = cls.energy_grad(np, host[[cs.position[c.i]]], host[[cs.position[c.j]]], p)[0][0]
        contribution = float(phi) * c.weight * cs.system.family_weights.get(c.kind, 1.0)
        if contribution < best:
            best, parent = contribution, other
    return parent


def check_candidates(system: System, candidates: tuple[Candidate, ...]) -> None:
    """Fail before a run starts if a candidate could never be added (ids, endpoints, kinds)."""
    if candidates:
        system.evolve(modules=system.modules + tuple(c.module for c in candidates),
                      couplings=system.couplings + tuple(x for c in candidates for x in c.couplings))
