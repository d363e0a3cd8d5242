"""The process's DuckDB instance, to which store files are attached while their store is open.

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
"""

from __future__ import annotations

import os
import threading

import duckdb

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
        register_kind_functions(con)  # the functions belong to the instance: every cursor has them
        codec.register_eta_functions(con)
        _host = (con, os.getpid())
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


def attach(path: str, read_only: bool) -> duckdb.DuckDBPyConnection | None:
    """A cursor of the process's instance whose default database is the file at ``path``, attached with row groups of
    :data:`ROW_GROUP_SIZE` rows; ``None`` if this instance has the file attached already (the caller opens one of its
    own). Raises DuckDB's error if the file does not attach (busy, broken, not a database)."""
    real = os.path.realpath(path)
    with _HOST_LOCK:
        root = _host_root()
        if real in _host_files.values():
            return None
        alias = next(a for a in (_ALIAS, *(f"{_ALIAS}_{k}" for k in range(2, len(_host_files) + 3)))
                     if a not in _host_files)
        quoted = path.replace("'", "''")
        try:
            root.execute(f"ATTACH '{quoted}' AS {alias} (ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
                         f"{', READ_ONLY' if read_only else ''})")
        except duckdb.Error as exc:
            if "unique file handle conflict" in str(exc).lower():
                return None  # attached by a connection this module does not know of
            raise
        _host_files[alias] = real
        con = root.cursor()
        _hosted[id(con)] = alias
    try:
        con.execute(f"USE {alias}")
    except BaseException:
        disconnect(con)
        raise
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
