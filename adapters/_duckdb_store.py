"""The DuckDB event store: the embedded default, a file such as ``runs.duckdb`` or ``:memory:``.

Tables (append-only; the API offers no update or delete):

- ``runs``: one row per run (with a compact integer ``run_key``), written in
  the same transaction as the run's first batch.
- ``systems``: each System once per digest, as JSON; a System holding arrays
  (``ModuleArray``, ``CouplingArray``) as its skeleton JSON, with its arrays'
  bytes in ``system_arrays(array_digest, dtype, data BLOB)``, content addressed.
- ``system_modules``: each System's module ids and kinds in η order (``idx``),
  once per System digest (a study's hundreds of runs of one System share them);
  ``run_added_modules``: the modules expansion added to a run, after them. The
  view ``run_modules(run_key, idx, module_id, kind)`` joins the two per run.
- ``events``: every event but the η frames; payloads are JSON text.
- ``eta_frames``: one row per ``EtaRecorded`` event (its seq and step).
- ``eta_blocks``: each η frame ``(run_key, step, base, part, data)``, the
  frame compressed losslessly against the frames before it in its chain,
  which starts at step ``base`` (``adapters/_eta_codec.py``: about 5.7 bytes
  per η value of a relaxation, against 8 raw), its blob cut into rows of at
  most 4,000 bytes (``part`` 0, 1, …). An insert of at least a quarter of a
  row group is padded to whole ones with filler rows of no run (``run_key`` 0,
  ``part`` −1; ``_run_rows.padded``). The view ``eta_values`` shows them in long form
  ``(run_key, step, idx, eta)``; ``v_eta`` and the other views read that.

Each batch is one transaction with one Arrow INSERT per table, so a crash
leaves a prefix of whole batches. The file is attached (as ``cfc_store``, the
``current_database()`` of every query) with row groups of :data:`ROW_GROUP_SIZE`
rows: a batch of η blobs fills whole row groups, which DuckDB writes straight
into the file at commit, and a checkpoint never rewrites a large partly filled
one. Views ``v_*`` come from ``adapters/sql/v_*.sql``;
they are created once per file and per set of view definitions (``store_meta``
keeps their digest), not at every open. Closing checkpoints (writes the WAL
into the file) unless told not to: ``close(checkpoint=False)`` leaves committed
batches durable in the WAL (``runs.duckdb.wal``, which then belongs with the
file when it is copied), but the next open pays more than the checkpoint saved
(it checks the file on a second connection before replaying the WAL: 467
against 369 ms of CPU per open + relax + close at N = 10⁴, ``bench/recording.py``).

Opening checks before it changes anything: the file's header (a DuckDB file,
not SQLite or anything else), that it is one of our stores (``store_meta``),
and its store schema version; only then does a read-write open create tables
(a new file) or upgrade an older layout, in one transaction. A refused open
leaves the file's bytes as they were and releases it at once. Every connection
runs with DuckDB's extension auto-install and auto-load off (no network, no
foreign formats).

Store files are attached to one DuckDB instance per process and detached (so
released) when their store closes: ``adapters/_duckdb_host.py``. Failures
reach the caller as :class:`StoreError` subclasses naming the file and the
cause, never as raw DuckDB errors.

One process may hold a file for writing and no other process may open it
meanwhile (:class:`StoreBusyError`); within a process, share one store object
between threads (it is thread-safe) rather than opening the file twice.

Materialised tables hold what the summary views would otherwise recompute at
every query (their SQL is ``adapters/sql/mat_*.sql``): ``mat_steps`` gains the
typed rows of each batch's steps in the batch's own transaction, and
``mat_run_stats`` gains the rows of finished runs in bulk when the store closes
(or is refreshed); ``v_run_stats`` computes the rows it lacks at query time.
``mat_positions(name, run_id, seq)`` records, in the same transaction as the
rows, the last seq of each run that each table reflects; so a crash never
leaves a table ahead of or behind the log, and catching up never applies an
event twice. :meth:`DuckDBStore.rebuild_materialised` recomputes them from the
log alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
import threading
import weakref
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from complexity_from_constraints.entities import (
    ForeignFileError,
    LogIntegrityError,
    SchemaVersionError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    System,
    UnknownRunError,
    UnreadableEventError,
)
from complexity_from_constraints.events import (
    AbstractEventStore,
    EtaRecorded,
    Recorded,
    RunFinished,
    RunInfo,
    RunMeta,
    RunStarted,
    StepCommitted,
    decode,
    upcast,
)

from . import _eta_codec as codec
from . import _run_rows as run_rows
from ._duckdb_host import ROW_GROUP_SIZE, connect, disconnect, sniff, translate
from ._run_params import run_params

STORE_SCHEMA_VERSION = 5  # 2: materialised tables mat_* and their positions; 3: run_meta, run_params, deletions, sweeps;
# 4: η frames compressed in eta_blocks (the long form eta_values becomes a view over them);
# 5: module ids once per System (system_modules) and added ones per run (run_added_modules); run_modules a view

# η blobs and System arrays are compressed already (or noise): DuckDB's own compression analysis of them cost ~10x
# the write itself (25 MB of blobs: 400-500 ms of CPU against 25-55 ms) and then stored them uncompressed anyway.
_SYSTEM_ARRAYS = ("CREATE TABLE IF NOT EXISTS system_arrays (\n"
                  "    array_digest VARCHAR PRIMARY KEY, dtype VARCHAR, data BLOB USING COMPRESSION uncompressed)")
_TABLES = f"""
CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, run_key INTEGER UNIQUE, system_id VARCHAR, system_digest VARCHAR,
    seed BIGINT, n_modules INTEGER, package_version VARCHAR);
