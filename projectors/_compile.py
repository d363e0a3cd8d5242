"""Compile a System into a struct of arrays, and evaluate its energy from them.

Compilation happens once per System content: entities are grouped by kind,
parameters become arrays and endpoints become index arrays; an array-backed
entity (:class:`~entities.ModuleArray`, :class:`~entities.CouplingArray`)
contributes its arrays whole, so nothing loops over its members. Evaluation
then loops only over the (few) kinds, never over entities or edges.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np

from complexity_from_constraints.entities import (
    AbstractCoupling,
    AbstractModule,
    DirectedHingeCoupling,
    EntityIds,
    GateModule,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    System,
)

from ._backend import AbstractBackend, NumpyBackend


@dataclass(frozen=True)
class ModuleGroup:
    """All modules of one kind: where they sit in η, their parameters and weights."""

    cls: type[AbstractModule]
    ids: EntityIds | tuple[str, ...]
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
    ids: EntityIds | tuple[str, ...]
    i: Any
    j: Any
    params: Mapping[str, Any]
    weight: Any


@dataclass(frozen=True)
class CompiledSystem:
    """A System as arrays, ready for vectorised evaluation on ``backend``."""

    system: System
    backend: AbstractBackend
    ids: EntityIds | tuple[str, ...]
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
    in an LRU keyed by ``(system digest, backend name, device, dtype)`` and
    bounded by the bytes of its arrays (:func:`set_compile_cache_limit`), so a
    second ``relax()`` of the same System does not compile again. What
    is kept is read-only (numpy arrays with ``writeable=False``, mappings as
    read-only views), so no run can change what another one reads; revisions
    and expansion build new arrays. Each coupling group's ``i`` and ``j`` are
    views into ``edge_index``, and index arrays are read-only views of arrays
    that only the evaluation reads through (:func:`_gather_index`). Backends
    whose arrays cannot be made read-only (torch) reuse the cached host arrays
    and get fresh copies of their own on every call.

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
    """A least-recently-used map of compiles, bounded by the bytes of their arrays (a 10⁶-module compile is ~10² MB)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[CompiledSystem, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> CompiledSystem | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: tuple, value: CompiledSystem) -> None:
        size = compiled_bytes(value)
        with self._lock:
            self._items[key] = (value, size)
            self._items.move_to_end(key)
            while len(self._items) > 1 and self.bytes > self.max_bytes:
                self._items.popitem(last=False)
            if size > self.max_bytes:  # larger than the whole cache: not kept at all
                self._items.pop(key, None)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


COMPILE_CACHE_BYTES = 1 << 30
"""The default bound on the compile cache: 1 GiB of arrays."""

_CACHE = _Lru(COMPILE_CACHE_BYTES)


def clear_compile_cache() -> None:
    """Forget every cached compile (benchmarks use it to time a cold compile)."""
    _CACHE.clear()


def set_compile_cache_limit(max_bytes: int) -> int:
    """Bound the compile cache to ``max_bytes`` of arrays (0 turns it off); return the previous bound.

    >>> previous = set_compile_cache_limit(0)
    >>> set_compile_cache_limit(previous)
    0
    """
    if max_bytes < 0:
        raise InvalidEntityError("compile cache", None, "max_bytes", max_bytes, "must be >= 0")
    previous, _CACHE.max_bytes = _CACHE.max_bytes, max_bytes
    with _CACHE._lock:
        while _CACHE._items and _CACHE.bytes > max_bytes:
            _CACHE._items.popitem(last=False)
    return previous


def compiled_bytes(cs: CompiledSystem) -> int:
    """The bytes of a compile's numpy arrays (what the cache counts); memory that several of them view counts once."""
    arrays = [cs.edge_index, cs.gate_index, cs.gate_threshold]
    for g in cs.modules:
        arrays += [g.index, g.weight, *g.params.values()]
    for c in cs.couplings:
        arrays += [c.i, c.j, c.weight, *c.params.values()]
    owners = {}
    for a in arrays:
        if isinstance(a, np.ndarray):
            owner = a.base if isinstance(a.base, np.ndarray) else a
            owners[id(owner)] = owner.nbytes
    return sum(owners.values()) + 64 * len(cs.gate_ids)


