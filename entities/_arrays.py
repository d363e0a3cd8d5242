"""Array-backed entities: many modules (or couplings) of one kind as one versioned entity.

A :class:`ModuleArray` holds ``n`` modules of one module kind, a
:class:`CouplingArray` ``len(i)`` couplings of one coupling kind; their
parameters are float64 numpy arrays, validated all at once. Member ``k`` of
the array ``lattice`` has the id ``"lattice/k"``: a plain entity's id may not
contain ``/``, so a member id can never collide with one. :class:`EntityIds`
is the sequence of ids of a System's modules without building one string per
member.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
from itertools import chain
from typing import Annotated, Any, ClassVar, Iterator, Literal, Mapping, Sequence

import annotated_types
import numpy as np
from pydantic import BeforeValidator, Field, PlainSerializer, PrivateAttr, model_validator

from ._base import AbstractEntity
from ._couplings import AbstractCoupling, coupling_kinds
from ._errors import InvalidEntityError
from ._modules import AbstractModule, module_kinds

MEMBER_SEPARATOR = "/"
"""Joins an array's id and a member's index: ``"lattice/17"``."""


# ---------------------------------------------------------------------------------------------
# Arrays as field values: read-only numpy arrays, exact base64 JSON, SHA-256 of their bytes.

def _as_array(value: Any, dtype: str) -> np.ndarray:
    """A read-only, C-contiguous, little-endian array of ``dtype`` from an array, a list or the JSON form."""
    if isinstance(value, dict):
        if "base64" not in value:
            raise InvalidEntityError("array", None, "(array)", {k: value[k] for k in value if k != "base64"},
                                     "an array is given as a list, a numpy array or {dtype, shape, base64}")
        raw = base64.b64decode(value["base64"])
        arr = np.frombuffer(raw, dtype=np.dtype(value.get("dtype", dtype)).newbyteorder("<"))
        value = arr.reshape(value.get("shape", [arr.size]))
    if isinstance(value, np.ndarray) and value.dtype == np.dtype(dtype) and value.flags.c_contiguous \
            and not value.flags.writeable:
        return value  # already one of ours (an evolve, a revision): no copy
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and dtype == "int64":
        if not np.all(np.isfinite(value)) or not np.all(value == np.round(value)):
            bad = int(np.flatnonzero(~np.isfinite(value) | (value != np.round(value)))[0])
            raise InvalidEntityError("array", None, f"[{bad}]", float(value[bad]), "must be an integer position")
    try:
        arr = np.array(value, dtype=dtype, copy=True, order="C")  # a copy: the caller's array stays the caller's
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidEntityError("array", None, "(array)", _peek(value), f"is not an array of {dtype}: {exc}") from None
    if arr.ndim != 1:
        raise InvalidEntityError("array", None, "(array)", arr.shape, "must be one-dimensional")
    arr.setflags(write=False)
    return arr


def _peek(value: Any) -> Any:
    return value if not isinstance(value, (list, tuple)) else list(value[:5])


def array_json(value: np.ndarray, info: Any) -> Any:
    """``value`` itself in Python mode; in JSON ``{dtype, shape, base64}`` of its little-endian bytes (exact)."""
    if info.mode == "python":
        return value
    le = value.astype(value.dtype.newbyteorder("<"), copy=False)
    return {"dtype": value.dtype.name, "shape": list(value.shape), "base64": base64.b64encode(le.tobytes()).decode()}


def array_digest(value: np.ndarray) -> str:
    """SHA-256 of the array's little-endian bytes (its dtype and shape are hashed beside it)."""
    le = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    return hashlib.sha256(memoryview(le).cast("B")).hexdigest()


FloatArray = Annotated[Any, BeforeValidator(lambda v: _as_array(v, "float64")), PlainSerializer(array_json)]
"""A field holding a read-only float64 array (lists, numpy arrays and ``{dtype, shape, base64}`` accepted)."""
IndexArray = Annotated[Any, BeforeValidator(lambda v: _as_array(v, "int64")), PlainSerializer(array_json)]
"""A field holding a read-only int64 array of η positions."""


def _numeric_fields(cls: type) -> dict[str, Any]:
    """The fields of a kind that an array may hold: floats and ints, never ``id``, ``version``, ``kind``, endpoints."""
    out = {}
    for name, info in cls.model_fields.items():
        if name in ("id", "version", "kind", "i", "j"):
            continue
        if info.annotation in (float, int):
            out[name] = info
    return out


