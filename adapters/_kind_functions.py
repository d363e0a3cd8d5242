"""SQL functions that evaluate a kind's own formula, so no view restates one.

Registered on every connection the DuckDB store opens (read-only ones and
``cfc sql`` included), as vectorised Arrow functions:

- ``cfc_module_energy(kind, entity, eta DOUBLE[]) -> DOUBLE[]``: f(η) of one
  module version at each η of the list;
- ``cfc_coupling_energy(kind, entity, eta_i DOUBLE[], eta_j DOUBLE[]) -> DOUBLE[]``:
  φ(η_i, η_j) of one coupling version at each pair;
- ``cfc_gate_benefit(kind) -> BOOLEAN``: whether the coupling kind is a
  predicted benefit of opening its gate end (``AbstractCoupling.gate_benefit``).

``kind`` is the entity's tag and ``entity`` its JSON (as in
``v_entity_versions``). Each call groups its rows by kind and evaluates each
kind once, vectorised over every η of the batch. A kind that this process does
not define (a kind from the user's own code, read back by a process that has
not imported it, nor named its module in ``CFC_KINDS``) gives NULL.
"""

from __future__ import annotations

from functools import lru_cache

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.sqltypes import BOOLEAN, DOUBLE, VARCHAR

from complexity_from_constraints.entities import coupling_kinds, import_kind_modules, module_kinds

_DOUBLES = duckdb.list_type(DOUBLE)


def register_kind_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Make the ``cfc_*`` kind functions callable on ``con`` (the views use them); idempotent."""
    for name, fn, params, returns in (
            ("cfc_module_energy", _module_energy, [VARCHAR, VARCHAR, _DOUBLES], _DOUBLES),
            ("cfc_coupling_energy", _coupling_energy, [VARCHAR, VARCHAR, _DOUBLES, _DOUBLES], _DOUBLES),
            ("cfc_gate_benefit", _gate_benefit, [VARCHAR], BOOLEAN)):
        try:  # asking duckdb_functions() first costs ~40 ms a connection; a refused duplicate costs nothing
            con.create_function(name, fn, params, returns, type="arrow", null_handling="special")
        except (duckdb.NotImplementedException, duckdb.CatalogException) as exc:
            if "already" not in str(exc):  # a second connection to a database this process holds has them
                raise


@lru_cache(maxsize=65536)
def _parameters(cls: type, text: str) -> dict[str, np.ndarray]:
    """The parameter row of the entity a version's JSON describes (parsed once: queries meet the same versions)."""
    return cls.parameter_arrays([cls.model_validate_json(text)])


def _evaluate(family: str, kinds: pa.Array, entities: pa.Array, etas: list[pa.Array]) -> pa.Array:
    """One list of values per row: the kind's formula at each η (pair) of the row's list(s)."""
    registry = module_kinds if family == "module" else coupling_kinds
    kinds, entities = _whole(kinds), _whole(entities)
    lists = [_whole(e) for e in etas]
    first = lists[0]
    offsets = np.asarray(first.offsets, np.int64)
    if first.offset:  # a sliced array: offsets are absolute into the values
        offsets = offsets - offsets[0]
    counts = np.diff(offsets)
    values = [np.asarray(a.flatten(), np.float64) for a in lists]
    out = np.zeros(values[0].size)
    valid = np.zeros(values[0].size, bool)
    rows_by_kind: dict[str, list[int]] = {}
    null_rows = first.is_null().to_pylist() if first.null_count else [False] * len(first)  # is_null loads pyarrow.compute
    kind_list, entity_list = kinds.to_pylist(), entities.to_pylist()
    _look_for(registry, kind_list)
    for row, (kind, text) in enumerate(zip(kind_list, entity_list)):
        if kind in registry and text is not None and not null_rows[row]:
            rows_by_kind.setdefault(kind, []).append(row)
    for kind, rows in rows_by_kind.items():
        cls = registry[kind]
        rows_params = [_parameters(cls, entity_list[r]) for r in rows]
        params = {p: np.repeat(np.concatenate([rp[p] for rp in rows_params]), counts[rows], axis=0) for p in cls.params}
        at = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
        out[at] = cls.energy_grad(np, *(v[at] for v in values), params)[0]
        valid[at] = True
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(out, mask=~valid),
                                    mask=pa.array(null_rows, pa.bool_()))


_looked = False


def _look_for(registry, kinds: list) -> None:
    """Import the modules that define kinds outside the package (CFC_KINDS), once, when a kind is unknown."""
    global _looked
    if not _looked and any(k is not None and k not in registry for k in kinds):
        _looked = True
        import_kind_modules()


def _whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """DuckDB hands Arrow functions chunked arrays; the formulas want one contiguous array."""
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _module_energy(kind: pa.Array, entity: pa.Array, eta: pa.Array) -> pa.Array:
    return _evaluate("module", kind, entity, [eta])


def _coupling_energy(kind: pa.Array, entity: pa.Array, eta_i: pa.Array, eta_j: pa.Array) -> pa.Array:
    return _evaluate("coupling", kind, entity, [eta_i, eta_j])


def _gate_benefit(kind: pa.Array) -> pa.Array:
    kinds = _whole(kind).to_pylist()
    _look_for(coupling_kinds, kinds)
    return pa.array([coupling_kinds[k].gate_benefit if k in coupling_kinds else None for k in kinds], pa.bool_())
