"""Compile a System into a struct of arrays, and evaluate its energy from them.

Compilation happens once per run: entities are grouped by kind, parameters
become arrays and endpoints become index arrays. Evaluation then loops only
over the (few) kinds, never over entities or edges.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from operator import attrgetter, itemgetter
from types import MappingProxyType
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

    Compiling is done once per System content and backend: the result is kept
    in a small LRU keyed by ``(system digest, backend name, device, dtype)``,
    so a second ``relax()`` of the same System does not compile again. What
    is kept is read-only (numpy arrays with ``writeable=False``, mappings as
    read-only views), so no run can change what another one reads; revisions
    and expansion build new arrays. Backends whose arrays cannot be made
    read-only (torch) reuse the cached host arrays and get fresh copies of
    their own on every call.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling
    >>> s = System(id="s", modules=[LandauModule(id="a"), LandauModule(id="b")],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b")])
    >>> cs = compile_system(s)
    >>> (cs.n, [g.cls.__name__ for g in cs.couplings])
    (2, ['QuadraticCoupling'])
    >>> compile_system(s).couplings[0].i is cs.couplings[0].i   # cached, and read-only
    True
    >>> cs.couplings[0].weight.flags.writeable
    False
    """
    be = backend or NumpyBackend()
    digest = system.digest()
    host_key = (digest, "numpy", "cpu", "float64", NumpyBackend)
    if isinstance(be, NumpyBackend):
        key = (digest, be.name, "cpu", str(be.dtype), type(be))
        cs = _CACHE.get(key)
        if cs is None:
            host = _CACHE.get(host_key) if key != host_key else None
            cs = _frozen(_arrays_on(host, be) if host is not None else _compile(system, be))
            _CACHE.put(key, cs)
        return replace(cs, system=system, backend=be)
    host = _CACHE.get(host_key)
    if host is None:
        host = _frozen(_compile(system, NumpyBackend()))
        _CACHE.put(host_key, host)
    return replace(_arrays_on(host, be), system=system)