def _check_values(owner: str, entity_id: str, cls: type, values: Mapping[str, np.ndarray], n: int) -> None:
    """Length, finiteness and the kind's declared bounds, each over a whole array; the first failure names its index."""
    allowed = _numeric_fields(cls)
    for name, arr in values.items():
        if name not in allowed:
            raise InvalidEntityError(owner, entity_id, f"values.{name}", name,
                                     f"is not a numeric field of {cls.__name__} (it has {sorted(allowed)})")
        where = f"values.{name}"
        if arr.shape != (n,):
            raise InvalidEntityError(owner, entity_id, where, arr.shape, f"must hold {n} values, one per member")
        _first_bad(owner, entity_id, where, arr, ~np.isfinite(arr), "must be finite")
        info = allowed[name]
        if info.annotation is int:
            _first_bad(owner, entity_id, where, arr, arr != np.round(arr), "must be an integer")
        for rule in info.metadata:
            for attr, op, text in (("gt", np.less_equal, ">"), ("ge", np.less, ">="),
                                   ("lt", np.greater_equal, "<"), ("le", np.greater, "<=")):
                bound = getattr(rule, attr, None)
                if isinstance(rule, annotated_types.BaseMetadata) and bound is not None:
                    _first_bad(owner, entity_id, where, arr, op(arr, bound), f"must be {text} {bound}")


def _first_bad(owner: str, entity_id: str, where: str, arr: np.ndarray, bad: np.ndarray, reason: str) -> None:
    if bad.any():
        k = int(np.argmax(bad))
        value = arr[k]
        raise InvalidEntityError(owner, entity_id, f"{where}[{k}]", value.item(), reason)


