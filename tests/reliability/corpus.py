"""A corpus of damaged, foreign, older and newer store files, built from scratch, and how each must be refused.

Shared by ``test_files.py`` and ``bench/reliability.py``. Every case builds its
file(s) in an empty folder; opening (and, for damage the header does not show,
reading everything) must raise the case's typed error, leave every byte of the
folder as it was, and release the file at once (a second attempt gets the same
error, not :class:`StoreBusyError`).
"""

from __future__ import annotations

import gzip
import hashlib
import random
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import (
    ForeignFileError,
    RelaxConfig,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    StoreWriteError,
    standard_system,
)
from complexity_from_constraints.projectors import relax

FIXTURES = Path(__file__).resolve().parents[1] / "adapters" / "fixtures"
BLOCK = 262144  # DuckDB's block size
HEADERS = 3 * 4096  # the file header and the two database headers


def make_store(path: Path, *, modules: int = 400, steps: int = 40) -> Path:
    """A healthy store with a couple of runs, big enough to span several data blocks, checkpointed (no WAL)."""
    store = DuckDBStore(path)
    system = standard_system(modules, seed=1)
    relax(system, RelaxConfig(steps=steps, step_size=0.05), store=store, flush_every=8)
    relax(system, RelaxConfig(steps=5), seed=2, store=store)
    store.close(checkpoint=True)
    return path


def fixture(name: str, folder: Path) -> Path:
    """A store written by an earlier commit's code, unpacked into ``folder``."""
    out = folder / name
    out.write_bytes(gzip.decompress((FIXTURES / f"{name}.gz").read_bytes()))
    return out


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, Path], Path]  # (healthy store to copy, empty folder) -> the file to open
    error: type[StoreError]
    read_only: bool = False
    read_all: bool = False  # the damage shows only when the data is read


def _copy(base: Path, folder: Path) -> Path:
    out = folder / "runs.duckdb"
    shutil.copyfile(base, out)
    return out


def _truncate(size: Callable[[int], int]) -> Callable[[Path, Path], Path]:
    def build(base, folder):
        out = _copy(base, folder)
        with open(out, "r+b") as handle:
            handle.truncate(size(out.stat().st_size))
        return out
    return build


def _scribble(offsets: Callable[[int], list[int]], length: int = 64, seed: int = 0) -> Callable[[Path, Path], Path]:
    def build(base, folder):
        out = _copy(base, folder)
        rng = random.Random(seed)
        with open(out, "r+b") as handle:
            for offset in offsets(out.stat().st_size):
                handle.seek(offset)
                handle.write(bytes(rng.randrange(256) for _ in range(length)))
        return out
    return build


def _with_wal(base: Path, folder: Path) -> Path:
    """A store whose last commit is still only in its WAL, with random bytes in the WAL's middle."""
    out = _copy(base, folder)
    with DuckDBStore(out) as store:
        relax(standard_system(20, seed=3), RelaxConfig(steps=3), store=store)
        wal = Path(str(out) + ".wal")
        shutil.copyfile(out, folder / "copy.duckdb")  # the file and WAL as a crash would leave them
        shutil.copyfile(wal, folder / "copy.duckdb.wal")
    out.unlink()
    Path(str(out) + ".wal").unlink(missing_ok=True)
    copy, wal = folder / "copy.duckdb", folder / "copy.duckdb.wal"
    data = bytearray(wal.read_bytes())
    assert len(data) > 600, "the WAL should hold the last commit"
    middle = len(data) // 2
    data[middle:middle + 64] = random.Random(1).randbytes(64)
    wal.write_bytes(bytes(data))
    return copy


def _foreign_duckdb(base: Path, folder: Path) -> Path:
    out = folder / "theirs.duckdb"
    con = duckdb.connect(str(out))
    con.execute("CREATE TABLE events (id INTEGER, what VARCHAR)")
    con.execute("INSERT INTO events VALUES (1, 'someone else''s log')")
    con.close()
    return out


def _empty_duckdb(base: Path, folder: Path) -> Path:
    out = folder / "empty.duckdb"
    duckdb.connect(str(out)).close()
    return out


def _sqlite(base: Path, folder: Path) -> Path:
    out = folder / "runs.sqlite"
    con = sqlite3.connect(out)
    con.execute("CREATE TABLE events (id INTEGER)")
    con.commit()
    con.close()
    return out


def _png(base: Path, folder: Path) -> Path:
    out = folder / "runs.duckdb"
    out.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5000))
    return out