class _Lru:
    """A small least-recently-used map (compiles of the last few Systems)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, CompiledSystem] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> CompiledSystem | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: CompiledSystem) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_CACHE = _Lru(4)


def clear_compile_cache() -> None:
    """Forget every cached compile (benchmarks use it to time a cold compile)."""
    _CACHE.clear()


def _compile(system: System, be: AbstractBackend) -> CompiledSystem:
    """One pass per kind: members are picked and their fields read by C-level ``map``, not a Python loop."""
    ids = system.module_ids
    n = len(ids)
    position = dict(zip(ids, range(n)))
    where = _Positions(ids, position)
    fw = system.family_weights
    modules = []
    for cls, index, members in _by_kind(system.modules):
        contiguous = bool(np.all(np.diff(index) == 1)) if len(index) > 1 else True
        span = slice(int(index[0]), int(index[-1]) + 1) if contiguous else None
        modules.append(ModuleGroup(
            cls=cls, ids=tuple(map(_ID, members)), index=be.asarray(index, "int64"), span=span,
            params=_params(be, cls, members), weight=_weights(be, cls, members, fw),
        ))
    couplings = []
    for cls, _, members in _by_kind(system.couplings):
        couplings.append(CouplingGroup(
            cls=cls, ids=tuple(map(_ID, members)),
            i=be.asarray(where.of(list(map(_I, members))), "int64"),
            j=be.asarray(where.of(list(map(_J, members))), "int64"),
            params=_params(be, cls, members), weight=_weights(be, cls, members, fw),
        ))
    gate_groups = [g for g in modules if issubclass(g.cls, GateModule)]
    if gate_groups:
        gate_index = np.concatenate([np.asarray(be.to_numpy(g.index), np.int64) for g in gate_groups])
        order = np.argsort(gate_index, kind="stable")  # module order, as the System lists them
        gate_index = gate_index[order]
        gate_ids = _pick(ids, gate_index)
        gate_threshold = np.fromiter(map(_THRESHOLD, _pick(system.modules, gate_index)), np.float64, len(gate_index))
    else:
        gate_index, gate_ids, gate_threshold = np.zeros(0, np.int64), (), np.zeros(0, np.float64)
    return CompiledSystem(
        system=system, backend=be, ids=ids, modules=tuple(modules), couplings=tuple(couplings),
        edge_index=edge_index_of(be, couplings), gate_ids=gate_ids, gate_index=gate_index,
        gate_threshold=gate_threshold, constant=system.complexity_cost * n, position=position,
    )


_ID, _I, _J, _THRESHOLD, _WEIGHT = (attrgetter(name) for name in ("id", "i", "j", "threshold", "weight"))


def _by_kind(entities: tuple) -> list[tuple[type, np.ndarray, tuple]]:
    """(class, positions, members) per kind, kinds in order of first appearance."""
    types = list(map(type, entities))
    classes = list(dict.fromkeys(types))
    if len(classes) == 1:
        return [(classes[0], np.arange(len(entities), dtype=np.int64), tuple(entities))]
    code_of = {cls: k for k, cls in enumerate(classes)}
    codes = np.fromiter(map(code_of.__getitem__, types), np.int64, len(types))
    out = []
    for k, cls in enumerate(classes):
        index = np.flatnonzero(codes == k)
        out.append((cls, index, _pick(entities, index)))
    return out


def _pick(items, index: np.ndarray) -> tuple:
    if len(index) == 0:
        return ()
    picked = itemgetter(*index.tolist())(items)
    return picked if len(index) > 1 else (picked,)


class _Positions:
    """Module id → index in η for many ids at once.

    An endpoint id is usually the very string object of the module's id (pydantic
    keeps the object it was given), so most are found by object address with
    one ``searchsorted``, which never reads the strings; the rest by value.
    """

    def __init__(self, ids: tuple[str, ...], position: Mapping[str, int]):
        address = np.fromiter(map(id, ids), np.uint64, len(ids))
        self.order = np.argsort(address)
        self.sorted = address[self.order]
        self.position = position

    def of(self, ends: list[str]) -> np.ndarray:
        address = np.fromiter(map(id, ends), np.uint64, len(ends))
        k = np.minimum(np.searchsorted(self.sorted, address), len(self.sorted) - 1)
        out = self.order[k]
        miss = np.flatnonzero(self.sorted[k] != address)  # equal addresses: the same live string
        if len(miss):
            out[miss] = np.fromiter(map(self.position.__getitem__, _pick(ends, miss)), np.int64, len(miss))
        return out


def _params(be: AbstractBackend, cls, members: tuple) -> dict[str, Any]:
    return {p: be.asarray(list(map(attrgetter(p), members))) for p in cls.params}


def _weights(be: AbstractBackend, cls, members: tuple, fw: Mapping[str, float]) -> Any:
    weight = np.fromiter(map(_WEIGHT, members), np.float64, len(members))
    family = fw.get(cls.model_fields["kind"].default)
    return be.asarray(weight if family is None else weight * family)


def _arrays_on(host: CompiledSystem, be: AbstractBackend) -> CompiledSystem:
    """A host (numpy float64) compile with its arrays moved to ``be``."""
    def floats(values):
        return {name: be.asarray(v) for name, v in values.items()}

    modules = tuple(replace(g, index=be.asarray(g.index, "int64"), params=floats(g.params), weight=be.asarray(g.weight))
                    for g in host.modules)
    couplings = tuple(replace(c, i=be.asarray(c.i, "int64"), j=be.asarray(c.j, "int64"), params=floats(c.params),
                              weight=be.asarray(c.weight)) for c in host.couplings)
    return replace(host, backend=be, modules=modules, couplings=couplings,
                   edge_index=be.asarray(host.edge_index, "int64"))


def _frozen(cs: CompiledSystem) -> CompiledSystem:
    """``cs`` made fit to share between runs: numpy arrays read-only, mappings read-only views, no System.

    The System is left out so the cache keeps no System alive; a hit attaches the caller's (equal) one.
    """
    def freeze(array):
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
        return array

    def group(g):
        params = MappingProxyType({name: freeze(v) for name, v in g.params.items()})
        if isinstance(g, CouplingGroup):
            return replace(g, i=freeze(g.i), j=freeze(g.j), params=params, weight=freeze(g.weight))
        return replace(g, index=freeze(g.index), params=params, weight=freeze(g.weight))

    return replace(cs, modules=tuple(map(group, cs.modules)), couplings=tuple(map(group, cs.couplings)),
                   edge_index=freeze(cs.edge_index), gate_index=freeze(cs.gate_index),
                   gate_threshold=freeze(cs.gate_threshold), position=MappingProxyType(dict(cs.position)),
                   system=None)


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
    The passes over the arrays are the fewest that give the same bits as the
    plain formula: a kind whose weights are all 1 is not multiplied by them
    (:math:`1·x = x` exactly), an ``antisymmetric`` coupling kind's
    :math:`w∂_iφ` is computed once and scattered to ``j`` negated
    (:math:`w·(-x) = -(w·x)` exactly), and on numpy every weighted value is
    written straight into the one array the scatter reads.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling
    >>> s = System(id="s", modules=[LandauModule(id="a", a=1.0), LandauModule(id="b", a=1.0)],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b", weight=2.0)])
    >>> energy_and_gradient(compile_system(s), np.array([0.5, 0.0]))
    (0.8125, array([ 3.5, -2. ]))
    """
    be, xp = cs.backend, cs.backend.xp
    plan = _plan(cs)
    energy = cs.constant
    grad = None
    for g, unit in zip(cs.modules, plan.unit_modules):
        f, df = g.cls.energy_grad(xp, g.take(eta), g.params)
        energy += be.to_float(xp.sum(f if unit else g.weight * f))
        grad = _placed(xp, grad, eta, g, _owned(df, eta) if unit else g.weight * df)
    if cs.couplings:
        values = _edge_values(xp, plan, eta)
        for k, (c, unit) in enumerate(zip(cs.couplings, plan.unit_couplings)):
            ends = _ends(xp, eta, c)
            if c.cls.antisymmetric:
                phi, di = c.cls.energy_grad_i(xp, *ends, c.params)
                dj = None
            else:
                phi, di, dj = c.cls.energy_grad(xp, *ends, c.params)
            energy += be.to_float(xp.sum(phi if unit else c.weight * phi))
            values = _put(values, plan, k, None if unit else c.weight, di, dj)
        if isinstance(values, list):
            edges = be.scatter_add(cs.edge_index, xp.concatenate(values), cs.n)
        else:
            edges = be.scatter_add(cs.edge_index, values, cs.n)
            plan.spare.append(values)  # the next call writes into it again: no fresh pages to fault in
        grad = edges if grad is None else _added(grad, edges)
    return energy, grad


