"""Every run's parameters as ``(key, value)`` text rows, for ``v_run_params``."""

from __future__ import annotations

import json
from typing import Any

from complexity_from_constraints.entities import flatten_fields
from complexity_from_constraints.events import RunStarted

MAX_ENTITY_PARAMS = 2_000
"""Systems with more entities than this keep only their System-level parameters in ``run_params``."""


def run_params(started: RunStarted) -> list[tuple[str, str]]:
    """``(key, value)`` rows of a run's parameters: ``seed``, every config field as a dotted key
    (``stability.cap_fraction``), ``system.<field>`` for the System's own scalars and, for Systems of at
    most :data:`MAX_ENTITY_PARAMS` entities, ``system.<entity id>.<field>`` for every entity's scalar fields.

    >>> from complexity_from_constraints.entities import RelaxConfig, demo_system
    >>> rows = dict(run_params(RunStarted(system=demo_system(0), config=RelaxConfig(step_size=0.1), seed=3,
    ...                                   package_version="x", system_digest="d")))
    >>> rows["step_size"], rows["seed"], rows["stability"], float(rows["system.s0.a"]) == demo_system(0).modules[0].a
    ('0.1', '3', 'null', True)
    """
    whole = len(started.system.modules) + len(started.system.couplings) <= MAX_ENTITY_PARAMS
    # a large System's entities are not rows here: do not dump them (seconds at 10⁵ entities); arrays are not one value
    skipped = {"module_arrays", "coupling_arrays"} | (set() if whole else {"modules", "couplings"})
    system = started.system.model_dump(mode="json", exclude=skipped)
    entities = system.pop("modules", []) + system.pop("couplings", [])
    fields = {"seed": started.seed, **flatten_fields(started.config.model_dump(mode="json")),
              **flatten_fields(system, "system.")}
    if whole:
        for entity in entities:
            fields.update((k, v) for k, v in flatten_fields(entity, f"system.{entity.pop('id')}.").items()
                          if not isinstance(v, tuple))  # observations, coefficients: not one value to filter on
    return [(key, _text(value)) for key, value in fields.items()]


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value)
