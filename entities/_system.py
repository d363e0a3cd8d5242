"""The System: modules, couplings and family weights validated as a whole."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SerializeAsAny, field_validator, model_validator

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
    tag, so a System round-trips through JSON.

    >>> from complexity_from_constraints.entities import LandauModule, GateModule, GateBenefitCoupling
    >>> s = System(id="toy", modules=[LandauModule(id="m", a=-1.0), GateModule(id="g")],
    ...            couplings=[GateBenefitCoupling(id="e", i="g", j="m", delta=0.5)])
    >>> System.model_validate_json(s.model_dump_json()) == s
    True
    >>> s.module_ids
    ('m', 'g')
    """

    kind: Literal["system"] = "system"
    modules: tuple[SerializeAsAny[AbstractModule], ...] = Field(min_length=1)
    couplings: tuple[SerializeAsAny[AbstractCoupling], ...] = ()
    family_weights: dict[str, float] = Field(default_factory=dict)
    complexity_cost: float = Field(0.0, ge=0)

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
        kind_of: dict[str, str] = {}
        for entity in (*self.modules, *self.couplings):
            if entity.id in kind_of or entity.id == self.id:
                raise InvalidEntityError(type(entity).__name__, entity.id, "id", entity.id, "duplicate id in the System")
            kind_of[entity.id] = entity.kind  # type: ignore[attr-defined]
        modules = {m.id: m.kind for m in self.modules}  # type: ignore[attr-defined]
        for c in self.couplings:
            for end in ("i", "j"):
                target = getattr(c, end)
                if target not in modules:
                    raise InvalidEntityError(type(c).__name__, c.id, end, target, "unknown module id")
            if c.i == c.j:
                raise InvalidEntityError(type(c).__name__, c.id, "j", c.j, "a coupling needs two different modules")
            if c.source_kinds is not None and modules[c.i] not in c.source_kinds:
                raise InvalidEntityError(type(c).__name__, c.id, "i", c.i,
                                         f"must be a module of kind {sorted(c.source_kinds)}, not {modules[c.i]!r}")
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

    def canonical_json(self) -> str:
        """The System as canonical JSON (computed once; the System is frozen)."""
        if self._json is None:
            self._json = super().canonical_json()
        return self._json

    def digest(self) -> str:
        """SHA-256 of :meth:`canonical_json` (computed once)."""
        if self._digest is None:
            self._digest = super().digest()
        return self._digest

    @cached_property
    def module_ids(self) -> tuple[str, ...]:
        """Module ids in the System's order (the order of every η array)."""
        return tuple(m.id for m in self.modules)

    def module(self, module_id: str) -> AbstractModule:
        """The module with this id (KeyError if absent)."""
        for m in self.modules:
            if m.id == module_id:
                return m
        raise KeyError(module_id)