@dataclass(frozen=True)
class _Plan:
    """What the evaluation of one CompiledSystem reads besides its arrays, worked out once."""

    unit_modules: tuple[bool, ...]  # numpy groups whose weights are all exactly 1
    unit_couplings: tuple[bool, ...]
    offsets: tuple[int, ...]  # where each coupling group's ∂_i values start in the scatter's value array
    sizes: tuple[int, ...]  # its number of edges
    total: int  # number of edges (the ∂_j values start there)
    fused: bool  # numpy float64 and 1-D: the values are written into one preallocated array
    spare: list = field(default_factory=list, compare=False)  # value arrays not in use (one per concurrent caller)


def _plan(cs: CompiledSystem) -> _Plan:
    """The evaluation plan of ``cs``, kept on the object (a new weighting makes a new object, so a new plan)."""
    plan = cs.__dict__.get("_evaluation_plan")
    if plan is None:
        def unit(weight) -> bool:
            return isinstance(weight, np.ndarray) and bool(np.all(weight == 1.0))

        sizes = [len(c.ids) for c in cs.couplings]
        params = [x for c in cs.couplings for x in (c.weight, *c.params.values())]
        fused = cs.backend.xp is np and all(isinstance(x, np.ndarray) and x.dtype == np.float64 for x in params)
        plan = _Plan(tuple(map(unit, (g.weight for g in cs.modules))), tuple(map(unit, (c.weight for c in cs.couplings))),
                     tuple(np.cumsum([0, *sizes[:-1]]).tolist()) if sizes else (), tuple(sizes), sum(sizes), fused)
        object.__setattr__(cs, "_evaluation_plan", plan)  # a cache, not a field: replace() and equality ignore it
    return plan


