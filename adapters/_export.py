"""Export runs to Parquet files and import them into another DuckDB store.

An export folder holds one Parquet file per store table, filtered to the
exported runs (the materialised ``mat_*`` tables are derived, so they are
recomputed on import rather than exported), and a ``manifest.json`` naming the runs and the store schema
version. ``run_key`` (a store's compact integer per run) is local to a file:
import gives each run a fresh key in the target store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from complexity_from_constraints.entities import CfcError, UnknownRunError

from ._duckdb_store import STORE_SCHEMA_VERSION, DuckDBStore

MANIFEST = "manifest.json"
FORMAT = "cfc-export"

# Each table's rows of the selected runs: by run_id, through run_key, or by the runs' system digests.
_SELECT = {
    "runs": "SELECT * FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_key",
    "systems": "SELECT * FROM systems WHERE system_digest IN "
               "(SELECT system_digest FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])))",
    "system_arrays": "SELECT * FROM system_arrays WHERE array_digest IN (SELECT unnest(?::VARCHAR[]))",
    "run_modules": "SELECT m.* FROM run_modules AS m JOIN runs AS r ON r.run_key = m.run_key "
                   "WHERE r.run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY m.run_key, m.idx",
    "events": "SELECT * FROM events WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, seq",
    "eta_frames": "SELECT * FROM eta_frames WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, seq",
    "eta_values": "SELECT v.* FROM eta_values AS v JOIN runs AS r ON r.run_key = v.run_key "
                  "WHERE r.run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY v.run_key, v.step, v.idx",
}


_OPTIONAL = {"system_arrays"}  # exports written before array-backed entities have none


class ExportError(CfcError):
    """An export folder is missing, incomplete, from a newer version, or clashes with the target store."""


def export_runs(store: DuckDBStore, path_dir: str | Path, run_ids: Sequence[str] | None = None) -> list[str]:
    """Write the runs (default: every run) to Parquet files in ``path_dir``, one per table.

    Args:
        store: the store to read.
        path_dir: the folder to write (created if missing; files of an earlier export are replaced).
        run_ids: the runs to export; each must exist.

    Returns:
        The exported run ids, in the store's order.

    >>> import tempfile
    >>> from complexity_from_constraints.adapters import DuckDBStore
    >>> with DuckDBStore(":memory:") as store, tempfile.TemporaryDirectory() as folder:
    ...     export_runs(store, folder)
    []
    """
    known = store.query("SELECT run_id FROM runs ORDER BY run_key")["run_id"].to_list()
    if run_ids is None:
        wanted = known
    else:
        missing = [r for r in run_ids if r not in set(known)]
        if missing:
            raise UnknownRunError(f"no run {missing[0]!r} in {store.path}")
        chosen = set(run_ids)
        wanted = [r for r in known if r in chosen]
    folder = Path(path_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for table, select in _SELECT.items():
        params = _system_array_digests(store, wanted) if table == "system_arrays" else wanted
        if table == "system_arrays" and not store.query(
                "SELECT 1 FROM duckdb_tables() WHERE table_name = 'system_arrays'").height:  # a file from before arrays
            select = "SELECT NULL::VARCHAR AS array_digest, NULL::VARCHAR AS dtype, NULL::BLOB AS data WHERE ?::VARCHAR[] IS NULL"
        store._execute(f"COPY ({select}) TO ? (FORMAT parquet)", [params, str(folder / f"{table}.parquet")])
    (folder / MANIFEST).write_text(json.dumps(
        {"format": FORMAT, "store_schema_version": STORE_SCHEMA_VERSION, "runs": wanted}, indent=2))
    return wanted


def import_runs(store: DuckDBStore, path_dir: str | Path) -> list[str]:
    """Append the runs of an export folder to ``store``, in one transaction.

    Each run gets a fresh ``run_key``; Systems the store already holds are kept once.

    Args:
        store: the target store (opened for writing).
        path_dir: a folder written by :func:`export_runs`.

    Returns:
        The imported run ids.

    Raises:
        ExportError: the folder is not an export, comes from a newer store schema, or holds a run id
            that ``store`` already has (nothing is imported then).

    >>> import tempfile
    >>> from complexity_from_constraints.adapters import DuckDBStore
    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> from complexity_from_constraints.projectors import relax
    >>> with DuckDBStore(":memory:") as a, DuckDBStore(":memory:") as b, tempfile.TemporaryDirectory() as folder:
    ...     run = relax(System(id="s", modules=[LandauModule(id="m")]), RelaxConfig(steps=3), store=a).run_id
    ...     _ = export_runs(a, folder)
    ...     import_runs(b, folder) == [run]
    True
    """
    if store.read_only:
        raise ExportError(f"{store.path} is open read-only; cannot import into it")
    folder = Path(path_dir)
    manifest = _manifest(folder)
    files = {table: str(folder / f"{table}.parquet") for table in _SELECT}
    with store.transaction():  # all or nothing, and no other thread of this process writes in between
        exported = store.query("SELECT run_id FROM read_parquet(?) ORDER BY run_key", [files["runs"]])["run_id"].to_list()
        if sorted(exported) != sorted(manifest["runs"]):
            raise ExportError(f"{folder}: runs.parquet does not match {MANIFEST}; the export is incomplete")
        clash = store.query("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_key",
                            [exported])["run_id"].to_list()
        if clash:
            raise ExportError(f"run {clash[0]!r} already exists in {store.path}; "
                              f"{len(clash)} of the {len(exported)} exported run(s) clash, nothing imported")
        _copy_in(store, files)
        store.refresh_materialised(exported)  # derived tables are not exported: rebuild the imported runs' rows
    return exported


def _system_array_digests(store: DuckDBStore, run_ids: list[str]) -> list[str]:
    """The digests of the arrays the runs' Systems hold (their skeletons in ``systems`` name them)."""
    from complexity_from_constraints.entities import System

    rows = store.query("SELECT system_json FROM systems WHERE system_digest IN "
                       "(SELECT system_digest FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[])))", [run_ids])
    return sorted({d for text in rows["system_json"].to_list() for d in System.array_digests(json.loads(text))})


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ExportError(f"{folder} is not a cfc export (no {MANIFEST}); write one with `cfc export --to DIR`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise ExportError(f"{path}: not a {FORMAT} manifest")
    if int(manifest.get("store_schema_version", 0)) > STORE_SCHEMA_VERSION:
        raise ExportError(f"{folder} was written by a newer version (store schema "
                          f"{manifest['store_schema_version']}); upgrade the package")
    missing = [t for t in _SELECT if t not in _OPTIONAL and not (folder / f"{t}.parquet").is_file()]
    if missing:
        raise ExportError(f"{folder}: {missing[0]}.parquet is missing; the export is incomplete")
    return manifest


def _copy_in(store: DuckDBStore, files: dict[str, str]) -> None:
    # Fresh keys follow the target's largest, in the exported runs' order.
    store._execute("CREATE OR REPLACE TEMP TABLE _cfc_keymap AS "
                "SELECT run_key AS old_key, (SELECT coalesce(max(run_key), 0) FROM runs) "
                "+ row_number() OVER (ORDER BY run_key) AS new_key FROM read_parquet(?)", [files["runs"]])
    try:
        store._execute("INSERT INTO systems BY NAME SELECT * FROM read_parquet(?) "
                    "WHERE system_digest NOT IN (SELECT system_digest FROM systems)", [files["systems"]])
        if Path(files["system_arrays"]).is_file():
            store._execute("CREATE TABLE IF NOT EXISTS system_arrays (array_digest VARCHAR PRIMARY KEY, dtype VARCHAR, data BLOB)")
            store._execute("INSERT INTO system_arrays BY NAME SELECT * FROM read_parquet(?) WHERE array_digest IS NOT NULL "
                           "AND array_digest NOT IN (SELECT array_digest FROM system_arrays)", [files["system_arrays"]])
        store._execute("INSERT INTO runs BY NAME SELECT t.* REPLACE (k.new_key::INTEGER AS run_key) "
                    "FROM read_parquet(?) AS t JOIN _cfc_keymap AS k ON k.old_key = t.run_key", [files["runs"]])
        with store._lock:  # modules are exported per run; the store keeps a System's once
            store._insert_run_modules("SELECT k.new_key::INTEGER AS run_key, t.idx, t.module_id, t.kind FROM "
                                      "read_parquet(?) AS t JOIN _cfc_keymap AS k ON k.old_key = t.run_key",
                                      [files["run_modules"]])
        with store._lock:  # η is exported in long form; the store compresses it again
            store._insert_long_form("SELECT k.new_key::INTEGER AS run_key, t.step, t.idx, t.eta FROM read_parquet(?) "
                                    "AS t JOIN _cfc_keymap AS k ON k.old_key = t.run_key", [files["eta_values"]])
        for table in ("events", "eta_frames"):
            store._execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet(?)", [files[table]])
    finally:
        store._execute("DROP TABLE IF EXISTS _cfc_keymap")