def _edited(sql: list[str]) -> Callable[[Path, Path], Path]:
    def build(base, folder):
        out = _copy(base, folder)
        con = duckdb.connect(str(out))
        for stmt in sql:
            con.execute(stmt)
        con.execute("CHECKPOINT")
        con.close()
        return out
    return build


def _old(name: str) -> Callable[[Path, Path], Path]:
    return lambda base, folder: fixture(name, folder)


def _read_only_folder(base: Path, folder: Path) -> Path:
    out = _copy(base, folder)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return out


NEWER = "UPDATE store_meta SET value = '99' WHERE key = 'schema_version'"
CASES = [
    Case("truncated to 100 bytes", _truncate(lambda n: 100), StoreCorruptError),
    Case("truncated inside the headers", _truncate(lambda n: 5000), StoreCorruptError),
    Case("truncated to half", _truncate(lambda n: n // 2), StoreCorruptError, read_all=True),
    Case("truncated by one block", _truncate(lambda n: n - BLOCK), StoreCorruptError, read_all=True),
    Case("random bytes in the file header", _scribble(lambda n: [0], length=8), StoreCorruptError),
    Case("random bytes in a database header", _scribble(lambda n: [4096 + 40]), StoreCorruptError),
    Case("random bytes in every data block", _scribble(lambda n: list(range(HEADERS + 64, n, BLOCK))),
         StoreCorruptError, read_all=True),
    Case("random bytes in the data blocks, read-only",
         _scribble(lambda n: list(range(HEADERS + 64, n, BLOCK))), StoreCorruptError, read_only=True, read_all=True),
    Case("a corrupt WAL", _with_wal, StoreCorruptError),
    Case("a corrupt WAL, read-only", _with_wal, StoreCorruptError, read_only=True),
    Case("another program's DuckDB database", _foreign_duckdb, ForeignFileError),
    Case("another program's DuckDB database, read-only", _foreign_duckdb, ForeignFileError, read_only=True),
    Case("an empty DuckDB database, read-only", _empty_duckdb, ForeignFileError, read_only=True),
    Case("a SQLite database", _sqlite, ForeignFileError),
    Case("a PNG named runs.duckdb", _png, ForeignFileError),
    Case("a newer schema", _edited([NEWER]), StoreVersionError),
    Case("a newer schema, read-only", _edited([NEWER]), StoreVersionError, read_only=True),
    Case("a newer schema with a dropped table", _edited([NEWER, "DROP TABLE mat_steps"]), StoreVersionError),
    Case("this schema with a dropped table", _edited(["DROP TABLE mat_steps"]), StoreCorruptError),
    Case("the first layout (9ef8e13)", _old("store-9ef8e13.duckdb"), StoreVersionError),
    Case("an older schema, read-only (b413cf8)", _old("store-b413cf8.duckdb"), StoreVersionError, read_only=True),
    Case("a writable file in a read-only folder", _read_only_folder, StoreWriteError),
]


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def permissions_enforced(folder: Path) -> bool:
    """Whether this process is kept out of a read-only folder (not so for root)."""
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (probe / "x").write_bytes(b"")
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(stat.S_IRWXU)
        shutil.rmtree(probe)


def attempt(path: Path, case: Case) -> BaseException | None:
    """Open (and read everything, where the case asks); return the error raised, or ``None``."""
    try:
        with DuckDBStore(path, read_only=case.read_only) as store:
            if case.read_all:
                for info in store.runs():
                    store.read(info.run_id)
                for table in ("events", "eta_frames", "eta_blocks", "eta_values", "runs", "run_modules", "systems"):
                    store.query(f"SELECT * FROM {table}")
        return None
    except BaseException as exc:  # noqa: BLE001 - the caller judges it
        return exc


def check(case: Case, base: Path, folder: Path) -> str | None:
    """Run one case in the empty ``folder``; ``None`` if it behaves, else what went wrong."""
    path = case.build(base, folder)
    try:
        before = folder_digest(folder)
        first = attempt(path, case)
        again = attempt(path, case)  # the failed open released the file
        after = folder_digest(folder)
    finally:
        folder.chmod(stat.S_IRWXU)
    if not isinstance(first, case.error):
        return f"expected {case.error.__name__}, got {type(first).__name__}: {first}"
    if str(path) not in str(first) and path.name not in str(first):
        return f"the error does not name the file: {first}"
    if not isinstance(again, case.error) or isinstance(again, StoreBusyError):
        return f"a second attempt gave {type(again).__name__}: {again} (the file was not released)"
    if before != after:
        return f"the bytes changed: {sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))}"
    return None


def skipped(case: Case, folder: Path) -> str | None:
    if case.build is _read_only_folder and not permissions_enforced(folder):
        return "permissions are not enforced for this user (root)"
    return None


