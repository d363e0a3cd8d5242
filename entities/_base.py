"""The versioned, frozen entity base."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from importlib.metadata import entry_points
from typing import Annotated, Any, Union


from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ._errors import CfcError, InvalidEntityError

_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}(/[0-9]{1,18})?$"  # "name/k": member k of the array "name" only


class _NamingMeta(type(BaseModel)):  # type: ignore[misc]
    """Turns a failed ``Cls(**fields)`` into :class:`InvalidEntityError`.

    Done in the metaclass rather than ``__init__`` so that nested validation
    (a System's modules) stays inside pydantic-core, which is much faster.
    """

    def __call__(cls, *args: Any, **kwargs: Any):
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            raise _to_entity_error(cls.__name__, kwargs, exc) from None


class AbstractFrozen(BaseModel, metaclass=_NamingMeta):
    """A frozen, strictly-keyed Pydantic model whose validation errors name the culprit.

    Every failure raises :class:`InvalidEntityError` with the class, the
    ``id`` where there is one, the field and the rejected value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True)

    def evolve(self, **changes: Any):
        """A validated copy with ``changes`` applied (``model_copy(update=...)`` would skip validation).

        >>> from complexity_from_constraints.entities import RelaxConfig
        >>> RelaxConfig(steps=10).evolve(solver="accelerated").solver
        'accelerated'
        """
        data = self.model_dump()
        data.update(changes)
        return type(self).model_validate(data)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _to_entity_error(cls.__name__, obj, exc) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            try:
                data = json.loads(json_data)
            except ValueError:
                data = None
            raise _to_entity_error(cls.__name__, data, exc) from None

    def canonical_json(self) -> str:
        """The model as JSON: fields in declaration order, dict keys sorted, exact floats."""
        return self.model_dump_json()

    def digest(self) -> str:
        """SHA-256 of :meth:`canonical_json`: equal content, equal digest."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class AbstractEntity(AbstractFrozen):
    """A frozen Pydantic model with a stable ``id`` and an integer ``version``.

    Entities are never mutated: :meth:`evolve` validates a changed copy and
    bumps the version. Validation failures raise :class:`InvalidEntityError`
    naming the entity, the field and the value.

    >>> from complexity_from_constraints.entities import LandauModule
    >>> m = LandauModule(id="m0", a=-1.0, b=1.0)
    >>> m2 = m.evolve(a=-0.5)
    >>> (m2.version, m2.a, m.a)
    (2, -0.5, -1.0)
    """

    id: str = Field(pattern=_ID_PATTERN)
    version: int = Field(1, ge=1)

    def evolve(self, **changes: Any) -> AbstractEntity:
        """Return a validated copy with ``changes`` applied and ``version + 1``."""
        if "version" in changes:
            raise InvalidEntityError(type(self).__name__, self.id, "version", changes["version"],
                                     "evolve() sets the version itself")
        data = self.model_dump()
        data.update(changes, version=self.version + 1)
        return type(self).model_validate(data)


def flatten_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (a model's ``model_dump(mode="json")``) as dotted keys; lists become tuples (they compare and hash).

    >>> flatten_fields({"steps": 5, "stability": {"cap_fraction": 0.9}, "eta0": [0.1, 0.2]})
    {'steps': 5, 'stability.cap_fraction': 0.9, 'eta0': (0.1, 0.2)}
    """
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten_fields(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tuple(data) if isinstance(data, list) else data}