class IdPositions(Mapping[str, int]):
    """Module id → position in η, read from the ids themselves (a member's position is arithmetic), never a dict of N."""

    __slots__ = ("ids",)

    def __init__(self, ids):
        self.ids = ids

    def __getitem__(self, module_id: str) -> int:
        try:
            return self.ids.index(module_id)
        except ValueError:
            raise KeyError(module_id) from None

    def __contains__(self, module_id: object) -> bool:
        return module_id in self.ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def _compile(system: System, be: AbstractBackend) -> CompiledSystem:
    """One pass per kind: arrays are concatenated whole; plain members are picked and read by C-level ``map``."""
    if system.has_arrays:
        return _compile_with_arrays(system, be)
    ids = system.module_ids
    n = len(ids)
    where = _Positions(tuple(ids), IdPositions(ids), 0)
    fw = system.family_weights
    modules = []
    for cls, index, members in _by_kind(system.modules):
        modules.append(ModuleGroup(
            cls=cls, ids=tuple(map(_ID, members)), index=be.asarray(index, "int64"), span=_span(index),
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
        gate_ids = _pick(tuple(ids), gate_index)
        gate_threshold = np.fromiter(map(_THRESHOLD, _pick(system.modules, gate_index)), np.float64, len(gate_index))
    else:
        gate_index, gate_ids, gate_threshold = np.zeros(0, np.int64), (), np.zeros(0, np.float64)
    couplings, edge_index = _on_edge_index(be, couplings)
    return CompiledSystem(
        system=system, backend=be, ids=ids, modules=tuple(modules), couplings=couplings,
        edge_index=edge_index, gate_ids=gate_ids, gate_index=gate_index,
        gate_threshold=gate_threshold, constant=system.complexity_cost * n, position=IdPositions(ids),
    )


def _span(index: np.ndarray) -> slice | None:
    """The positions as a slice when they are contiguous."""
    contiguous = bool(np.all(np.diff(index) == 1)) if len(index) > 1 else True
    return slice(int(index[0]), int(index[-1]) + 1) if contiguous and len(index) else None


def _compile_with_arrays(system: System, be: AbstractBackend) -> CompiledSystem:
    """A System holding arrays: per kind, its arrays' columns (and its plain members') concatenated.

    Module kinds (and coupling kinds) come in order of first appearance, arrays
    before plain entities, as in η order.
    """
    ids = system.module_ids
    n = len(ids)
    base = n - len(system.modules)  # plain modules follow every array member
    plain_ids = tuple(m.id for m in system.modules)
    where = _Positions(plain_ids, IdPositions(ids), base)
    fw = system.family_weights
    plain_modules = {cls: (index + base, members) for cls, index, members in _by_kind(system.modules)}
    module_parts: dict[type, list] = {}
    offset = 0
    for a in system.module_arrays:
        module_parts.setdefault(a.member_class, []).append((a, offset))
        offset += a.n
    for cls in plain_modules:
        module_parts.setdefault(cls, [])
    modules, gates = [], []
    for cls, arrays in module_parts.items():
        index_parts = [np.arange(off, off + a.n, dtype=np.int64) for a, off in arrays]
        params = {p: [a.column(p) for a, _ in arrays] for p in cls.params}
        weight = [a.column("weight") for a, _ in arrays]
        id_segments: list[tuple] = [(a.id, 0, a.n) for a, _ in arrays]
        threshold = [a.column("threshold") for a, _ in arrays] if issubclass(cls, GateModule) else []
        if cls in plain_modules:
            index, members = plain_modules[cls]
            index_parts.append(index)
            for p in cls.params:
                params[p].append(np.asarray(list(map(attrgetter(p), members)), np.float64))
            weight.append(np.fromiter(map(_WEIGHT, members), np.float64, len(members)))
            id_segments.append(tuple(map(_ID, members)))
            if threshold:
                threshold.append(np.fromiter(map(_THRESHOLD, members), np.float64, len(members)))
        index = np.concatenate(index_parts)
        group = ModuleGroup(cls=cls, ids=EntityIds(id_segments), index=be.asarray(index, "int64"), span=_span(index),
                            params={p: be.asarray(np.concatenate(v)) for p, v in params.items()},
                            weight=be.asarray(_family(cls, np.concatenate(weight), fw)))
        modules.append(group)
        if threshold:
            gates.append((index, np.concatenate(threshold)))
    plain_couplings = {cls: members for cls, _, members in _by_kind(system.couplings)}
    coupling_parts: dict[type, list] = {}
    for c in system.coupling_arrays:
        coupling_parts.setdefault(c.member_class, []).append(c)
    for cls in plain_couplings:
        coupling_parts.setdefault(cls, [])
    couplings = []
    for cls, arrays in coupling_parts.items():
        i, j = [c.i for c in arrays], [c.j for c in arrays]
        params = {p: [c.column(p) for c in arrays] for p in cls.params}
        weight = [c.column("weight") for c in arrays]
        id_segments = [(c.id, 0, len(c)) for c in arrays]
        members = plain_couplings.get(cls, ())
        if members:
            i.append(where.of(list(map(_I, members))))
            j.append(where.of(list(map(_J, members))))
            for p in cls.params:
                params[p].append(np.asarray(list(map(attrgetter(p), members)), np.float64))
            weight.append(np.fromiter(map(_WEIGHT, members), np.float64, len(members)))
            id_segments.append(tuple(map(_ID, members)))
        couplings.append(CouplingGroup(
            cls=cls, ids=EntityIds(id_segments), i=be.asarray(np.concatenate(i), "int64"),
            j=be.asarray(np.concatenate(j), "int64"), params={p: be.asarray(np.concatenate(v)) for p, v in params.items()},
            weight=be.asarray(_family(cls, np.concatenate(weight), fw))))
    if gates:
        gate_index = np.concatenate([g[0] for g in gates])
        order = np.argsort(gate_index, kind="stable")
        gate_index, gate_threshold = gate_index[order], np.concatenate([g[1] for g in gates])[order]
        gate_ids = ids.take(gate_index)
    else:
        gate_index, gate_ids, gate_threshold = np.zeros(0, np.int64), (), np.zeros(0, np.float64)
    couplings, edge_index = _on_edge_index(be, couplings)
    return CompiledSystem(
        system=system, backend=be, ids=ids, modules=tuple(modules), couplings=couplings,
        edge_index=edge_index, gate_ids=gate_ids, gate_index=gate_index,
        gate_threshold=gate_threshold, constant=system.complexity_cost * n, position=IdPositions(ids),
    )


def _family(cls, weight: np.ndarray, fw: Mapping[str, float]) -> np.ndarray:
    family = fw.get(cls.model_fields["kind"].default)
    return weight if family is None else weight * family


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

    def __init__(self, ids: tuple[str, ...], position: Mapping[str, int], base: int):
        address = np.fromiter(map(id, ids), np.uint64, len(ids))
        self.order = np.argsort(address) + base  # ``ids`` are the plain modules, at ``base`` onwards in η
        self.sorted = address[self.order - base]
        self.position = position

    def of(self, ends: list[str]) -> np.ndarray:
        address = np.fromiter(map(id, ends), np.uint64, len(ends))
        if not len(self.sorted):
            return np.fromiter(map(self.position.__getitem__, ends), np.int64, len(ends))
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

    def viewed(index):  # a read-only view; the writable array under it is read by the evaluation only
        if isinstance(index, np.ndarray) and index.flags.writeable:
            index = index.view()
            index.setflags(write=False)
        return index

    def group(g):
        params = MappingProxyType({name: freeze(v) for name, v in g.params.items()})
        if isinstance(g, CouplingGroup):
            return replace(g, i=viewed(g.i), j=viewed(g.j), params=params, weight=freeze(g.weight))
        return replace(g, index=freeze(g.index), params=params, weight=freeze(g.weight))

    return replace(cs, modules=tuple(map(group, cs.modules)), couplings=tuple(map(group, cs.couplings)),
                   edge_index=viewed(cs.edge_index), gate_index=freeze(cs.gate_index),
                   gate_threshold=freeze(cs.gate_threshold), system=None)


def _gather_index(index):
    """``index``, or the same memory through the writable array that ``index`` is a read-only view of (:func:`_frozen`).

    numpy's ``take`` and ``bincount`` ask for a well-behaved index array, and
    well-behaved includes writeable: they copy a read-only one at every call
    (a pass as long as the gather itself). They only read it, so the evaluation
    hands them a writable view of the array under a cached compile's read-only one.
    """
    if isinstance(index, np.ndarray) and not index.flags.writeable:
        writable = index.view()
        try:
            writable.setflags(write=True)  # numpy allows it where the memory's owner is writable
        except ValueError:
            return index
        return writable
    return index


def _on_edge_index(be: AbstractBackend, couplings: list[CouplingGroup]) -> tuple[tuple[CouplingGroup, ...], Any]:
    """The edge index, and ``couplings`` with their ``i`` and ``j`` as views into it.

    The gathers of the endpoints and the scatter-add then read one index array
    instead of two copies of it (half the index bytes to keep in cache).
    """
    edge_index = edge_index_of(be, couplings)
    if not isinstance(edge_index, np.ndarray):
        return tuple(couplings), edge_index
    total, at, out = len(edge_index) // 2, 0, []
    for c in couplings:
        m = len(c.i)
        out.append(replace(c, i=edge_index[at:at + m], j=edge_index[total + at:total + at + m]))
        at += m
    return tuple(out), edge_index


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
    written straight into the one array the scatter reads. On numpy float64
    the built-in kinds (Landau, quadratic, directed hinge) run their own
    formula's operations in place, with their constant factors worked out once.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling
    >>> s = System(id="s", modules=[LandauModule(id="a", a=1.0), LandauModule(id="b", a=1.0)],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b", weight=2.0)])
    >>> energy_and_gradient(compile_system(s), np.array([0.5, 0.0]))
    (0.8125, array([ 3.5, -2. ]))
    """
    plan = _plan(cs)
    if plan.host is not None and isinstance(eta, np.ndarray) and eta.dtype == np.float64 and eta.ndim == 1:
        return _on_host(cs, plan, eta)
    be, xp = cs.backend, cs.backend.xp
    host = plan.fused and isinstance(eta, np.ndarray) and eta.dtype == np.float64 and eta.ndim == 1
    energy = cs.constant
    grad = None
    for g, unit, kernel in zip(cs.modules, plan.unit_modules, plan.module_kernels):
        if host and kernel is not None:
            e, df = kernel[0](g.take(eta), None if unit else g.weight, *kernel[1:])
            energy += e
            grad = _placed(xp, grad, eta, g, df)
            continue
        f, df = g.cls.energy_grad(xp, g.take(eta), g.params)
        energy += be.to_float(xp.sum(f if unit else g.weight * f))
        grad = _placed(xp, grad, eta, g, _owned(df, eta) if unit else g.weight * df)
    if cs.couplings:
        values = _edge_values(xp, plan, eta)
        for k, (c, unit, kernel) in enumerate(zip(cs.couplings, plan.unit_couplings, plan.coupling_kernels)):
            i, j = plan.ends[k]
            if kernel is not None and not isinstance(values, list):
                first, second = plan.slices[k]
                energy += kernel(eta.take(i), eta.take(j), None if unit else c.weight, values[first], values[second])
                continue
            ends = _ends(xp, eta, i, j)
            if c.cls.antisymmetric:
                phi, di = c.cls.energy_grad_i(xp, *ends, c.params)
                dj = None
            else:
                phi, di, dj = c.cls.energy_grad(xp, *ends, c.params)
            energy += be.to_float(xp.sum(phi if unit else c.weight * phi))
            values = _put(values, plan, k, None if unit else c.weight, di, dj)
        if isinstance(values, list):
            edges = be.scatter_add(plan.edge_index, xp.concatenate(values), cs.n)
        else:
            edges = be.scatter_add(plan.edge_index, values, cs.n)
            plan.spare.append(values)  # the next call writes into it again: no fresh pages to fault in
        grad = edges if grad is None else _added(grad, edges)
    return energy, grad


def _on_host(cs: CompiledSystem, plan: _Plan, eta: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`energy_and_gradient` when every kind has its in-place formula: the same calls, in the same order."""
    energy = cs.constant
    grad = None
    for kernel, group, arguments in plan.host[0]:
        e, df = kernel(group.take(eta), *arguments)
        energy += e
        grad = _placed(np, grad, eta, group, df)
    if plan.host[1]:
        try:
            values = plan.spare.pop()  # atomic: two threads evaluating at once never share one
        except IndexError:
            values = np.empty(2 * plan.total, np.float64)
        for kernel, i, j, weight, first, second in plan.host[1]:
            energy += kernel(eta.take(i), eta.take(j), weight, values[first], values[second])
        edges = cs.backend.scatter_add(plan.edge_index, values, cs.n)
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
    module_kernels: tuple[tuple | None, ...] = ()  # (in-place formula, its constants) of a built-in kind, on the host
    coupling_kernels: tuple[Any, ...] = ()  # the in-place formula of a built-in antisymmetric kind, on the host
    slices: tuple[tuple[slice, slice], ...] = ()  # each coupling group's ∂_i and ∂_j places in the value array
    ends: tuple[tuple[Any, Any], ...] = ()  # each coupling group's i and j, as the gathers read them (_gather_index)
    edge_index: Any = None  # the System's edge_index, as the scatter-add reads it
    host: tuple | None = None  # when every kind has its in-place formula: each module kernel's and coupling kernel's call
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
        offsets = tuple(np.cumsum([0, *sizes[:-1]]).tolist()) if sizes else ()
        total = sum(sizes)
        module_kernels = tuple(_module_kernel(g) if fused else None for g in cs.modules)
        coupling_kernels = tuple(_HOST_COUPLING_KERNELS.get(c.cls.energy_grad_i) if fused and c.cls.antisymmetric
                                 else None for c in cs.couplings)
        slices = tuple((slice(at, at + m), slice(total + at, total + at + m)) for at, m in zip(offsets, sizes))
        ends = tuple((_gather_index(c.i), _gather_index(c.j)) for c in cs.couplings)
        unit_modules = tuple(map(unit, (g.weight for g in cs.modules)))
        unit_couplings = tuple(map(unit, (c.weight for c in cs.couplings)))
        host = None
        if fused and all(k is not None for k in (*module_kernels, *coupling_kernels)):
            host = (tuple((k[0], g, (None if u else g.weight, *k[1:]))
                          for g, u, k in zip(cs.modules, unit_modules, module_kernels)),
                    tuple((k, i, j, None if u else c.weight, *ij)
                          for c, u, k, (i, j), ij in zip(cs.couplings, unit_couplings, coupling_kernels, ends, slices)))
        plan = _Plan(unit_modules, unit_couplings, offsets, tuple(sizes), total, fused, module_kernels, coupling_kernels,
                     slices, ends, _gather_index(cs.edge_index), host)
        object.__setattr__(cs, "_evaluation_plan", plan)  # a cache, not a field: replace() and equality ignore it
    return plan


def _host_vector(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1


def _module_kernel(g: ModuleGroup) -> tuple | None:
    """The in-place formula of ``g``'s kind with its constants, when the kind is a built-in one and its arrays fit."""
    found = _HOST_MODULE_KERNELS.get(g.cls.energy_grad)
    size = len(g.ids)
    if found is None or not all(_host_vector(x) and len(x) == size for x in (g.weight, *g.params.values())):
        return None
    kernel, constants = found
    return (kernel, *constants(g.params))


# The in-place formulas of the built-in kinds on numpy float64: each performs its kind's operations (the
# ``energy_grad`` of entities) in the same order, then the weighting, writing into arrays it owns, so every
# bit is the one the kind's own formula gives. Products and sums commute exactly; nothing is re-associated;
# ``x.take(i)`` is the very call ``np.take`` makes, and ``np.add.reduce(x, None)`` and ``np.maximum(x, 0)`` are what
# ``x.sum()`` and ``x.clip(0, None)`` call (without a Python frame on the way).

_sum = np.add.reduce


def _landau(eta, weight, a, b, h, two_a, four_b):
    """``LandauModule.energy_grad`` weighted: (Σ w·f, w·f') with f = η²(a + bη²) − hη, f' = η(2a + 4bη²) − h."""
    e2 = np.multiply(eta, eta)
    f = np.multiply(b, e2)
    f += a
    f *= e2
    df = np.multiply(h, eta)
    f -= df
    if weight is not None:
        f *= weight
    energy = float(_sum(f, None))
    np.multiply(four_b, e2, out=df)
    df += two_a
    df *= eta
    df -= h
    if weight is not None:
        df *= weight
    return energy, df


def _landau_constants(p) -> tuple:
    return p["a"], p["b"], p["h"], 2 * p["a"], 4 * p["b"]  # the products are exact: what the formula computes each call


def _quadratic(eta_i, eta_j, weight, first, second) -> float:
    """``QuadraticCoupling.energy_grad_i`` weighted: Σ w·φ, with w·∂_iφ written to ``first`` and its negation to ``second``."""
    d = np.subtract(eta_i, eta_j, out=eta_i)
    phi = np.multiply(d, d, out=eta_j)
    np.multiply(2, d, out=first)
    return _weighted_into(phi, weight, first, second)


def _directed_hinge(eta_i, eta_j, weight, first, second) -> float:
    """``DirectedHingeCoupling.energy_grad_i`` weighted, as :func:`_quadratic` (g = max(0, η_j − η_i), φ = g², ∂_iφ = −2g)."""
    g = np.subtract(eta_j, eta_i, out=eta_j)
    np.maximum(g, 0, out=g)
    phi = np.multiply(g, g, out=eta_i)
    np.multiply(-2, g, out=first)
    return _weighted_into(phi, weight, first, second)


def _weighted_into(phi, weight, first, second) -> float:
    if weight is not None:
        phi *= weight
        first *= weight
    np.negative(first, out=second)
    return float(_sum(phi, None))


_HOST_MODULE_KERNELS = {LandauModule.energy_grad: (_landau, _landau_constants)}
_HOST_COUPLING_KERNELS = {QuadraticCoupling.energy_grad_i: _quadratic, DirectedHingeCoupling.energy_grad_i: _directed_hinge}


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
        plan = _plan(cs)
        parts = [(c.weight, *c.cls.hessian_diagonal(xp, *_ends(xp, eta, *ends), c.params))
                 for c, ends in zip(cs.couplings, plan.ends)]
        diag = _added(diag, be.scatter_add(plan.edge_index, _weighted(xp, parts), cs.n))
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


def _ends(xp, eta, i, j):
    if xp is np:
        return np.take(eta, i), np.take(eta, j)  # a plain gather, faster than fancy indexing
    return eta[i], eta[j]


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