def _broadcast(data: Any) -> Any:
    """Scalars in ``values`` become arrays of the entity's length (``n``, or ``len(i)``)."""
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        return data
    n = data.get("n")
    if n is None and data.get("i") is not None:
        i = data["i"]
        n = i.get("shape", [None])[0] if isinstance(i, dict) else len(i)
    if not isinstance(n, int) or isinstance(n, bool):
        return data
    values = {k: (np.full(n, float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
              for k, v in data["values"].items()}
    return {**data, "values": values}


class _ArrayEntity(AbstractEntity):
    """What both array entities share: ``member_kind``, ``values``, member ids, equality and digest by bytes."""

    member_kind: str
    values: dict[str, FloatArray] = Field(default_factory=dict)

    _digest: str | None = PrivateAttr(None)
    registry: ClassVar[Any]

    @model_validator(mode="before")
    @classmethod
    def _scalars(cls, data: Any) -> Any:
        return _broadcast(data)

    @property
    def member_class(self) -> type:
        """The class of one member (``LandauModule`` for ``member_kind="landau"``)."""
        return self.registry[self.member_kind]

    def __len__(self) -> int:
        return self.size

    @property
    def size(self) -> int:  # pragma: no cover - defined by each subclass
        raise NotImplementedError

    def _check_kind(self) -> type:
        if self.member_kind not in self.registry:
            raise InvalidEntityError(type(self).__name__, self.id, "member_kind", self.member_kind,
                                     f"unknown {self.registry.family} kind (known: {list(self.registry.kinds())})")
        return self.registry[self.member_kind]

    def column(self, name: str) -> np.ndarray:
        """The array of field ``name`` for every member (the kind's default, repeated, where ``values`` has none)."""
        arr = self.values.get(name)
        if arr is not None:
            return arr
        default = self.member_class.model_fields[name].default
        return np.full(self.size, float(default))

    def member_id(self, k: int) -> str:
        """``"{id}/{k}"``."""
        return f"{self.id}{MEMBER_SEPARATOR}{k}"

    def member_index(self, member_id: str) -> int:
        """``k`` of ``"{id}/{k}"`` (``InvalidEntityError`` if it names no member of this array)."""
        prefix, sep, tail = member_id.rpartition(MEMBER_SEPARATOR)
        if prefix != self.id or not sep or not tail.isdigit() or int(tail) >= self.size or str(int(tail)) != tail:
            raise InvalidEntityError(type(self).__name__, self.id, "id", member_id, f"names no member of {self.id!r} "
                                     f"(members are {self.id}/0 … {self.id}/{self.size - 1})")
        return int(tail)

    def _member_fields(self, k: int) -> dict[str, Any]:
        fields = {"kind": self.member_kind, "id": self.member_id(k), "version": self.version}
        numeric = _numeric_fields(self.member_class)
        for name, arr in self.values.items():
            fields[name] = int(arr[k]) if numeric[name].annotation is int else float(arr[k])
        return fields

    def with_member(self, k: int, changes: Mapping[str, Any]) -> _ArrayEntity:
        """A validated copy with member ``k``'s fields changed and ``version + 1`` (one revision of one member)."""
        numeric = _numeric_fields(self.member_class)
        unknown = sorted(set(changes) - set(numeric))
        if unknown:
            raise InvalidEntityError(self.member_class.__name__, self.member_id(k), unknown[0], changes[unknown[0]],
                                     f"a member of an array can change only its numeric fields {sorted(numeric)}")
        values = dict(self.values)
        for name, value in changes.items():
            arr = np.array(self.column(name), copy=True)
            arr[k] = value
            values[name] = arr
        return self.evolve(values=values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _ArrayEntity):
            return NotImplemented
        return type(self) is type(other) and self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f"values.{k}": v for k, v in self.values.items()}

    def skeleton(self) -> dict[str, Any]:
        """The entity as JSON with each array replaced by ``{dtype, shape, sha256}`` of its bytes."""
        data = self.model_dump(mode="json", exclude={"values", "i", "j"})
        arrays = {name: {"dtype": arr.dtype.name, "shape": list(arr.shape), "sha256": array_digest(arr)}
                  for name, arr in self._arrays().items()}
        data["values"] = {k.removeprefix("values."): v for k, v in arrays.items() if k.startswith("values.")}
        data.update({k: v for k, v in arrays.items() if not k.startswith("values.")})
        return data

    def digest(self) -> str:
        """SHA-256 of :meth:`skeleton`: the array bytes are hashed once each, never written as JSON."""
        if self._digest is None:
            self._digest = hashlib.sha256(json.dumps(self.skeleton(), sort_keys=True).encode()).hexdigest()
        return self._digest

    def canonical_json(self) -> str:
        return self.model_dump_json()


class ModuleArray(_ArrayEntity):
    r"""``n`` modules of one kind as one entity; member ``k`` is the module ``"{id}/{k}"``.

    ``values`` maps numeric fields of the member kind (its ``params``,
    ``weight``, ``eta0``, ``threshold`` …) to float64 arrays of length ``n``
    (a scalar is repeated); a field left out takes the kind's default. Each
    array is checked as a whole against the bounds the kind declares
    (``LandauModule.b > 0`` becomes ``b > 0`` everywhere), and the first
    failure names the field, the index and the value.

    >>> lattice = ModuleArray(id="lattice", member_kind="landau", n=4,
    ...                       values={"a": [-1.0, -0.5, 0.0, 0.5], "b": 1.0})
    >>> lattice.member(2)
    LandauModule(id='lattice/2', version=1, weight=1.0, kind='landau', a=0.0, b=1.0, h=0.0, eta0=0.5)
    >>> ModuleArray(id="bad", member_kind="landau", n=2, values={"b": [1.0, -1.0]})
    Traceback (most recent call last):
    ...
    complexity_from_constraints.entities._errors.InvalidEntityError: ModuleArray 'bad': field 'values.b[1]' = -1.0: must be > 0
    """

    kind: Literal["module_array"] = "module_array"
    n: int = Field(ge=1)
    registry: ClassVar[Any] = module_kinds

    @property
    def size(self) -> int:
        return self.n

    @model_validator(mode="after")
    def _check(self) -> ModuleArray:
        cls = self._check_kind()
        _check_values(type(self).__name__, self.id, cls, self.values, self.n)
        return self

    def member(self, k: int) -> AbstractModule:
        """Member ``k`` as a plain module entity (its version is the array's)."""
        if not 0 <= k < self.n:
            raise InvalidEntityError(type(self).__name__, self.id, "member", k, f"must be in [0, {self.n})")
        return self.member_class.model_validate(self._member_fields(k))

    def initial_eta(self) -> np.ndarray:
        """Every member's starting η: the ``eta0`` column where the kind has one, else each member's own rule."""
        if "eta0" in _numeric_fields(self.member_class):
            return np.array(self.column("eta0"), dtype=np.float64)
        if not self.values:
            return np.full(self.n, float(self.member_class.model_validate(self._member_fields(0)).initial_eta()))
        return np.fromiter((self.member(k).initial_eta() for k in range(self.n)), np.float64, self.n)


class CouplingArray(_ArrayEntity):
    r"""``len(i)`` couplings of one kind as one entity; member ``k`` joins η positions ``i[k]`` and ``j[k]``.

    Endpoints are positions in the System's η order (module-array members
    first, array by array, then the plain modules; see
    :meth:`System.positions`), checked by the System against its size and the
    kind's ``source_kinds``. ``values`` holds ``weight`` and the kind's
    parameters as in :class:`ModuleArray`.

    >>> edges = CouplingArray(id="ring", member_kind="quadratic", i=[0, 1, 2], j=[1, 2, 0], values={"weight": 0.5})
    >>> (len(edges), edges.member_id(2))
    (3, 'ring/2')
    >>> CouplingArray(id="loop", member_kind="quadratic", i=[0, 1], j=[1, 1])
    Traceback (most recent call last):
    ...
    complexity_from_constraints.entities._errors.InvalidEntityError: CouplingArray 'loop': field 'j[1]' = 1: a coupling needs two different modules
    """

    kind: Literal["coupling_array"] = "coupling_array"
    i: IndexArray
    j: IndexArray
    registry: ClassVar[Any] = coupling_kinds

    @property
    def size(self) -> int:
        return len(self.i)

    @model_validator(mode="after")
    def _check(self) -> CouplingArray:
        cls = self._check_kind()
        name = type(self).__name__
        if len(self.i) == 0:
            raise InvalidEntityError(name, self.id, "i", [], "needs at least one coupling")
        if self.j.shape != self.i.shape:
            raise InvalidEntityError(name, self.id, "j", self.j.shape, f"must have the shape of i {self.i.shape}")
        for end in ("i", "j"):
            _first_bad(name, self.id, end, getattr(self, end), getattr(self, end) < 0, "must be a position ≥ 0")
        _first_bad(name, self.id, "j", self.j, self.i == self.j, "a coupling needs two different modules")
        _check_values(name, self.id, cls, self.values, self.size)
        return self

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"i": self.i, "j": self.j, **super()._arrays()}

    def member(self, k: int, module_ids: Sequence[str]) -> AbstractCoupling:
        """Member ``k`` as a plain coupling entity whose ends are named by ``module_ids`` (the System's)."""
        if not 0 <= k < self.size:
            raise InvalidEntityError(type(self).__name__, self.id, "member", k, f"must be in [0, {self.size})")
        fields = self._member_fields(k)
        fields.update(i=module_ids[int(self.i[k])], j=module_ids[int(self.j[k])])
        return self.member_class.model_validate(fields)