def _owned(values, eta):
    """``values`` if the evaluation may keep and change it (a fresh numpy array), else a copy."""
    if isinstance(values, np.ndarray) and values.base is None and values.flags.writeable and values is not eta:
        return values
    return values * 1.0 if not isinstance(values, np.ndarray) else values.copy()


def _edge_values(xp, plan: _Plan, eta):
    """Where the weighted endpoint derivatives go: one float64 array on numpy, else a list of parts."""
    if plan.fused and isinstance(eta, np.ndarray) and eta.dtype == np.float64 and eta.ndim == 1:
        try:
            return plan.spare.pop()  # atomic: two threads evaluating at once never share one
        except IndexError:
            return np.empty(2 * plan.total, np.float64)
    return []


def _put(values, plan: _Plan, k: int, weight, di, dj):
    """Group ``k``'s ``w·∂_iφ`` among the ∂_i values and ``w·∂_jφ`` (``-w·∂_iφ`` when ``dj`` is None) among the ∂_j.

    ``weight`` is None for a group whose weights are all 1.
    """
    if isinstance(values, list):
        wi = di if weight is None else weight * di
        values.append(-wi if dj is None else dj if weight is None else weight * dj)
        values.insert(k, wi)
        return values
    at, m = plan.offsets[k], plan.sizes[k]
    first, second = values[at:at + m], values[plan.total + at:plan.total + at + m]
    if weight is None:
        first[...] = di
    else:
        np.multiply(weight, di, out=first)
    if dj is None:
        np.negative(first, out=second)
    elif weight is None:
        second[...] = dj
    else:
        np.multiply(weight, dj, out=second)
    return values


def energy(cs: CompiledSystem, eta) -> float:
    """Total energy 𝓕(η)."""
    return energy_and_gradient(cs, eta)[0]


def hessian_diagonal(cs: CompiledSystem, eta):
    r"""Diagonal of the Hessian of 𝓕: :math:`w_i f_i''(η_i) + Σ_e w_e ∂^2φ_e/∂η_i^2`."""
    be, xp = cs.backend, cs.backend.xp
    diag = None
    for g in cs.modules:
        diag = _placed(xp, diag, eta, g, g.weight * g.cls.hessian_diagonal(xp, g.take(eta), g.params))
    if cs.couplings:
        parts = [(c.weight, *c.cls.hessian_diagonal(xp, *_ends(xp, eta, c), c.params)) for c in cs.couplings]
        diag = _added(diag, be.scatter_add(cs.edge_index, _weighted(xp, parts), cs.n))
    return diag


# The helpers below save array passes without changing a single bit of the result:
# every product is the same product, and every sum adds the same numbers in the same order.

def _placed(xp, out, eta, group: ModuleGroup, values):
    """``values`` written at ``group``'s positions of ``out`` (a fresh array the first time)."""
    if out is None:
        if (group.span is not None and group.span.start == 0 and values.shape == eta.shape
                and values.dtype == eta.dtype):
            return values  # one kind holds every module: its weighted values are the whole array already
        out = xp.zeros_like(eta)
    out[group.span if group.span is not None else group.index] = values
    return out


def _added(values, edges):
    """``values + edges``, in place when the dtypes agree (the same sums, one array fewer)."""
    if values.dtype != edges.dtype:
        return values + edges
    values += edges
    return values


def _ends(xp, eta, c: CouplingGroup):
    if xp is np:
        return np.take(eta, c.i), np.take(eta, c.j)  # a plain gather, faster than fancy indexing
    return eta[c.i], eta[c.j]


def _weighted(xp, parts: list[tuple[Any, Any, Any]]):
    """``concatenate([w·d_i for each group] + [w·d_j for each group])``.

    With numpy float64 the products are written straight into one array, instead
    of into temporaries that ``concatenate`` then copies.
    """
    if xp is np and all(isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1
                        for part in parts for x in part):
        total = sum(len(w) for w, _, _ in parts)
        out = np.empty(2 * total, np.float64)
        at = 0
        for w, di, dj in parts:
            np.multiply(w, di, out=out[at:at + len(w)])
            np.multiply(w, dj, out=out[total + at:total + at + len(w)])
            at += len(w)
        return out
    return xp.concatenate([w * di for w, di, _ in parts] + [w * dj for w, _, dj in parts])