def content_digest(payload: Any) -> str:
    """SHA-256 hex digest of ``payload`` serialised as canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


KINDS_ENV = "CFC_KINDS"
KINDS_ENTRY_POINTS = "complexity_from_constraints.kinds"


def import_kind_modules() -> tuple[str, ...]:
    """Import the modules that define kinds outside this package; return their names.

    A run that used a kind from your own code can be read back (re-run, forked,
    replayed, shown by ``cfc``) only by a process that defines the kind. Name
    the modules that define such kinds in the ``CFC_KINDS`` environment
    variable (comma-separated, e.g. ``CFC_KINDS=my_lab.kinds``), or, for an
    installed package, as entry points in the group
    ``complexity_from_constraints.kinds``. The registries call this when they
    meet a kind they do not know.
    """
    names = [n.strip() for n in os.environ.get(KINDS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CfcError(f"{KINDS_ENV} names the module {name!r}, which cannot be imported: {exc}") from None
    for point in entry_points(group=KINDS_ENTRY_POINTS):
        point.load()
        names.append(point.value)
    return tuple(names)


class KindRegistry:
    """Maps each ``kind`` tag of one family to its final class.

    A family base calls :meth:`register` from ``__pydantic_init_subclass__``,
    so defining a class is all it takes to add a kind. A kind this process
    has not defined is looked for once in the modules :func:`import_kind_modules`
    names before it is reported unknown.
    """

    def __init__(self, family: str):
        self.family = family
        self._classes: dict[str, type[AbstractEntity]] = {}
        self._adapter: tuple[tuple[type, ...], TypeAdapter[Any]] | None = None

    def register(self, cls: type[AbstractEntity]) -> None:
        field = cls.model_fields.get("kind")
        if field is None or not isinstance(field.default, str):
            return  # an abstract intermediate class
        kind = field.default
        known = self._classes.get(kind)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"{self.family} kind {kind!r} is defined twice ({known.__name__}, {cls.__name__})")
        self._classes[kind] = cls

    def unregister(self, kind: str) -> None:
        """Forget ``kind`` (a test that defines a kind for itself removes it afterwards)."""
        self._classes.pop(kind, None)

    def __getitem__(self, kind: str) -> type[AbstractEntity]:
        return self._classes[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._classes

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._classes))

    def type_adapter(self) -> TypeAdapter[Any]:
        """A TypeAdapter for a list of this family, discriminated on ``kind`` (rebuilt when a kind is added)."""
        key = tuple(self._classes.values())  # the classes, not the tags: a kind may be defined again
        if self._adapter is None or self._adapter[0] != key:
            members = tuple(self._classes.values())
            member = members[0] if len(members) == 1 else Annotated[Union[members], Field(discriminator="kind")]  # type: ignore[valid-type]
            self._adapter = (key, TypeAdapter(list[member]))  # type: ignore[valid-type]
        return self._adapter[1]

    def parse_many(self, items: Any, owner: str, field: str) -> tuple[AbstractEntity, ...]:
        """Validate a list of entities or ``kind``-tagged dicts as members of this family."""
        if not isinstance(items, (list, tuple)):
            raise InvalidEntityError(owner, None, field, items, "expected a list")
        if any(isinstance(item, dict) and _kind_of(item) not in self._classes for item in items):
            import_kind_modules()
        for n, item in enumerate(items):
            if isinstance(item, AbstractEntity):
                if self._classes.get(getattr(item, "kind", None)) is not type(item):
                    raise InvalidEntityError(owner, getattr(item, "id", None), f"{field}.{n}", type(item).__name__,
                                             f"not a registered {self.family} kind")
            elif not isinstance(item, dict):
                raise InvalidEntityError(owner, None, f"{field}.{n}", item, f"expected a {self.family} entity or a dict")
            elif _kind_of(item) not in self._classes:
                raise InvalidEntityError(
                    f"{owner}.{field}.{n}", item.get("id"), "kind", item.get("kind"),
                    f"unknown {self.family} kind; known kinds: {', '.join(self.kinds())}. A kind defined in your own "
                    f"code must be defined in the process that reads it: import its module first, or name the "
                    f"module in the {KINDS_ENV} environment variable (e.g. {KINDS_ENV}=my_lab.kinds)")
        try:
            return tuple(self.type_adapter().validate_python(list(items)))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            n, rest = first["loc"][0], first["loc"][1:]
            if len(self._classes) > 1:
                rest = rest[1:]  # drop the union tag pydantic puts in the path
            item = items[n]  # type: ignore[index]
            data = item if isinstance(item, dict) else {"kind": item.kind, "id": item.id}
            cls = self._classes[data["kind"]]
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InvalidEntityError(cls.__name__, data.get("id"), ".".join(map(str, rest)) or "(entity)",
                                     first.get("input"), first["msg"] + more) from None


def _to_entity_error(kind: str, data: Any, exc: ValidationError) -> InvalidEntityError:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or "(entity)"
    entity_id = data.get("id") if isinstance(data, dict) else getattr(data, "id", None)
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidEntityError(kind, entity_id, field, first.get("input"), first["msg"] + more)


def _kind_of(item: dict) -> str | None:
    """The ``kind`` tag of a dict, or ``None`` when it is missing or not a string (``kind=[]`` is no kind)."""
    kind = item.get("kind")
    return kind if isinstance(kind, str) else None