# ---------------------------------------------------------------------------------------------
# Ids in η order without one string per member.

class EntityIds(Sequence[str]):
    """An immutable sequence of ids made of segments: tuples of plain ids and ranges ``prefix/start … prefix/stop−1``.

    It behaves as the tuple it stands for (``len``, indexing, ``index``, ``in``,
    iteration, ``+``, equality with a tuple), but a range of 10⁶ members costs a
    few integers, and ``index("lattice/17")`` is arithmetic.

    >>> ids = EntityIds.of(("lattice", 0, 3), ("x", "y"))
    >>> (len(ids), ids[3], ids.index("lattice/2"), list(ids))
    (5, 'x', 2, ['lattice/0', 'lattice/1', 'lattice/2', 'x', 'y'])
    >>> ids + ("z",) == ("lattice/0", "lattice/1", "lattice/2", "x", "y", "z")
    True
    """

    __slots__ = ("segments", "_starts", "_plain")

    def __init__(self, segments: Sequence[tuple]):
        merged: list[tuple] = []
        for seg in segments:
            if len(seg) == 3 and not isinstance(seg[1], str):
                prefix, start, stop = seg
                if stop <= start:
                    continue
                if merged and len(merged[-1]) == 3 and not isinstance(merged[-1][1], str) \
                        and merged[-1][0] == prefix and merged[-1][2] == start:
                    merged[-1] = (prefix, merged[-1][1], stop)
                    continue
                merged.append((prefix, int(start), int(stop)))
            else:
                seg = tuple(seg)
                if not seg:
                    continue
                if merged and not _is_range(merged[-1]):
                    merged[-1] = merged[-1] + seg
                    continue
                merged.append(seg)
        self.segments: tuple[tuple, ...] = tuple(merged)
        starts, at = [], 0
        for seg in self.segments:
            starts.append(at)
            at += _seg_len(seg)
        self._starts = starts + [at]
        self._plain: dict[str, int] | None = None

    @classmethod
    def of(cls, *segments: tuple) -> EntityIds:
        """From segments: ``(prefix, start, stop)`` for a range of members, any tuple of strings for plain ids."""
        return cls(segments)

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(_seg_iter(seg) for seg in self.segments)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            start, stop, step = k.indices(len(self))
            if step != 1:
                return tuple(self[x] for x in range(start, stop, step))
            out = []
            for seg, lo in zip(self.segments, self._starts):
                hi = lo + _seg_len(seg)
                a, b = max(start, lo) - lo, min(stop, hi) - lo
                if a < b:
                    out.append((seg[0], seg[1] + a, seg[1] + b) if _is_range(seg) else seg[a:b])
            return EntityIds(out)
        k = int(k)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        s = bisect.bisect_right(self._starts, k) - 1
        seg, off = self.segments[s], k - self._starts[s]
        return f"{seg[0]}{MEMBER_SEPARATOR}{seg[1] + off}" if _is_range(seg) else seg[off]

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:  # type: ignore[override]
        k = self._find(value)
        if k is None or k < start or (stop is not None and k >= stop):
            raise ValueError(f"{value!r} is not in the ids")
        return k

    def _find(self, value: Any) -> int | None:
        if not isinstance(value, str):
            return None
        prefix, sep, tail = value.rpartition(MEMBER_SEPARATOR)
        if sep and tail.isdigit() and str(int(tail)) == tail:
            k = int(tail)
            for seg, lo in zip(self.segments, self._starts):
                if _is_range(seg) and seg[0] == prefix and seg[1] <= k < seg[2]:
                    return lo + k - seg[1]
        if self._plain is None:
            plain: dict[str, int] = {}
            for seg, lo in zip(self.segments, self._starts):
                if not _is_range(seg):
                    for off, name in enumerate(seg):
                        plain.setdefault(name, lo + off)
            self._plain = plain
        return self._plain.get(value)

    def __contains__(self, value: object) -> bool:
        return self._find(value) is not None

    def __add__(self, other: Sequence[str]) -> EntityIds:
        if isinstance(other, EntityIds):
            return EntityIds(self.segments + other.segments)
        if isinstance(other, tuple):
            return EntityIds(self.segments + (other,))
        return NotImplemented

    def __radd__(self, other: Sequence[str]) -> EntityIds:
        if isinstance(other, tuple):
            return EntityIds((other,) + self.segments)
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EntityIds):
            return self.segments == other.segments or (len(self) == len(other) and all(map(str.__eq__, self, other)))
        if isinstance(other, (tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        parts = [f"{s[0]}/{s[1]}…{s[0]}/{s[2] - 1}" if _is_range(s) else ", ".join(map(repr, s[:3])) + (", …" if len(s) > 3 else "")
                 for s in self.segments]
        return f"EntityIds({len(self)}: {'; '.join(parts)})"

    def take(self, index: Any) -> tuple[str, ...]:
        """The ids at the positions ``index`` as a tuple of strings."""
        return tuple(self[int(k)] for k in np.asarray(index, np.int64))

    def to_numpy(self) -> np.ndarray:
        """Every id as one numpy string array, built by vectorised concatenation (no Python loop over members)."""
        parts = []
        for seg in self.segments:
            if _is_range(seg):
                parts.append(np.strings.add(f"{seg[0]}{MEMBER_SEPARATOR}", np.arange(seg[1], seg[2]).astype(np.str_)))
            else:
                parts.append(np.asarray(seg, dtype=np.str_))
        return np.concatenate(parts) if parts else np.zeros(0, np.str_)


def _is_range(seg: tuple) -> bool:
    return len(seg) == 3 and not isinstance(seg[1], str) and isinstance(seg[0], str) and not isinstance(seg[2], str)


def _seg_len(seg: tuple) -> int:
    return seg[2] - seg[1] if _is_range(seg) else len(seg)


def _seg_iter(seg: tuple) -> Iterator[str]:
    if _is_range(seg):
        head = f"{seg[0]}{MEMBER_SEPARATOR}"
        return (f"{head}{k}" for k in range(seg[1], seg[2]))
    return iter(seg)


def split_member_id(entity_id: str) -> tuple[str, int] | None:
    """``("lattice", 17)`` for ``"lattice/17"``; ``None`` for an id that names no array member."""
    prefix, sep, tail = entity_id.rpartition(MEMBER_SEPARATOR)
    if sep and prefix and tail.isdigit() and str(int(tail)) == tail:
        return prefix, int(tail)
    return None


def total_members(arrays: Sequence[_ArrayEntity]) -> int:
    return sum(a.size for a in arrays)
