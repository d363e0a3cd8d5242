"""The file ``cfc run`` reads: a System, an optional config and a seed, validated as a whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from complexity_from_constraints.entities import AbstractFrozen, CfcError, RelaxConfig, System


def read_document(path: str | Path, what: str = "file") -> Any:
    """The data of a ``.toml`` file, or of JSON otherwise; a missing or unparsable file is a CfcError naming it."""
    import tomllib

    path = Path(path)
    if not path.exists():
        raise CfcError(f"no such {what}: {path}")
    text = path.read_text()
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise CfcError(f"{path}: not valid {path.suffix[1:] or 'JSON'}: {exc}") from None


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