CREATE TABLE IF NOT EXISTS systems (system_digest VARCHAR PRIMARY KEY, system_json VARCHAR);
{_SYSTEM_ARRAYS};
CREATE TABLE IF NOT EXISTS system_modules (system_digest VARCHAR, idx INTEGER, module_id VARCHAR, kind VARCHAR);
CREATE TABLE IF NOT EXISTS run_added_modules (run_key INTEGER, idx INTEGER, module_id VARCHAR, kind VARCHAR);
CREATE TABLE IF NOT EXISTS events (
    run_id VARCHAR, seq BIGINT, type VARCHAR, schema_version INTEGER, step INTEGER, payload VARCHAR,
    PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS eta_frames (
    run_id VARCHAR, seq BIGINT, step INTEGER, schema_version INTEGER, n INTEGER, PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS eta_blocks (
    run_key INTEGER, step INTEGER, base INTEGER, part INTEGER, data BLOB USING COMPRESSION uncompressed);
CREATE TABLE IF NOT EXISTS mat_positions (name VARCHAR, run_id VARCHAR, seq BIGINT);
CREATE TABLE IF NOT EXISTS mat_steps (
    run_id VARCHAR, seq BIGINT, step INTEGER, energy DOUBLE, pg_norm DOUBLE, step_size DOUBLE, backtracks INTEGER,
    accepted BOOLEAN, reason VARCHAR, trial_energy DOUBLE, diagnostics JSON);
CREATE TABLE IF NOT EXISTS run_meta (
    run_id VARCHAR PRIMARY KEY, name VARCHAR, tags JSON, study VARCHAR, sweep VARCHAR, parent VARCHAR,
    started_at TIMESTAMPTZ, duration_s DOUBLE);
CREATE TABLE IF NOT EXISTS run_params (run_id VARCHAR, key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS deletions (run_id VARCHAR, events BIGINT, deleted_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS study_results (study VARCHAR, recorded_at TIMESTAMPTZ, result JSON);
CREATE TABLE IF NOT EXISTS sweeps (sweep_id VARCHAR PRIMARY KEY, name VARCHAR, digest VARCHAR, spec JSON);
CREATE TABLE IF NOT EXISTS sweep_points (
    sweep_id VARCHAR, point INTEGER, run_id VARCHAR, seed BIGINT, axes JSON, status VARCHAR, attempts INTEGER,
    reason VARCHAR, seconds DOUBLE, PRIMARY KEY (sweep_id, point));
CREATE TABLE IF NOT EXISTS mat_run_stats (
    run_id VARCHAR, e0 DOUBLE, e_min DOUBLE, delta_f90 INTEGER, delta_f99 INTEGER, accepted_steps BIGINT,
    rejected_steps BIGINT, total_backtracks BIGINT, mean_step_size DOUBLE, min_step_size DOUBLE, max_step_size DOUBLE);
"""

_TABLE_NAMES = ("store_meta", "runs", "systems", "system_modules", "run_added_modules", "events", "eta_frames",
                "eta_blocks", "mat_positions", "mat_steps", "mat_run_stats", "run_meta", "run_params", "deletions",
                "sweeps", "sweep_points", "study_results")

# Files this process holds, by real path: [read_only, count]. DuckDB would hand a second connect() of the
# same file the same database, so two store objects would each believe they own its runs.
_HELD: dict[str, list] = {}
_HELD_LOCK = threading.RLock()  # re-entrant for a finalizer that GC runs inside _hold (see _abandon)


def _release_file(real: str | None) -> None:
    """This process holds the file at ``real`` once less (see ``_HELD``)."""
    if real is None:
        return
    with _HELD_LOCK:
        held = _HELD.get(real)
        if held is not None:
            held[1] -= 1
            if held[1] <= 0:
                del _HELD[real]


def _abandon(con: duckdb.DuckDBPyConnection, real: str | None) -> None:
    """Close a store's connection and release its file: at close(), or when a store nobody closed is collected."""
    try:
        disconnect(con)
    finally:
        _release_file(real)


def view_sql() -> dict[str, str]:
    """Every view's SELECT, keyed by view name, read from the packaged ``.sql`` files."""
    return _sql_files("v_")


def _sql_files(prefix: str) -> dict[str, str]:
    folder = resources.files("complexity_from_constraints.adapters") / "sql"
    return {p.name[:-4]: p.read_text() for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.startswith(prefix) and p.name.endswith(".sql")}


# The statement that fills each materialised table: mat_steps reads the new events from _cfc_events,
# mat_run_stats folds every finished run that has no row yet.
_MATERIALISED_SQL = _sql_files("mat_")
_MATERIALISED = ("mat_steps", "mat_run_stats")


def _view_order(views: dict[str, str]) -> list[str]:
    """View names, each after every view its SQL mentions (a failed CREATE would abort the transaction)."""
    code = {name: re.sub(r"--[^\n]*", "", sql) for name, sql in views.items()}  # comments name views too
    uses = {name: {other for other in views if other != name and re.search(rf"\b{other}\b", code[name])}
            for name in views}
    order: list[str] = []
    while len(order) < len(views):
        ready = sorted(n for n in views if n not in order and uses[n] <= set(order))
        if not ready:
            raise StoreError(f"views depend on each other in a cycle: {sorted(set(views) - set(order))}")
        order.extend(ready)
    return order


# Views of the store's own that are not metrics: the long form of η (eta_values) over the compressed frames,
# and each run's modules (run_modules).
_VIEWS = {**_sql_files("eta_"), **_sql_files("run_modules"), **view_sql()}
_VIEW_ORDER = _view_order(_VIEWS)
# Views are re-created when their definitions (or the schema they read) change, not at every open.
_VIEWS_DIGEST = hashlib.sha256(json.dumps([STORE_SCHEMA_VERSION, sorted(_VIEWS.items())]).encode()).hexdigest()[:16]
# What store.query runs: statements that read. EXPLAIN is checked on the statement it explains.
_READ_STATEMENTS = {duckdb.StatementType.SELECT}
_READ_PRAGMAS = ("table_info", "show_tables", "show_tables_expanded", "version", "database_size", "storage_info",
                 "show", "database_list", "functions", "collations", "platform", "metadata_info")


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> Iterator[None]:
    """``rows`` readable by SQL as ``name`` inside the block, and no longer after it.

    When the block fails inside a transaction, DuckDB has aborted the
    transaction and refuses the unregister too; the block's own error (a full
    disk, a broken constraint) is the one raised, not the refusal.
    """
    con.register(name, rows)
    try:
        yield
    except BaseException:
        try:
            con.unregister(name)
        except duckdb.Error:
            pass  # an aborted transaction; the next register of the name replaces it
        raise
    con.unregister(name)


def _guarded(action: str):
    """Turn DuckDB's errors inside a store method into typed ones (errors of ours pass through)."""
    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            with self._guard(action):
                return method(self, *args, **kwargs)
        return guarded
    return wrap


class DuckDBStore(AbstractEventStore):
    """An event store in a DuckDB database file (or ``":memory:"``).

    Args:
        path: the database file; created if missing.
        read_only: open without writing (no schema creation); another
            read-only process may open the same file at the same time. The
            schema version is checked as for a read-write open.

    Raises:
        StoreBusyError: another process writes the file, or this process already has a store on it.
        StoreCorruptError: the file, a block or its WAL is damaged (also later, when damaged data is read).
        StoreVersionError: a newer store schema, the first layout, or an older schema opened read-only.
        ForeignFileError: another program's DuckDB database, SQLite, or anything that is not a DuckDB file.
        StoreWriteError: a read-write open in a read-only folder; later, a full disk.

    Every error names the file; a refused open leaves the file's bytes as they were and releases it.

    >>> from complexity_from_constraints.adapters import DuckDBStore
    >>> with DuckDBStore(":memory:") as store:
    ...     store.query("SELECT count(*) AS n FROM v_runs")["n"][0]
    0
    """

    def __init__(self, path: str | Path = "runs.duckdb", *, read_only: bool = False):
        super().__init__()
        self.path = str(path)
        self.read_only = read_only
        self._depth = 0  # nesting of transaction()
        self._owner: int | None = None  # the thread whose transaction() is open
        self._next_seq: dict[str, int] = {}
        self._keys: dict[str, int] = {}
        self._mat_seq: dict[str, int] = {}  # run → the last seq mat_steps reflects, as committed
        self._chains: dict[str, tuple] = {}  # run → its η chain so far: (base step, position, η₋₁, η₋₂)
        self._finished: dict[str, RunInfo] = {}  # finished runs' registry rows, as read (replay asks for them often)
        # The η frames decoded by the last read of a few frames: (run_id, {step: η}). Replay asks for frames of
        # one chain in turn (the latest at or before a step, then a snapshot's own and the one before it).
        self._decoded: tuple[str | None, dict[int, np.ndarray]] = (None, {})
        self._unfolded = False  # a run finished here since mat_run_stats was last folded
        self._held = None if self.path == ":memory:" else os.path.realpath(self.path)
        self._hold()
        try:
            self._con = self._open()
        except BaseException:
            self._release()
            raise
        # A store dropped without close() still releases its file (to this process and to others) when collected.
        self._abandoned = weakref.finalize(self, _abandon, self._con, self._held)

    # -- opening ------------------------------------------------------------------------------
    def _hold(self) -> None:
        if self._held is None:
            return
        with _HELD_LOCK:
            held = _HELD.get(self._held)
            if held is not None and not (held[0] and self.read_only):
                raise StoreBusyError(
                    f"{self.path} is already open in this process by another DuckDBStore; share that store "
                    f"between threads (it is thread-safe) or close it first", self.path)
            if held is None:
                _HELD[self._held] = [self.read_only, 1]
            else:
                held[1] += 1

    def _release(self) -> None:
        _release_file(self._held)
        self._held = None

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Connect, check the file is a store this code can open, create or upgrade it; return the connection.

        Nothing is written before the checks pass: a file that has a WAL to replay is checked on
        a read-only connection first (a read-write one would replay and checkpoint it at once).
        """
        if self.path == ":memory:":
            con = self._connect(False)
            self._create(con)
            return con
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if not exists and self.read_only:
            raise StoreError(f"{self.path}: no such store (a read-only open does not create one)", self.path)
        if exists:
            sniff(self.path)
        if not self.read_only:
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.access(folder, os.W_OK) or (exists and not os.access(self.path, os.W_OK)):
                raise StoreWriteError(f"{self.path}: cannot write here ({'file' if exists and not os.access(self.path, os.W_OK) else 'folder'} "
                                      f"is read-only); open it with read_only=True", self.path)
            if not exists:
                self._create_file()
                exists = True
            elif os.path.exists(self.path + ".wal"):
                probe = self._connect(True)
                try:
                    self._check(probe)
                finally:
                    disconnect(probe)
        con = self._connect(self.read_only)
        try:
            state = self._check(con) if exists else "new"
            if self.read_only:
                return con
            with self._guard("open"):
                # Closing checkpoints only as close(checkpoint=...) says, not on DuckDB's own initiative.
                con.execute("PRAGMA disable_checkpoint_on_shutdown")
                if state == "new":
                    self._create(con)
                elif state == "upgrade":
                    self._upgrade(con)
                elif state == "views":
                    self._in_transaction(con, lambda: self._create_views(con))
        except BaseException:
            disconnect(con)
            raise
        return con

    def _create_file(self) -> None:
        """Create a new store beside ``path`` and move it into place whole.

        So the file at ``path`` is either absent or a complete store: a crash while
        creating leaves only a ``*.creating-*`` file, never an empty database at ``path``.
        If another process created the store meanwhile, its file is kept.
        """
        tmp = f"{self.path}.creating-{os.getpid()}-{threading.get_ident()}"
        try:
            con = self._connect(False, tmp)
            try:
                self._create(con)
                con.execute("CHECKPOINT")  # the whole store in the file: no WAL is left behind with it
            finally:
                disconnect(con)
            try:
                os.link(tmp, self.path)  # never replaces a store someone else just made
            except FileExistsError:
                if os.path.getsize(self.path) == 0:  # an empty placeholder (a temporary file's name)
                    os.replace(tmp, self.path)
            except OSError as exc:
                raise StoreWriteError(f"{self.path}: cannot create the store: {exc.strerror or exc}",
                                      self.path) from exc
        finally:
            for leftover in (tmp, tmp + ".wal"):
                if os.path.exists(leftover):
                    os.unlink(leftover)

    def _connect(self, read_only: bool, path: str | None = None) -> duckdb.DuckDBPyConnection:
        """A connection to the file (:func:`~._duckdb_host.connect`), DuckDB's errors typed.

        Row groups of 2,048 rows: with DuckDB's default (122,880), the η blobs
        of many runs shared one row group, and every checkpoint rewrote the
        partly filled one whole (0.1 to 2.5 s at 10⁵ modules), and the file kept
        the blocks it freed.
        """
        try:
            return connect(path or self.path, read_only)
        except duckdb.Error as exc:
            raise translate(exc, self.path, "open") from exc

    def _check(self, con: duckdb.DuckDBPyConnection) -> str:
        """What opening needs to do: ``"ok"``, ``"views"`` (stale view definitions), ``"upgrade"`` or ``"new"``.

        Raises (having changed nothing):
            ForeignFileError: tables that are not ours.
            StoreVersionError: a newer schema, an old layout we cannot upgrade, or an old one opened read-only.
            StoreCorruptError: a table of ours is missing or the catalog does not read.
        """
        with self._guard("open"):
            tables = {name for (name,) in con.execute(  # duckdb_tables(), not duckdb_columns(): a fifth of the time
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND NOT internal").fetchall()}
            if not tables:
                if self.read_only:
                    raise ForeignFileError(f"{self.path}: an empty DuckDB database, not a cfc store", self.path)
                return "new"
            meta = dict(con.execute("SELECT key, value FROM store_meta").fetchall()) if "store_meta" in tables else {}
        if "schema_version" not in meta:
            raise ForeignFileError(f"{self.path} is a DuckDB database of another program (tables: "
                                   f"{', '.join(sorted(tables)[:5])}), not a cfc store; nothing was changed", self.path)
        stored = int(meta["schema_version"])
        if stored > STORE_SCHEMA_VERSION:
            raise StoreVersionError(f"{self.path} was written by a newer version (store schema {stored}, this code "
                                    f"reads {STORE_SCHEMA_VERSION}); upgrade the package", self.path)
        if stored < STORE_SCHEMA_VERSION:
            with self._guard("open"):
                runs_columns = {c for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                    "AND schema_name = 'main' AND table_name = 'runs'").fetchall()}
            if "run_key" not in runs_columns or not tables & {"eta_values", "eta_blocks"}:
                raise StoreVersionError(f"{self.path} has the first store layout (schema {stored}, η frames as "
                                        f"lists) that this version cannot upgrade; export its runs with the version "
                                        f"that wrote it", self.path)
            if self.read_only:
                raise StoreVersionError(f"{self.path} has store schema {stored}; open it read-write once to upgrade "
                                        f"it to {STORE_SCHEMA_VERSION}", self.path)
            return "upgrade"
        missing = [t for t in _TABLE_NAMES if t not in tables]
        if missing:
            raise StoreCorruptError(f"{self.path}: table {missing[0]} of store schema {stored} is missing; "
                                    f"the file was damaged (nothing was changed)", self.path)
        return "ok" if meta.get("views") == _VIEWS_DIGEST else "views"

    @staticmethod
    def _in_transaction(con: duckdb.DuckDBPyConnection, body) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            body()
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _create(self, con: duckdb.DuckDBPyConnection) -> None:
        """A new store: every table, the schema version and the views, in one transaction."""
        def body():
            for stmt in filter(str.strip, _TABLES.split(";")):
                con.execute(stmt)
            con.execute("INSERT INTO store_meta VALUES ('schema_version', ?)", [str(STORE_SCHEMA_VERSION)])
            self._create_views(con)
        with self._guard("create"):
            self._in_transaction(con, body)

    def _upgrade(self, con: duckdb.DuckDBPyConnection) -> None:
        """Bring an older file to this schema in one transaction: all of it, or none of it.

        Schema 1 had two layouts this code upgrades: η frames with their sizes
        (written from 75de091 on) and without (f6a55dc: sizes are counted from the
        stored values). The first layout (η frames as lists, 9ef8e13) is refused.
        Schema 2 lacks the metadata and sweep tables; every stored run gets its
        ``run_params`` rows from its ``RunStarted``. Schema 3 and older keep η in
        long form in the table ``eta_values``: its frames are compressed into
        ``eta_blocks`` (bit for bit) and the table gives way to the view of that name.
        Schema 4 and older keep every run's module ids in the table ``run_modules``:
        they move to ``system_modules`` (once per System) and ``run_added_modules``,
        and the table gives way to the view of that name.
        """
        self._con = con  # the catch-up helpers run on self._con
        with self.transaction():
            if not con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = current_database() "
                               "AND table_name = 'eta_frames' AND column_name = 'n'").fetchall():
                # η frames from before expansion (f6a55dc) carry no size: count their stored values
                con.execute("ALTER TABLE eta_frames ADD COLUMN n INTEGER")
                con.execute("UPDATE eta_frames AS f SET n = (SELECT count(*) FROM eta_values AS v JOIN runs AS r "
                            "ON r.run_key = v.run_key WHERE r.run_id = f.run_id AND v.step = f.step)")
            for stmt in filter(str.strip, _TABLES.split(";")):
                con.execute(stmt)  # IF NOT EXISTS: adds the materialised tables, eta_blocks and the module tables
            tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                                "current_database() AND NOT internal").fetchall()}
            if "eta_values" in tables:
                # schema ≤ 3 kept η in long form: compress it into eta_blocks (the view eta_values replaces the table)
                self._insert_long_form("SELECT run_key, step, idx, eta FROM eta_values")
            if "run_modules" in tables:
                # schema ≤ 4 kept every run's module ids: once per System now (the view run_modules replaces the table)
                self._insert_run_modules("SELECT run_key, idx, module_id, kind FROM run_modules")
            for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = "
                                       "current_database() AND NOT internal").fetchall():
                con.execute(f'DROP VIEW "{view}"')  # views of the old schema read the old tables; made anew below
            for table in ("eta_values", "run_modules"):
                if table in tables:
                    con.execute(f"DROP TABLE {table}")
            self._create_views(con)
            self._catch_up(None)  # a file from before the materialised tables: fill them once
            for (run_id,) in con.execute("SELECT run_id FROM runs WHERE run_id NOT IN (SELECT run_id FROM run_params) "
                                         "ORDER BY run_key").fetchall():
                started = self.read(run_id, types=["RunStarted"])
                if started:
                    self._register_params(run_id, started[0].event)
            con.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", [str(STORE_SCHEMA_VERSION)])

    def _create_views(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create every view, each after the views it reads, and record their digest (the caller holds a transaction)."""
        for name in _VIEW_ORDER:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {_VIEWS[name]}")
        con.execute("INSERT OR REPLACE INTO store_meta VALUES ('views', ?)", [_VIEWS_DIGEST])

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except duckdb.Error as exc:
            raise translate(exc, self.path, action) from exc

    # -- writing ------------------------------------------------------------------------------
    @_guarded("read")
    def next_seq(self, run_id: str) -> int:
        with self._lock:
            if run_id not in self._next_seq:
                row = self._con.execute(
                    "SELECT max(seq) FROM (SELECT seq FROM events WHERE run_id = ? "
                    "UNION ALL SELECT seq FROM eta_frames WHERE run_id = ?)", [run_id, run_id]).fetchall()[0]
                self._next_seq[run_id] = 0 if row[0] is None else int(row[0]) + 1
            return self._next_seq[run_id]

    @_guarded("write")
    def _write(self, run_id: str, batch: Sequence[Recorded], new_run: RunStarted | None) -> None:
        if self.read_only:
            raise StoreWriteError(f"{self.path} is open read-only", self.path)
        frames = [r for r in batch if isinstance(r.event, EtaRecorded)]
        others = [r for r in batch if not isinstance(r.event, EtaRecorded)]
        event_rows = run_rows.event_rows(run_id, others)
        with self._lock:
            con = self._con
            try:
                with self.transaction():
                    if new_run is not None:
                        self._register_run(run_id, new_run)
                        self._register_params(run_id, new_run)
                    self._register_added_modules(run_id, [r.event for r in others if r.event.type == "ModuleAdded"])
                    if frames:
                        blocks, self._chains[run_id] = run_rows.compress(
                            [(r.event.step, r.event.eta) for r in frames], self._chains.get(run_id, run_rows.NEW_CHAIN))
                        self._insert_blocks(run_rows.with_key(blocks, self._run_key(run_id)))
                        self._insert_rows("eta_frames", run_rows.frame_rows(run_id, frames))
                    with _registered(con, "_cfc_events", event_rows):
                        if len(others):
                            con.execute("INSERT INTO events SELECT * FROM _cfc_events")
                        self._materialise_batch(run_id, batch[0].seq, batch[-1].seq,
                                                any(isinstance(r.event, StepCommitted) for r in others),
                                                isinstance(batch[-1].event, RunFinished))
            except BaseException:
                self._next_seq.pop(run_id, None)
                self._keys.pop(run_id, None)
                self._chains.pop(run_id, None)
                raise
            self._next_seq[run_id] = batch[-1].seq + 1
            if isinstance(batch[-1].event, RunFinished):
                self._chains.pop(run_id, None)

    def append_runs(self, runs: Sequence[tuple[run_rows.EncodedRun, RunMeta | None]]) -> None:
        """Append whole runs given as rows (:func:`encode_run`), with their metadata, in one transaction.

        What a sweep's driver calls with the runs its workers encoded: each table
        gets one INSERT for all the runs, so the driver's cost per run is small
        whatever its size. All or none: a run id already stored (or twice in
        ``runs``) raises :class:`LogIntegrityError` and nothing is written.
        """
        if not runs:
            return
        ids = [r.run_id for r, _ in runs]
        if len(set(ids)) != len(ids):
            raise LogIntegrityError(f"runs {sorted(i for i in set(ids) if ids.count(i) > 1)} are given twice")
        with self._lock, self._guard("write"):
            if self.read_only:
                raise StoreWriteError(f"{self.path} is open read-only", self.path)
            with self.transaction():
                con = self._con
                taken = con.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                                    [ids]).fetchall()
                if taken:
                    raise LogIntegrityError(f"run {taken[0][0]!r} already exists")
                first = con.execute("SELECT coalesce(max(run_key), 0) + 1 FROM runs").fetchall()[0][0]
                keys = list(range(first, first + len(runs)))
                self._store_systems({run.system_digest: (lambda run=run: (run.system_json, run.system_arrays, run.modules))
                                     for run, _ in runs})
                encoded = [r for r, _ in runs]
                self._insert_rows("runs", pa.table({
                    "run_id": pa.array(ids, pa.string()), "run_key": pa.array(keys, pa.int32()),
                    "system_id": pa.array([r.system_id for r in encoded], pa.string()),
                    "system_digest": pa.array([r.system_digest for r in encoded], pa.string()),
                    "seed": pa.array([r.seed for r in encoded], pa.int64()),
                    "n_modules": pa.array([r.n_modules for r in encoded], pa.int32()),
                    "package_version": pa.array([r.package_version for r in encoded], pa.string())}))
                self._insert_rows("run_added_modules", pa.concat_tables(
                    [run_rows.with_key(r.added, k) for r, k in zip(encoded, keys)]))
                self._insert_rows("run_params", pa.concat_tables(
                    [r.params.add_column(0, "run_id", pa.array([r.run_id] * r.params.num_rows, pa.string()))
                     for r in encoded]))
                self._insert_rows("eta_frames", pa.concat_tables([r.frames for r in encoded]))
                self._insert_blocks(pa.concat_tables([run_rows.with_key(r.blocks, k) for r, k in zip(encoded, keys)]))
                with _registered(con, "_cfc_events", pa.concat_tables([r.events for r in encoded])):
                    con.execute("INSERT INTO events SELECT * FROM _cfc_events")
                    con.execute(_MATERIALISED_SQL["mat_steps"])
                self._insert_rows("mat_positions", pa.table({
                    "name": pa.array(["mat_steps"] * len(runs), pa.string()), "run_id": pa.array(ids, pa.string()),
                    "seq": pa.array([r.last_seq for r in encoded], pa.int64())}))
                metas = [(r.run_id, m) for r, m in runs if m is not None]
                if metas:
                    self._insert_rows("run_meta", pa.table({
                        "run_id": pa.array([i for i, _ in metas], pa.string()),
                        "name": pa.array([m.name for _, m in metas], pa.string()),
                        "tags": pa.array([json.dumps(dict(m.tags), sort_keys=True) for _, m in metas], pa.string()),
                        "study": pa.array([m.study for _, m in metas], pa.string()),
                        "sweep": pa.array([m.sweep for _, m in metas], pa.string()),
                        "parent": pa.array([m.parent for _, m in metas], pa.string()),
                        "started_at": pa.array([m.started_at for _, m in metas], pa.string()),
                        "duration_s": pa.array([m.duration_s for _, m in metas], pa.float64())}),
                        "INSERT OR REPLACE INTO run_meta SELECT run_id, name, tags, study, sweep, parent, "
                        "started_at::TIMESTAMPTZ, duration_s FROM _cfc_rows")
            for run, key in zip(encoded, keys):
                self._next_seq[run.run_id] = run.last_seq + 1
                self._keys[run.run_id] = key
                self._mat_seq[run.run_id] = run.last_seq
            self._unfolded |= any(r.finished for r in encoded)

    def _insert_rows(self, table: str, rows: pa.Table, sql: str | None = None, params: Sequence[Any] = ()) -> None:
        """One INSERT of an Arrow table into one of the store's tables (or ``sql`` reading it as ``_cfc_rows``)."""
        if not rows.num_rows:
            return
        with self._lock, _registered(self._con, "_cfc_rows", rows):
            self._con.execute(sql or f"INSERT INTO {table} SELECT * FROM _cfc_rows", list(params))

    def _insert_blocks(self, blocks: pa.Table) -> None:
        """Insert ``eta_blocks`` rows, padded to whole row groups (:func:`~._run_rows.padded`)."""
        self._insert_rows("eta_blocks", run_rows.padded(blocks, ROW_GROUP_SIZE))

    def _insert_long_form(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Compress η given in long form (``sql`` selects ``run_key, step, idx, eta``) into ``eta_blocks``, run by run.

        For upgrades from schema 3 and imports of exported runs; the caller holds a transaction.
        """
        con = self._con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cfc_long AS {sql}", list(params))
        try:
            for (key,) in con.execute("SELECT DISTINCT run_key FROM _cfc_long ORDER BY run_key").fetchall():
                got = con.execute("SELECT step, eta FROM _cfc_long WHERE run_key = ? ORDER BY step, idx",
                                  [key]).fetchnumpy()
                steps, eta = np.asarray(got["step"]), np.asarray(got["eta"], dtype=np.float64)
                cuts = np.flatnonzero(np.diff(steps)) + 1
                starts = np.concatenate([[0], cuts])
                frames = [(int(steps[a]), part) for a, part in zip(starts, np.split(eta, cuts))]
                self._insert_blocks(run_rows.with_key(run_rows.compress(frames)[0], int(key)))
        finally:
            con.execute("DROP TABLE IF EXISTS _cfc_long")

    def _insert_run_modules(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Module rows given per run (``sql`` selects ``run_key, idx, module_id, kind``, the layout before schema 5
        and of exports) into ``system_modules`` and ``run_added_modules``; the runs are stored already.

        A System's modules (``idx`` below its run's ``n_modules``) come from the
        first of its runs in the rows, once per digest not stored yet; the rest
        were added during their run. For upgrades and imports; the caller holds a transaction.
        """
        con = self._con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cfc_modules AS SELECT m.*, r.system_digest, r.n_modules "
                    f"FROM ({sql}) AS m JOIN runs AS r USING (run_key)", list(params))
        try:
            con.execute("INSERT INTO system_modules SELECT system_digest, idx, module_id, kind FROM _cfc_modules "
                        "WHERE idx < n_modules AND run_key IN (SELECT min(run_key) FROM _cfc_modules "
                        "GROUP BY system_digest) AND system_digest NOT IN (SELECT system_digest FROM system_modules) "
                        "ORDER BY run_key, idx")
            con.execute("INSERT INTO run_added_modules SELECT run_key, idx, module_id, kind FROM _cfc_modules "
                        "WHERE idx >= n_modules ORDER BY run_key, idx")
        finally:
            con.execute("DROP TABLE IF EXISTS _cfc_modules")

    def _register_added_modules(self, run_id: str, added: list) -> None:
        if not added:
            return
        key = self._run_key(run_id)
        start = self._con.execute("SELECT (SELECT n_modules FROM runs WHERE run_key = $1) + "
                                  "(SELECT count(*) FROM run_added_modules WHERE run_key = $1)", [key]).fetchall()[0][0]
        self._insert_rows("run_added_modules", pa.table({
            "run_key": pa.array([key] * len(added), pa.int32()),
            "idx": pa.array(range(start, start + len(added)), pa.int32()),
            "module_id": pa.array([ev.module["id"] for ev in added], pa.string()),
            "kind": pa.array([ev.module["kind"] for ev in added], pa.string())}))

    def _run_key(self, run_id: str) -> int:
        if run_id not in self._keys:
            rows = self._con.execute("SELECT run_key FROM runs WHERE run_id = ?", [run_id]).fetchall()
            if not rows:
                raise UnknownRunError(f"no run {run_id!r} in {self.path}")
            self._keys[run_id] = int(rows[0][0])
        return self._keys[run_id]

    def _register_run(self, run_id: str, started: RunStarted) -> None:
        con = self._con
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():  # the PRIMARY KEY backs this up
            raise LogIntegrityError(f"run {run_id!r} already exists")
        key = con.execute("SELECT coalesce(max(run_key), 0) + 1 FROM runs").fetchall()[0][0]
        s = started.system
        self._store_system(started.system_digest, s)
        n = s.n_modules
        con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, key, s.id, started.system_digest, started.seed, n, started.package_version])
        self._keys[run_id] = int(key)

    def _store_system(self, digest: str, system) -> None:
        """The System once per digest: JSON; with arrays, the skeleton JSON plus each array's bytes, once per array
        digest; and its modules' rows in ``system_modules``."""
        self._store_systems({digest: lambda: (*run_rows.system_form(system), run_rows.module_rows(system))})

    def _store_systems(self, forms: dict[str, Callable[[], tuple[str, dict[str, np.ndarray], pa.Table]]]) -> None:
        """Each System not stored yet, with one query for which are: ``digest: fn``, where ``fn()`` gives its
        ``(json, arrays, module rows)`` (called only for a new digest)."""
        con = self._con
        known = {r[0] for r in con.execute("SELECT system_digest FROM systems WHERE system_digest IN "
                                           "(SELECT unnest(?::VARCHAR[]))", [list(forms)]).fetchall()}
        new = {d: fn() for d, fn in forms.items() if d not in known}
        if not new:
            return
        self._insert_rows("systems", pa.table({"system_digest": pa.array(list(new), pa.string()),
                                               "system_json": pa.array([j for j, _, _ in new.values()], pa.string())}))
        self._insert_rows("system_modules", pa.concat_tables(
            [modules.add_column(0, "system_digest", pa.array([d] * modules.num_rows, pa.string()))
             for d, (_, _, modules) in new.items()]))
        arrays = {d: a for _, parts, _ in new.values() for d, a in parts.items()}
        if not arrays:
            return
        con.execute(_SYSTEM_ARRAYS)  # a file from before array entities lacks it
        known = {r[0] for r in con.execute("SELECT array_digest FROM system_arrays WHERE array_digest IN "
                                           "(SELECT unnest(?::VARCHAR[]))", [list(arrays)]).fetchall()}
        fresh = [(d, a) for d, a in arrays.items() if d not in known]
        self._insert_rows("system_arrays", pa.table({
            "array_digest": pa.array([d for d, _ in fresh], pa.string()),
            "dtype": pa.array([a.dtype.name for _, a in fresh], pa.string()),
            "data": pa.array([np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes() for _, a in fresh],
                             pa.large_binary()),
        }))

    # -- materialised tables ------------------------------------------------------------------
    def _materialise_batch(self, run_id: str, first: int, last: int, steps: bool, finished: bool) -> None:
        """Bring ``mat_steps`` up to ``last`` with the batch in ``_cfc_events`` (``steps``: it has some).

        The table's position must sit just before the batch (none for a new run);
        otherwise (a log written without the tables) the run is caught up from
        the log, which holds this batch too. A finished run's ``mat_run_stats``
        row is folded in later, in bulk (:meth:`_fold_finished`).
        """
        if self._mat_position(run_id) != first - 1:
            self._catch_up_steps([run_id])
        else:
            if steps:
                self._con.execute(_MATERIALISED_SQL["mat_steps"])
            if first == 0:
                self._con.execute("INSERT INTO mat_positions VALUES ('mat_steps', ?, ?)", [run_id, last])
            else:
                self._con.execute("UPDATE mat_positions SET seq = ? WHERE name = 'mat_steps' AND run_id = ?",
                                  [last, run_id])
            self._mat_seq[run_id] = last
        self._unfolded |= finished

    def _mat_position(self, run_id: str) -> int:
        """The last seq of ``run_id`` that ``mat_steps`` reflects (−1 for none)."""
        if run_id not in self._mat_seq:
            rows = self._con.execute("SELECT seq FROM mat_positions WHERE name = 'mat_steps' AND run_id = ?",
                                     [run_id]).fetchall()
            self._mat_seq[run_id] = int(rows[0][0]) if rows else -1
        return self._mat_seq[run_id]

    def _catch_up_steps(self, run_ids: list[str] | None) -> list[str]:
        """Apply the logged events after the position of ``mat_steps`` (all runs, or ``run_ids``); return those runs."""
        con = self._con
        self._mat_seq.clear()
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _cfc_after AS SELECT l.run_id, coalesce(p.seq, -1) AS after, "
                        "l.seq AS last FROM (SELECT run_id, max(seq) AS seq FROM ("
                        "SELECT run_id, seq FROM events UNION ALL SELECT run_id, seq FROM eta_frames) "
                        "WHERE ?::VARCHAR[] IS NULL OR run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY run_id) AS l "
                        "LEFT JOIN mat_positions AS p ON p.name = 'mat_steps' AND p.run_id = l.run_id "
                        "WHERE coalesce(p.seq, -1) < l.seq", [run_ids, run_ids])
            con.execute("CREATE OR REPLACE TEMP VIEW _cfc_events AS SELECT e.* FROM events AS e "
                        "JOIN _cfc_after AS a ON a.run_id = e.run_id AND e.seq > a.after")
            con.execute(_MATERIALISED_SQL["mat_steps"])
            con.execute("DELETE FROM mat_positions WHERE name = 'mat_steps' AND run_id IN (SELECT run_id FROM _cfc_after)")
            con.execute("INSERT INTO mat_positions SELECT 'mat_steps', run_id, last FROM _cfc_after")
            return sorted(r[0] for r in con.execute("SELECT run_id FROM _cfc_after").fetchall())
        finally:
            con.execute("DROP VIEW IF EXISTS _cfc_events")
            con.execute("DROP TABLE IF EXISTS _cfc_after")

    def _fold_finished(self) -> list[str]:
        """Add the ``mat_run_stats`` row of every finished run that lacks one, with its position; return those runs."""
        con = self._con
        folded = sorted(r[0] for r in con.execute(_MATERIALISED_SQL["mat_run_stats"]).fetchall())
        if folded:
            con.execute("INSERT INTO mat_positions SELECT 'mat_run_stats', run_id, seq FROM events "
                        "WHERE type = 'RunFinished' AND run_id IN (SELECT unnest(?::VARCHAR[]))", [folded])
        self._unfolded = False
        return folded

    def _catch_up(self, run_ids: list[str] | None) -> list[str]:
        return sorted(set(self._catch_up_steps(run_ids)) | set(self._fold_finished()))

    def refresh_materialised(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """Catch the materialised tables up with the log, in one transaction; return the runs whose rows changed.

        Appends keep ``mat_steps`` current and :meth:`close` folds finished runs
        into ``mat_run_stats``; this does both now, and catches up logs written by
        other means (an import, a file from before the tables existed):
        ``mat_steps`` for ``run_ids`` (default: every run), ``mat_run_stats`` for
        every finished run without a row. Idempotent.
        """
        if self.read_only:
            raise StoreWriteError(f"{self.path} is open read-only", self.path)
        with self._guard("write"), self.transaction():
            return self._catch_up(None if run_ids is None else list(run_ids))

    def rebuild_materialised(self) -> int:
        """Recompute every materialised table from the log alone, in one transaction; return the number of runs.

        The result equals what the incremental updates built, row for row.

        >>> from complexity_from_constraints.adapters import DuckDBStore
        >>> with DuckDBStore(":memory:") as store:
        ...     store.rebuild_materialised()
        0
        """
        if self.read_only:
            raise StoreWriteError(f"{self.path} is open read-only", self.path)
        with self._guard("write"), self.transaction():
            for name in _MATERIALISED:
                self._con.execute(f"DELETE FROM {name}")  # a name from the fixed tuple above, not user input
            self._con.execute("DELETE FROM mat_positions")
            self._catch_up(None)
            return int(self._con.execute("SELECT count(*) FROM runs").fetchall()[0][0])

    # -- reading ------------------------------------------------------------------------------
    @_guarded("read")
    def read(self, run_id: str, *, until_step: int | None = None, types: Iterable[str] | None = None) -> list[Recorded]:
        self._require(run_id)
        wanted = None if types is None else list(types)
        where, params = ["run_id = ?"], [run_id]
        if until_step is not None:
            where.append("(step IS NULL OR step <= ?) AND type <> 'RunFinished'")
            params.append(until_step)
        out: list[Recorded] = []
        model_types = None if wanted is None else [t for t in wanted if t != EtaRecorded.type]
        with self._lock:
            if model_types is None or model_types:
                sql = f"SELECT seq, type, schema_version, payload FROM events WHERE {' AND '.join(where)}"
                if model_types is not None:
                    sql += f" AND type IN ({', '.join('?' * len(model_types))})"
                rows = self._con.execute(sql + " ORDER BY seq", params + (model_types or [])).fetchall()
                out.extend(Recorded(run_id, seq, self._decode(run_id, seq, t, v, p)) for seq, t, v, p in rows)
            if wanted is None or EtaRecorded.type in wanted:
                out.extend(self._frames(run_id, until_step))
        out.sort(key=lambda r: r.seq)
        return out

    def _frames(self, run_id: str, until_step: int | None, only_steps: Sequence[int] | None = None,
                latest: int | None = None) -> list[Recorded]:
        """The η frames up to ``until_step``, or only those of ``only_steps``, or only the last one at or before
        ``latest``."""
        where, params = "run_id = ?", [run_id]
        if latest is not None:
            where = where + " AND step = (SELECT max(step) FROM eta_frames WHERE run_id = ? AND step <= ?)"
            params = params + [run_id, latest]
        elif only_steps is not None:
            where, params = where + " AND step IN (SELECT unnest(?::INTEGER[]))", params + [list(only_steps)]
        elif until_step is not None:
            where, params = where + " AND step <= ?", params + [until_step]
        meta = self._con.execute(f"SELECT seq, step, schema_version, n FROM eta_frames WHERE {where} ORDER BY seq",
                                 params).fetchall()
        if not meta:
            return []
        few = latest is not None or only_steps is not None  # a read of a few frames (not a whole run)
        cached_run, etas = self._decoded
        if not (few and cached_run == run_id and all(m[1] in etas for m in meta)):  # frames are read-only: shared
            etas = self._decoded_span(run_id, min(m[1] for m in meta), max(m[1] for m in meta))
            if few:  # kept for the next read of a few frames
                self._decoded = (run_id, etas)
        return [Recorded(run_id, int(seq), _frame(int(step), int(version), _checked(run_id, etas, step, n)))
                for seq, step, version, n in meta]

    def _decoded_span(self, run_id: str, lo: int, hi: int) -> dict[int, np.ndarray]:
        """Every η frame from the key frame of ``lo``'s chain to step ``hi``, decoded, by step."""
        key = self._run_key(run_id)
        # the frames from the key frame of the first one's chain on: each is decoded from those before it
        pieces = self._con.sql(
            "SELECT step, base, data FROM eta_blocks WHERE run_key = $1 AND step BETWEEN "
            "(SELECT base FROM eta_blocks WHERE run_key = $1 AND step = $2 AND part = 0) AND $3 ORDER BY step, part",
            params=[key, lo, hi]).to_arrow_table().combine_chunks()
        # The pieces of consecutive rows lie end to end in the binary column's buffer: a frame is one slice of it.
        data = pieces.column("data").chunk(0) if pieces.num_rows else pa.array([], pa.binary())
        ends = np.frombuffer(data.buffers()[1], np.int32, len(data) + 1, data.offset * 4)
        buffer = memoryview(data.buffers()[2]) if pieces.num_rows else memoryview(b"")
        step_of = pieces.column("step").to_numpy()
        first = np.flatnonzero(np.diff(step_of, prepend=-1) != 0)  # each frame's first piece
        last = np.append(first[1:], len(step_of))
        rows = [(int(step_of[a]), int(pieces.column("base")[int(a)].as_py()), buffer[ends[a]:ends[b]])
                for a, b in zip(first, last)]
        etas: dict[int, np.ndarray] = {}
        prev1 = prev2 = None
        for step, base, data in rows:
            if step == base:
                prev1 = prev2 = None
            try:
                eta = codec.decode(data, codec.predict(prev1, prev2))
            except (ValueError, struct.error) as exc:
                raise LogIntegrityError(f"run {run_id!r}: the η frame of step {step} does not decode: {exc}") from exc
            etas[int(step)] = eta
            prev1, prev2 = eta, prev1
        return etas

    def _decode(self, run_id: str, seq: int, event_type: str, version: int, payload: str):
        try:
            return decode(event_type, version, self._full_payload(event_type, payload))
        except (SchemaVersionError, LogIntegrityError):
            raise
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            cause = str(exc).splitlines()
            raise UnreadableEventError(run_id, seq, event_type, " ".join(cause[:3]) if cause else repr(exc)) from exc

    def _full_payload(self, event_type: str, payload: str) -> str | dict[str, Any]:
        if event_type != "RunStarted":
            return payload
        data = json.loads(payload)
        rows = self._con.execute("SELECT system_json FROM systems WHERE system_digest = ?",
                                 [data["system_digest"]]).fetchall()
        if not rows:
            raise LogIntegrityError(f"system {data['system_digest']} of a RunStarted event is missing")
        data["system"] = json.loads(rows[0][0])
        if "module_arrays" in data["system"] or "coupling_arrays" in data["system"]:
            data["system"] = System.resolve_arrays(data["system"], self._system_arrays(data["system"]))
        return data

    def _system_arrays(self, skeleton: dict) -> dict[str, np.ndarray]:
        """The arrays a System skeleton names, read-only, straight from their stored bytes."""
        wanted = sorted(set(System.array_digests(skeleton)))
        rows = self._con.execute("SELECT array_digest, dtype, data FROM system_arrays WHERE array_digest IN "
                                 "(SELECT unnest(?::VARCHAR[]))", [wanted]).fetchall()
        arrays = {d: np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")) for d, dtype, data in rows}
        missing = [d for d in wanted if d not in arrays]
        if missing:
            raise LogIntegrityError(f"array {missing[0]} of a stored System is missing from system_arrays")
        return arrays

    @_guarded("read")
    def latest_eta(self, run_id: str, step: int) -> EtaRecorded | None:
        self._require(run_id)
        with self._lock:
            frames = self._frames(run_id, None, latest=step)
        return frames[0].event if frames else None  # type: ignore[return-value]

    @_guarded("read")
    def etas_at(self, run_id: str, steps: Iterable[int]) -> dict[int, EtaRecorded]:
        self._require(run_id)
        wanted = sorted({int(s) for s in steps})
        if not wanted:
            return {}
        with self._lock:
            frames = self._frames(run_id, None, only_steps=wanted)
        return {r.event.step: r.event for r in frames}  # type: ignore[misc]

    @_guarded("read")
    def module_ids(self, run_id: str) -> tuple[str, ...]:
        self._require(run_id)
        with self._lock:
            ids = self._con.execute("SELECT module_id FROM run_modules WHERE run_key = ? ORDER BY idx",
                                    [self._run_key(run_id)]).fetchnumpy()["module_id"]
        return tuple(np.asarray(ids, dtype=object).tolist())  # one C-level conversion, not a row loop

    @_guarded("read")
    def runs(self) -> list[RunInfo]:
        with self._lock:
            rows = self._con.execute(
                "SELECT run_id, system_id, system_digest, seed, n_modules, status <> 'incomplete' FROM v_runs").fetchall()
        return [RunInfo(*row) for row in rows]

    @_guarded("read")
    def run_info(self, run_id: str) -> RunInfo:
        """One run's registry row, read from ``runs`` alone (``runs()`` reads every run through ``v_runs``)."""
        known = self._finished.get(run_id)
        if known is not None:  # a finished run's row never changes (only deleting it, which forgets it here)
            return known
        with self._lock:
            rows = self._con.execute(
                "SELECT run_id, system_id, system_digest, seed, n_modules, EXISTS (SELECT 1 FROM events AS e "
                "WHERE e.run_id = r.run_id AND e.type = 'RunFinished') FROM runs AS r WHERE run_id = ?",
                [run_id]).fetchall()
        if not rows:
            raise UnknownRunError(f"no run {run_id!r} in {self.path}")
        info = RunInfo(*rows[0])
        if info.complete and not self.in_transaction():
            self._finished[run_id] = info
        return info

    @_guarded("read")
    def is_complete(self, run_id: str) -> bool:
        with self._lock:
            return bool(self._con.execute("SELECT 1 FROM events WHERE run_id = ? AND type = 'RunFinished'",
                                          [run_id]).fetchall())

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run one reading statement (parameters bound, never formatted in) and return a Polars DataFrame.

        Queries read, even on a writable store: one ``SELECT`` (``WITH``,
        ``FROM``, ``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``), an
        ``EXPLAIN`` of one, or a ``PRAGMA`` that only reports. Anything else
        (``DELETE``, ``UPDATE``, ``INSERT``, ``DROP``, ``CREATE``, ``ATTACH``,
        ``COPY``, ``SET``, ``CALL``, several statements) is refused with
        :class:`StoreWriteError` before it runs; outside a ``transaction()``
        the statement also runs in a transaction that is rolled back.
        Errors in the SQL itself come back as DuckDB reports them.
        """
        _check_reading(sql, self.path)
        with self._lock:
            try:
                if self.in_transaction():
                    return _frame_of(self._con.sql(sql, params=params))
                self._con.execute("BEGIN TRANSACTION")
                try:
                    return _frame_of(self._con.sql(sql, params=params))
                finally:
                    self._con.execute("ROLLBACK")
            except (duckdb.IOException, duckdb.InternalException, duckdb.FatalException,
                    duckdb.SerializationException) as exc:
                raise translate(exc, self.path, "read") from exc
            except duckdb.Error as exc:
                if "corrupt" in str(exc).lower():
                    raise translate(exc, self.path, "read") from exc
                raise

    def in_transaction(self) -> bool:
        return self._depth > 0 and self._owner == threading.get_ident()

    def _taken_ids(self, stem: str) -> set[str]:
        with self._lock, self._guard("read"):
            rows = self._con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [stem]).fetchall()
        return {r[0] for r in rows}

    def record_meta(self, run_id: str, meta: RunMeta) -> None:
        """Keep a run's name, tags, study, sweep, parent, start and duration in ``run_meta`` (replacing its row)."""
        with self._lock, self._guard("write"):
            if self.read_only:
                raise StoreWriteError(f"{self.path} is open read-only", self.path)
            values = [meta.name, json.dumps(dict(meta.tags), sort_keys=True), meta.study, meta.sweep, meta.parent,
                      meta.started_at, meta.duration_s]
            # UPDATE, then INSERT if there was no row: INSERT OR REPLACE cost 4.2 ms of CPU per call, these 1.1 + 1.5
            # (relax calls this twice per run: when it starts and with its duration when it ends)
            with self.transaction():
                (changed,) = self._con.execute(
                    "UPDATE run_meta SET name = ?, tags = ?, study = ?, sweep = ?, parent = ?, started_at = ?, "
                    "duration_s = ? WHERE run_id = ?", [*values, run_id]).fetchall()[0]
                if not changed:
                    self._con.execute("INSERT INTO run_meta VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [run_id, *values])

    def record_study(self, study: str, result_json: str) -> None:
        """Keep what a study found (its ``StudyResult`` as JSON) beside its runs; ``v_study_results`` shows it."""
        with self._lock, self._guard("write"):
            if self.read_only:
                raise StoreWriteError(f"{self.path} is open read-only", self.path)
            self._con.execute("INSERT INTO study_results VALUES (?, now(), ?)", [study, result_json])

    def run_meta(self, run_id: str) -> RunMeta | None:
        with self._lock:
            rows = self._con.execute("SELECT name, tags, study, sweep, parent, strftime(started_at, '%Y-%m-%dT%H:%M:%S.%g'), "
                                     "duration_s FROM run_meta WHERE run_id = ?", [run_id]).fetchall()
        if not rows:
            return None
        name, tags, study, sweep, parent, started, duration = rows[0]
        return RunMeta(name, json.loads(tags or "{}"), study, sweep, parent, started, duration)

    def _register_params(self, run_id: str, started: RunStarted) -> None:
        """Every config field (dotted) and the System's scalar parameters as rows of ``run_params``."""
        rows = run_params(started)
        self._insert_rows("run_params", pa.table({"run_id": pa.array([run_id] * len(rows), pa.string()),
                                                  "key": pa.array([k for k, _ in rows], pa.string()),
                                                  "value": pa.array([v for _, v in rows], pa.string())}))

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Remove whole runs in one transaction (all or none) and record each in ``deletions``; return the events removed.

        The only mutation of the log: every table that holds a run's rows loses
        them together, and ``deletions`` keeps the run id, its event count and when.
        """
        ids = sorted(set(run_ids))
        with self._lock, self._guard("write"):
            if self.read_only:
                raise StoreWriteError(f"{self.path} is open read-only", self.path)
            known = {r[0] for r in self._con.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                                                     [ids]).fetchall()}
            unknown = [r for r in ids if r not in known]
            if unknown:
                raise UnknownRunError(f"no run {unknown[0]!r} in {self.path}")
            with self.transaction():
                con = self._con
                con.execute("CREATE OR REPLACE TEMP TABLE _cfc_gone AS SELECT r.run_id, r.run_key, "
                            "(SELECT count(*) FROM events AS e WHERE e.run_id = r.run_id) + "
                            "(SELECT count(*) FROM eta_frames AS f WHERE f.run_id = r.run_id) AS events "
                            "FROM runs AS r WHERE r.run_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
                removed = int(con.execute("SELECT coalesce(sum(events), 0) FROM _cfc_gone").fetchall()[0][0])
                for table in ("eta_blocks", "run_added_modules"):
                    con.execute(f"DELETE FROM {table} WHERE run_key IN (SELECT run_key FROM _cfc_gone)")
                for table in ("events", "eta_frames", "mat_steps", "mat_positions", "mat_run_stats", "run_meta",
                              "run_params", "runs"):
                    con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM _cfc_gone)")
                con.execute("INSERT INTO deletions SELECT run_id, events, now() FROM _cfc_gone")
                con.execute("DROP TABLE _cfc_gone")
            for run_id in ids:
                self._finished.pop(run_id, None)
                self._decoded = (None, {})
                self._next_seq.pop(run_id, None)
                self._keys.pop(run_id, None)
                self._mat_seq.pop(run_id, None)
                self._chains.pop(run_id, None)
            return removed

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple]:
        """Run any SQL, writes included, and return its rows: for this package's own maintenance (import, the
        sweep driver's tables, repair tests), never the public API (``query`` reads only)."""
        with self._lock, self._guard("write"):  # a write on a read-only store fails in DuckDB: a StoreWriteError
            return self._con.execute(sql, params).fetchall()

    @contextmanager
    def threads(self, n: int) -> Iterator[None]:
        """DuckDB works with at most ``n`` threads inside the block (its setting is restored after).

        The setting belongs to the DuckDB instance, which the process's store files share: inside the
        block, the other stores open in this process work with ``n`` threads too.
        """
        with self._lock:
            before = self._con.execute("SELECT current_setting('threads')").fetchall()[0][0]
            self._con.execute(f"SET threads = {int(n)}")
        try:
            yield
        finally:
            with self._lock:
                if not getattr(self, "_closed", False):
                    self._con.execute(f"SET threads = {int(before)}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the store for one multi-statement transaction (rolled back if anything raises).

        Re-entrant: inside another ``transaction()`` it joins the outer one, which commits or rolls back.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._con.execute("BEGIN TRANSACTION")
            self._depth, self._owner = 1, threading.get_ident()
            try:
                yield
            except BaseException:
                try:
                    self._con.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # the connection is broken past rolling back; the block's error says why, not this one
                self._next_seq.clear()
                self._keys.clear()
                self._mat_seq.clear()
                self._chains.clear()
                self._finished.clear()
                self._decoded = (None, {})
                raise
            finally:
                self._depth, self._owner = 0, None
            self._con.execute("COMMIT")

    def checkpoint(self) -> None:
        """Write the WAL into the database file now (DuckDB's ``CHECKPOINT``), so the next open has nothing to replay."""
        with self._lock, self._guard("checkpoint"):
            if not self.read_only:
                self._con.execute("CHECKPOINT")

    def close(self, *, checkpoint: bool = True) -> None:
        """Fold the runs finished here into ``mat_run_stats`` (one transaction), checkpoint, close and release the file.

        Committed batches are durable in the WAL already; ``checkpoint=False``
        skips writing the WAL into the file: the next open replays it, and until
        then the file without its ``.wal`` beside it lacks those batches. A store
        dropped without ``close()`` releases its file when it is collected, without
        folding or a checkpoint.
        """
        with self._lock:
            if getattr(self, "_closed", False):
                return
            try:
                if self._unfolded and not self.read_only:
                    with self._guard("close"), self.transaction():
                        self._fold_finished()
                if checkpoint:
                    self.checkpoint()
            finally:
                self._closed = True
                try:
                    self._abandoned()  # disconnects and releases the file, once
                finally:
                    self._held = None

    def _require(self, run_id: str) -> None:
        if getattr(self, "_closed", False):
            raise StoreError(f"{self.path} is closed; read what you need from it (a replayed state's ids "
                             f"included) before closing it", self.path)
        if run_id in self._finished:
            return
        with self._lock:
            if not self._con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall():
                raise UnknownRunError(f"no run {run_id!r} in {self.path}")


def _check_reading(sql: str, path: str) -> None:
    """Refuse, before it runs, SQL that is not exactly one reading statement."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # a syntax error: let DuckDB report it where it runs
    if len(statements) != 1:
        raise StoreWriteError(f"{path}: store.query runs one statement, got {len(statements)}", path)
    (stmt,) = statements
    kind = stmt.type
    text = stmt.query.strip().rstrip(";").strip()
    if kind == duckdb.StatementType.EXPLAIN:
        words = text.split(None, 2)
        inner = text.split(None, 2 if len(words) > 1 and words[1].lower() == "analyze" else 1)[-1]
        return _check_reading(inner, path)
    if kind == duckdb.StatementType.PRAGMA:
        name = text.split(None, 1)[1].split("(")[0].split("=")[0].strip().lower() if " " in text else ""
        if name in _READ_PRAGMAS and "=" not in text:
            return
    elif kind in _READ_STATEMENTS:
        return
    raise StoreWriteError(f"{path}: store.query only reads; {kind.name} statements are refused "
                          f"(the log is append-only)", path)


def _frame_of(rel) -> pl.DataFrame:
    return rel.pl() if rel is not None else pl.DataFrame()


def _checked(run_id: str, etas: dict[int, np.ndarray], step: int, n: int) -> np.ndarray:
    """The decoded η of ``step``, checked against the size its frame row records."""
    eta = etas.get(int(step))
    if eta is None or eta.size != n:
        raise LogIntegrityError(f"run {run_id!r}: the η frame of step {step} holds "
                                f"{'nothing' if eta is None else eta.size} values, its row says {n}")
    return eta


def _frame(step: int, version: int, eta: Any) -> EtaRecorded:
    if version != EtaRecorded.schema_version:
        upcast(EtaRecorded.type, version, {})  # raises for unknown versions; v1 is the only one so far
    arr = np.asarray(eta, dtype=np.float64)
    arr.setflags(write=False)
    return EtaRecorded(step=step, eta=arr)
