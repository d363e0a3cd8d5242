"""The file ``cfc run`` reads: a System, an optional config and a seed, validated as a whole."""

from __future__ import annotations

from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, RelaxConfig, System


class RunFile(AbstractFrozen):
    """``[system]`` (modules, couplings), optional ``[config]`` and ``seed``; any other key is refused.

    >>> RunFile.model_validate({"system": {"id": "s", "modules": [{"kind": "landau", "id": "m"}]}, "seed": 3}).seed
    3
    >>> try:
    ...     RunFile.model_validate({"system": {"id": "s", "modules": [{"kind": "landau", "id": "m"}]}, "sed": 3})
    ... except Exception as e:
    ...     print(type(e).__name__, e.field)
    InvalidEntityError sed
    """

    system: System
    config: RelaxConfig = RelaxConfig()
    seed: int = Field(0, ge=0)
