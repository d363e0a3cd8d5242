"""How a store reaches its file: the process's DuckDB instance, the file's first bytes, DuckDB's errors typed.

The instance: store files are attached to it while their store is open.

Starting a DuckDB instance costs 16–25 ms, a third of what opening and closing
a store cost when each store started its own. One in-memory instance per
process (made at the first open and kept) hosts every store file: a store
works on a cursor of its own whose default database (``USE``) is its file,
attached as ``cfc_store`` (``cfc_store_2``, … for files open at the same
time), and its file is detached, which releases it to other processes, when
the store closes. The instance's settings (threads, checkpoint on shutdown
off) are shared by its files. A file this instance has attached already (a
second read-only store of it) is not attached twice: its store starts an
instance of its own, as a process forked from one that holds the instance does.

:func:`sniff` refuses a file that is not a DuckDB database from its first
bytes, before DuckDB opens it; :func:`translate` turns a DuckDB error into the
:class:`StoreError` subclass its cause calls for, naming the file.
"""

from __future__ import annotations

import os
import threading

import duckdb

from complexity_from_constraints.entities import (
    ForeignFileError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreWriteError,
)

from . import _eta_codec as codec
from ._kind_functions import register_kind_functions

# Every connection a store opens: no extension is ever fetched or loaded behind our back (opening a
# SQLite file would otherwise download the sqlite scanner).
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
ROW_GROUP_SIZE = 2048  # rows per row group of a store file (see DuckDBStore._connect)
_ALIAS = "cfc_store"  # the name a store file is attached under (current_database() in SQL); cfc_store_2, … beside it

# The instance (its root connection, the pid that made it). Attaching and detaching go through the root connection
# under _HOST_LOCK; each store works on a cursor of its own whose default database is its file.
_HOST_LOCK = threading.RLock()  # re-entrant: a store collected unclosed is detached by its finalizer, which GC may run
# in a thread that is attaching
_host: tuple[duckdb.DuckDBPyConnection, int] | None = None
_host_files: dict[str, str] = {}  # alias -> real path of the file attached under it
_hosted: dict[int, str] = {}  # id(cursor) -> the alias its store attached


def _host_root() -> duckdb.DuckDBPyConnection:
    """The instance's root connection, made on first use (call with ``_HOST_LOCK`` held)."""
    global _host
    if _host is None or _host[1] != os.getpid():
        con = duckdb.connect(":memory:", config=_CONFIG)
        con.execute("PRAGMA disable_checkpoint_on_shutdown")  # stores checkpoint when close(checkpoint=...) says
        _host = (_functions(con), os.getpid())  # every cursor of the instance has the functions
        _host_files.clear()
        _hosted.clear()
    return _host[0]


def _forget_host_in_child() -> None:
    """After a fork: the child makes its own instance when it opens a store; the inherited one is never used or freed
    (its DuckDB threads stayed in the parent, so its destructor could wait for them for ever)."""
    global _host, _HOST_LOCK
    if _host is not None:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(_host[0]))
    _host, _HOST_LOCK = None, threading.RLock()  # a lock held by another thread at the fork stays held in the child
    _host_files.clear()
    _hosted.clear()


os.register_at_fork(after_in_child=_forget_host_in_child)


def connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the store file at ``path`` (``":memory:"``: a database of its own).

    The file is attached with row groups of :data:`ROW_GROUP_SIZE` rows, to the
    process's instance unless that has it attached already (a second read-only
    store of it), in which case to an instance of its own. The kind and η
    functions the views call are registered. Close it with :func:`disconnect`.
    Raises DuckDB's error if the file does not attach (busy, broken, not a database).
    """
    if path == ":memory:":
        return _functions(duckdb.connect(path, config=_CONFIG))
    real = os.path.realpath(path)
    with _HOST_LOCK:
        root = _host_root()
        if real not in _host_files.values():
            alias = next(a for a in (_ALIAS, *(f"{_ALIAS}_{k}" for k in range(2, len(_host_files) + 3)))
                         if a not in _host_files)
            try:
                _attach(root, path, alias, read_only)
            except duckdb.Error as exc:
                if "unique file handle conflict" not in str(exc).lower():
                    raise
            else:  # (a conflict: attached by a connection this module does not know of; an instance of its own)
                _host_files[alias] = real
                con = root.cursor()
                _hosted[id(con)] = alias
                try:
                    con.execute(f"USE {alias}")
                except BaseException:
                    disconnect(con)
                    raise
                return con
    con = duckdb.connect(":memory:", config=_CONFIG)
    try:
        _attach(con, path, _ALIAS, read_only)
        con.execute(f"USE {_ALIAS}")
    except BaseException:
        con.close()
        raise
    return _functions(con)


def _attach(con: duckdb.DuckDBPyConnection, path: str, alias: str, read_only: bool) -> None:
    quoted = path.replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS {alias} (ROW_GROUP_SIZE {ROW_GROUP_SIZE}{', READ_ONLY' if read_only else ''})")


def _functions(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` with the functions the views call (they belong to its instance; registering again is refused quietly)."""
    register_kind_functions(con)
    codec.register_eta_functions(con)
    return con


def disconnect(con: duckdb.DuckDBPyConnection) -> None:
    """Close a store's connection; a file attached to the process's instance is detached, which releases it."""
    with _HOST_LOCK:
        alias = _hosted.pop(id(con), None)
    con.close()  # ends the cursor's transaction, if one is left, and its use of the file
    if alias is None:
        return
    with _HOST_LOCK:
        if _host is None or _host[1] != os.getpid() or alias not in _host_files:
            return
        _host[0].execute(f"DETACH DATABASE IF EXISTS {alias}")
        del _host_files[alias]


_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
_SQLITE_MAGIC = b"SQLite format 3\x00"


def sniff(path: str) -> None:
    """Refuse, from its first bytes, a file that is not a DuckDB database (SQLite, a PNG, a truncated header)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}", path) from exc
    if head.startswith(_SQLITE_MAGIC):
        raise ForeignFileError(f"{path} is a SQLite database, not a cfc store (DuckDB stores only)", path)
    if len(head) < 12 or head[8:12] != _DUCKDB_MAGIC:
        kind = _file_kind(head)
        if kind == "duckdb-truncated":
            raise StoreCorruptError(f"{path}: truncated DuckDB header ({len(head)} bytes)", path)
        raise ForeignFileError(f"{path} is not a DuckDB database{f' (it looks like {kind})' if kind else ''}, "
                               f"not a cfc store", path)


def _file_kind(head: bytes) -> str:
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"{") or head.startswith(b"["):
        return "JSON text"
    if head.startswith(b"PAR1"):
        return "a Parquet file"
    if len(head) < 12:
        return "duckdb-truncated"
    return ""


# Cause → error class, by what DuckDB says (its exception classes are too coarse to tell these apart).
_CAUSES = (
    (("could not set lock", "conflicting lock", "lock on file"), StoreBusyError,
     "is open for writing in another process; wait for it to finish (DuckDB allows one writer and no concurrent "
     "readers across processes)"),
    (("different configuration",), StoreBusyError, "is already open in this process with another mode"),
    (("no space left", "file too large", "disk quota"), StoreWriteError, "disk full"),
    (("permission denied", "read-only file system", "read-only mode", "read only"), StoreWriteError, "not writable"),
    (("corrupt", "checksum", "not a valid duckdb", "could not read enough bytes", "failure while replaying wal",
      "serialization", "deserializ", "invalidated", "fatal", "internal error"), StoreCorruptError, "damaged"),
)


def translate(exc: BaseException, path: str, action: str) -> StoreError:
    """The typed error for a DuckDB failure while ``action`` on ``path``."""
    text = str(exc)
    low = text.lower()
    for needles, cls, what in _CAUSES:
        if any(n in low for n in needles):
            return cls(f"{path}: cannot {action}: {what}: {text.splitlines()[0]}", path)
    if isinstance(exc, (duckdb.IOException, duckdb.InternalException, duckdb.FatalException,
                        duckdb.SerializationException)):
        return StoreCorruptError(f"{path}: cannot {action}: {text.splitlines()[0]}", path)
    return StoreError(f"{path}: cannot {action}: {type(exc).__name__}: {text.splitlines()[0]}", path)
