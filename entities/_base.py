"""The versioned, frozen entity base."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._errors import InvalidEntityError

_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"


class AbstractFrozen(BaseModel):
    """A frozen, strictly-keyed Pydantic model whose validation errors name the culprit.

    Every failure raises :class:`InvalidEntityError` with the class, the
    ``id`` where there is one, the field and the rejected value.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True)

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_culprit(cls, data: Any, handler):
        try:
            return handler(data)
        except ValidationError as exc:
            raise _to_entity_error(cls.__name__, data, exc) from None

    def digest(self) -> str:
        """SHA-256 of the model's canonical JSON (sorted keys, exact floats)."""
        return content_digest(self.model_dump(mode="json"))


class AbstractEntity(AbstractFrozen):
    """A frozen Pydantic model with a stable ``id`` and an integer ``version``.

    Entities are never mutated: :meth:`evolve` validates a changed copy and
    bumps the version. Validation failures raise :class:`InvalidEntityError`
    naming the entity, the field and the value.

    >>> from entities import LandauModule
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


def content_digest(payload: Any) -> str:
    """SHA-256 hex digest of ``payload`` serialised as canonical JSON."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class KindRegistry:
    """Maps each ``kind`` tag of one family to its final class.

    A family base calls :meth:`register` from ``__pydantic_init_subclass__``,
    so defining a class is all it takes to add a kind.
    """

    def __init__(self, family: str):
        self.family = family
        self._classes: dict[str, type[AbstractEntity]] = {}

    def register(self, cls: type[AbstractEntity]) -> None:
        field = cls.model_fields.get("kind")
        if field is None or not isinstance(field.default, str):
            return  # an abstract intermediate class
        kind = field.default
        known = self._classes.get(kind)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"{self.family} kind {kind!r} is defined twice ({known.__name__}, {cls.__name__})")
        self._classes[kind] = cls

    def __getitem__(self, kind: str) -> type[AbstractEntity]:
        return self._classes[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._classes

    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._classes))

    def parse(self, item: Any, owner: str, field: str) -> AbstractEntity:
        """Validate ``item`` (an entity or a dict with a ``kind`` tag) as one of the family."""
        if isinstance(item, AbstractEntity):
            if item.model_fields.get("kind") is None or type(item) is not self._classes.get(item.kind):  # type: ignore[attr-defined]
                raise InvalidEntityError(owner, None, field, type(item).__name__, f"not a registered {self.family} kind")
            return item
        if not isinstance(item, dict):
            raise InvalidEntityError(owner, None, field, item, f"expected a {self.family} entity or a dict")
        kind = item.get("kind")
        if kind not in self._classes:
            raise InvalidEntityError(f"{owner}.{field}", item.get("id"), "kind", kind,
                                     f"unknown {self.family} kind; known kinds: {', '.join(self.kinds())}")
        return self._classes[kind].model_validate(item)


def _to_entity_error(kind: str, data: Any, exc: ValidationError) -> InvalidEntityError:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or "(entity)"
    entity_id = data.get("id") if isinstance(data, dict) else getattr(data, "id", None)
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidEntityError(kind, entity_id, field, first.get("input"), first["msg"] + more)
