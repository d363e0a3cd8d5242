"""The System: modules, couplings and family weights validated as a whole."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator, model_serializer, model_validator

from ._arrays import MEMBER_SEPARATOR, CouplingArray, EntityIds, ModuleArray, split_member_id
from ._base import AbstractEntity
from ._couplings import AbstractCoupling, coupling_kinds
from ._errors import InvalidEntityError
from ._modules import AbstractModule, module_kinds


class System(AbstractEntity):
    r"""A sparse graph of modules and couplings; its total energy is

    .. math::
        𝓕(η) = Σ_i W_{k(i)} w_i f_i(η_i) + Σ_{(i,j)} W_{k(ij)} w_{ij} φ_{ij}(η_i, η_j) + γ N

    where ``w`` is each entity's own weight, ``W`` the family weight of its kind
    (``family_weights``, default 1) and γ the ``complexity_cost`` per module.

    Modules and couplings may be given as entities or as dicts with a ``kind``
    tag, so a System round-trips through JSON. Families of many modules or
    couplings of one kind may be given as :class:`ModuleArray` and
    :class:`CouplingArray` (``module_arrays``, ``coupling_arrays``): their
    members come first in η order (array by array), then the plain modules;
    member ``k`` of ``lattice`` is the module ``"lattice/k"`` everywhere an id
    is asked for. A System without arrays serialises exactly as it always did.

    >>> from complexity_from_constraints.entities import LandauModule, GateModule, GateBenefitCoupling
    >>> s = System(id="toy", modules=[LandauModule(id="m", a=-1.0), GateModule(id="g")],
    ...            couplings=[GateBenefitCoupling(id="e", i="g", j="m", delta=0.5)])
    >>> System.model_validate_json(s.model_dump_json()) == s
    True
    >>> tuple(s.module_ids)
    ('m', 'g')
    """

    kind: Literal["system"] = "system"
    modules: tuple[SerializeAsAny[AbstractModule], ...] = ()
    couplings: tuple[SerializeAsAny[AbstractCoupling], ...] = ()
    family_weights: dict[str, float] = Field(default_factory=dict)
    complexity_cost: float = Field(0.0, ge=0)
    module_arrays: tuple[ModuleArray, ...] = ()
    coupling_arrays: tuple[CouplingArray, ...] = ()

    @model_serializer(mode="wrap")
    def _leave_out_empty_arrays(self, handler):
        # A System without arrays keeps the JSON (and so the digest and run ids) it always had.
        data = handler(self)
        for name in ("module_arrays", "coupling_arrays"):
            if not data.get(name, True):
                del data[name]
        return data

    @field_validator("modules", mode="before")
    @classmethod
    def _parse_modules(cls, items: Any) -> tuple[AbstractModule, ...]:
        return module_kinds.parse_many(items, "System", "modules")  # type: ignore[return-value]

    @field_validator("couplings", mode="before")
    @classmethod
    def _parse_couplings(cls, items: Any) -> tuple[AbstractCoupling, ...]:
        return coupling_kinds.parse_many(items, "System", "couplings")  # type: ignore[return-value]

    @field_validator("family_weights", mode="after")
    @classmethod
    def _sorted_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        return dict(sorted(weights.items()))  # canonical order, so equal content has one digest

    _graph_checked: bool = PrivateAttr(False)
    _json: str | None = PrivateAttr(None)
    _digest: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_graph(self) -> System:
        if self._graph_checked:  # an already-validated System embedded in another model
            return self
        if not self.modules and not self.module_arrays:
            raise InvalidEntityError("System", self.id, "modules", [], "a System needs at least one module")
        kind_of: dict[str, str] = {}
        for entity in (*self.modules, *self.couplings, *self.module_arrays, *self.coupling_arrays):
            if entity.id in kind_of or entity.id == self.id:
                raise InvalidEntityError(type(entity).__name__, entity.id, "id", entity.id, "duplicate id in the System")
            if MEMBER_SEPARATOR in entity.id:
                raise InvalidEntityError(type(entity).__name__, entity.id, "id", entity.id,
                                         f"{MEMBER_SEPARATOR!r} is kept for the members of arrays (\"lattice/17\")")
            kind_of[entity.id] = entity.kind  # type: ignore[attr-defined]
        modules = {m.id: m.kind for m in self.modules}  # type: ignore[attr-defined]
        arrays = {a.id: a for a in self.module_arrays}

        def kind_at(target: str) -> str | None:
            member = split_member_id(target)
            if member is not None and member[0] in arrays and member[1] < arrays[member[0]].n:
                return arrays[member[0]].member_kind
            return modules.get(target)

        for c in self.couplings:
            for end in ("i", "j"):
                target = getattr(c, end)
                if kind_at(target) is None:
                    raise InvalidEntityError(type(c).__name__, c.id, end, target, "unknown module id")
            if c.i == c.j:
                raise InvalidEntityError(type(c).__name__, c.id, "j", c.j, "a coupling needs two different modules")
            if c.source_kinds is not None and kind_at(c.i) not in c.source_kinds:
                raise InvalidEntityError(type(c).__name__, c.id, "i", c.i,
                                         f"must be a module of kind {sorted(c.source_kinds)}, not {kind_at(c.i)!r}")
        if self.coupling_arrays:
            self._check_coupling_arrays()
        for kind, w in self.family_weights.items():
            if kind not in module_kinds and kind not in coupling_kinds:
                raise InvalidEntityError("System", self.id, f"family_weights.{kind}", kind, "unknown kind")
            if w < 0:
                raise InvalidEntityError("System", self.id, f"family_weights.{kind}", w, "must be >= 0")
        self._graph_checked = True
        return self

    def __eq__(self, other: object) -> bool:
        # Compare content only: the private caches (digest, graph check) are not content.
        if not isinstance(other, System):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in System.model_fields)

    def __hash__(self) -> int:
        return hash(self.digest())

    def _check_coupling_arrays(self) -> None:
        """Endpoints inside [0, N) and each kind's ``source_kinds``, over whole arrays."""
        n = self.n_modules
        codes, names = self.kind_codes()
        for c in self.coupling_arrays:
            for end in ("i", "j"):
                ends = getattr(c, end)
                if len(ends) and int(ends.max()) >= n:
                    k = int(np.argmax(ends >= n))
                    raise InvalidEntityError("CouplingArray", c.id, f"{end}[{k}]", int(ends[k]),
                                             f"is not a module position of the System (it has {n} modules)")
            allowed = c.member_class.source_kinds
            if allowed is not None:
                ok = np.isin(codes[c.i], [names.index(k) for k in allowed if k in names])
                if not ok.all():
                    k = int(np.argmin(ok))
                    raise InvalidEntityError("CouplingArray", c.id, f"i[{k}]", int(c.i[k]),
                                             f"must be a module of kind {sorted(allowed)}, not {names[codes[c.i[k]]]!r}")

    def kind_codes(self) -> tuple[np.ndarray, list[str]]:
        """``(codes, kinds)``: the kind of every module in η order as a small integer code into ``kinds``."""
        names: list[str] = []
        parts = []
        for kind, count in self.kind_runs():
            if kind not in names:
                names.append(kind)
            parts.append(np.full(count, names.index(kind), np.int16))
        return np.concatenate(parts), names

    def kind_runs(self) -> list[tuple[str, int]]:
        """The module kinds in η order as ``(kind, count)`` runs (a million-member array is one run)."""
        runs: list[tuple[str, int]] = [(a.member_kind, a.n) for a in self.module_arrays]
        for m in self.modules:
            kind = m.kind  # type: ignore[attr-defined]
            if runs and runs[-1][0] == kind:
                runs[-1] = (kind, runs[-1][1] + 1)
            else:
                runs.append((kind, 1))
        return runs

    @property
    def n_modules(self) -> int:
        """N: the number of modules, array members included."""
        return sum(a.n for a in self.module_arrays) + len(self.modules)

    @property
    def n_couplings(self) -> int:
        """The number of couplings, array members included."""
        return sum(len(c) for c in self.coupling_arrays) + len(self.couplings)

    @property
    def has_arrays(self) -> bool:
        return bool(self.module_arrays or self.coupling_arrays)

    def canonical_json(self) -> str:
        """The System as canonical JSON (computed once; the System is frozen); arrays as exact base64."""
        if self._json is None:
            self._json = super().canonical_json()
        return self._json

    def skeleton(self) -> dict[str, Any]:
        """The System as JSON data with every array replaced by ``{dtype, shape, sha256}`` of its bytes.

        What the digest hashes, and what a store keeps beside the array bytes.
        """
        data = self.model_dump(mode="json", exclude={"module_arrays", "coupling_arrays"})
        if self.module_arrays:
            data["module_arrays"] = [a.skeleton() for a in self.module_arrays]
        if self.coupling_arrays:
            data["coupling_arrays"] = [c.skeleton() for c in self.coupling_arrays]
        return data

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the System by the SHA-256 of its bytes (the names :meth:`skeleton` uses)."""
        from ._arrays import array_digest

        out = {}
        for entity in (*self.module_arrays, *self.coupling_arrays):
            for arr in entity._arrays().values():
                out[array_digest(arr)] = arr
        return out

    @classmethod
    def from_skeleton(cls, data: dict[str, Any], arrays: Any) -> System:
        """The System whose :meth:`skeleton` is ``data``, its arrays looked up by digest in ``arrays``."""
        return cls.model_validate(resolve_arrays(data, arrays))

    @staticmethod
    def resolve_arrays(data: Any, arrays: Any) -> Any:
        """``data`` (a :meth:`skeleton`) with each ``{dtype, shape, sha256}`` replaced by ``arrays[sha256]``."""
        return resolve_arrays(data, arrays)

    @staticmethod
    def array_digests(data: Any) -> list[str]:
        """The array digests a :meth:`skeleton` names, in order of appearance."""
        found: list[str] = []
        resolve_arrays(data, _Recorder(found))
        return found

    def digest(self) -> str:
        """SHA-256 of :meth:`canonical_json` (computed once); with arrays, of :meth:`skeleton` (array bytes hashed, no JSON of them)."""
        if self._digest is None:
            if self.has_arrays:
                self._digest = hashlib.sha256(json.dumps(self.skeleton(), sort_keys=True).encode()).hexdigest()
            else:
                self._digest = super().digest()
        return self._digest

    @cached_property
    def module_ids(self) -> EntityIds:
        """Module ids in the System's order (the order of every η array): array members first, then plain modules."""
        return EntityIds([(a.id, 0, a.n) for a in self.module_arrays] + [tuple(m.id for m in self.modules)])

    def positions(self, module_ids: Sequence[str]) -> np.ndarray:
        """The η positions of ``module_ids`` (for a :class:`CouplingArray`'s ``i`` and ``j``).

        >>> from complexity_from_constraints.entities import LandauModule
        >>> s = System(id="s", modules=[LandauModule(id="hub")],
        ...            module_arrays=[ModuleArray(id="lattice", member_kind="landau", n=3)])
        >>> s.positions(["lattice/2", "hub"]).tolist()
        [2, 3]
        """
        ids = self.module_ids
        try:
            return np.fromiter(map(ids.index, module_ids), np.int64, len(module_ids))
        except ValueError:
            bad = next(m for m in module_ids if m not in ids)
            raise InvalidEntityError("System", self.id, "module_ids", bad, "unknown module id") from None

    def initial_eta(self) -> np.ndarray:
        """Every module's starting η, in η order."""
        parts = [a.initial_eta() for a in self.module_arrays]
        parts.append(np.array([m.initial_eta() for m in self.modules], dtype=np.float64))
        return np.concatenate(parts)

    def module(self, module_id: str) -> AbstractModule:
        """The module with this id, a member of an array as a plain module entity (KeyError if absent)."""
        member = split_member_id(module_id)
        if member is not None:
            for a in self.module_arrays:
                if a.id == member[0] and member[1] < a.n:
                    return a.member(member[1])
        for m in self.modules:
            if m.id == module_id:
                return m
        raise KeyError(module_id)

    def array_of(self, member_id: str) -> tuple[ModuleArray | CouplingArray, int] | None:
        """``(array, k)`` when ``member_id`` is member ``k`` of one of the System's arrays, else ``None``."""
        member = split_member_id(member_id)
        if member is None:
            return None
        for a in (*self.module_arrays, *self.coupling_arrays):
            if a.id == member[0] and member[1] < a.size:
                return a, member[1]
        return None

    def entity(self, entity_id: str) -> Any:
        """Any entity by id: a plain module or coupling, an array, or an array's member as a plain entity."""
        found = self.array_of(entity_id)
        if found is not None:
            array, k = found
            return array.member(k) if isinstance(array, ModuleArray) else array.member(k, self.module_ids)
        for e in (*self.modules, *self.couplings, *self.module_arrays, *self.coupling_arrays):
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)


class _Recorder:
    def __init__(self, found: list[str]):
        self.found = found

    def __getitem__(self, digest: str) -> None:
        self.found.append(digest)


def resolve_arrays(data: Any, arrays: Any) -> Any:
    """``data`` (a System's :meth:`~System.skeleton`) with each ``{dtype, shape, sha256}`` replaced by ``arrays[sha256]``."""
    if isinstance(data, dict):
        if set(data) == {"dtype", "shape", "sha256"}:
            return arrays[data["sha256"]]
        return {k: resolve_arrays(v, arrays) for k, v in data.items()}
    if isinstance(data, list):
        return [resolve_arrays(v, arrays) for v in data]
    return data
