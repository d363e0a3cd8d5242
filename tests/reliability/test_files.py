"""Damaged, foreign, older and newer files: a typed error, the bytes unchanged, the file released at once."""

from __future__ import annotations

import gzip
import hashlib
import resource
import signal
import struct
import subprocess
import sys
import textwrap

import duckdb
import pytest

from corpus import CASES, check, fixture, skipped

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._duckdb_store import STORE_SCHEMA_VERSION
from complexity_from_constraints.entities import (
    RelaxConfig,
    StoreBusyError,
    StoreVersionError,
    StoreWriteError,
    standard_system,
)
from complexity_from_constraints.projectors import relax, replay


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_damaged_file_gives_its_typed_error_and_stays_as_it_was(case, healthy_store, tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    reason = skipped(case, folder)
    if reason:
        pytest.skip(reason)
    problem = check(case, healthy_store, folder)
    assert problem is None, problem
    from complexity_from_constraints.adapters import _duckdb_host

    assert _duckdb_host._host_files == {}  # a refused or closed file is detached from the process's instance


# -- files written by earlier versions of the store ---------------------------------------------------------

UPGRADABLE = ["store-f6a55dc.duckdb", "store-b413cf8.duckdb", "store-2769c86.duckdb", "store-feb2486.duckdb"]
UPGRADES_MIDWAY = [*UPGRADABLE, "store-2d0d184.duckdb"]  # schema 4 (η in eta_blocks) has no η table to read raw


@pytest.mark.parametrize("name", UPGRADABLE)
def test_an_older_file_is_upgraded_and_reads_back(name, tmp_path):
    path = fixture(name, tmp_path)
    with duckdb.connect(str(path), read_only=True) as con:  # η as the old layout keeps it, in long form
        old = con.execute("SELECT r.run_id, v.step, v.idx, v.eta FROM eta_values AS v JOIN runs AS r "
                          "USING (run_key) ORDER BY r.run_id, v.step, v.idx").fetchall()
    with DuckDBStore(path) as store:
        new = store.query("SELECT run_id, step, idx, eta FROM eta_values JOIN runs USING (run_key) "
                          "ORDER BY run_id, step, idx").rows()
        assert len(new) == len(old) > 0 and all(a[:3] == b[:3] and struct.pack("<d", a[3]) == struct.pack("<d", b[3])
                                                for a, b in zip(old, new)), "η changed in the upgrade"
        framed = [(info.run_id, r.event.step, k, float(x)) for info in store.runs()
                  for r in store.read(info.run_id, types=["EtaRecorded"]) for k, x in enumerate(r.event.eta)]
        assert sorted(framed) == sorted(old)
        assert store.query("SELECT value FROM store_meta WHERE key = 'schema_version'").item() == str(STORE_SCHEMA_VERSION)
        runs = store.runs()
        params = store.query("SELECT run_id, value FROM v_run_params WHERE key = 'steps'")  # filled from RunStarted
        assert sorted(params["run_id"]) == sorted(i.run_id for i in runs)
        assert len(runs) == 2 and all(info.complete for info in runs)
        for info in runs:
            log = store.read(info.run_id)
            assert [r.seq for r in log] == list(range(len(log)))
            assert replay(store, info.run_id).step == log[-1].event.steps
        stats = store.query("SELECT run_id, accepted_steps FROM v_run_stats ORDER BY run_id")
        assert stats.height == 2 and all(n > 0 for n in stats["accepted_steps"])
        new = relax(standard_system(10), RelaxConfig(steps=3), store=store)  # and takes new runs
    with DuckDBStore(path, read_only=True) as store:
        assert {i.run_id for i in store.runs()} >= {new.run_id, *(i.run_id for i in runs)}


@pytest.mark.parametrize("name", UPGRADES_MIDWAY)
def test_an_upgrade_that_fails_midway_leaves_the_file_byte_identical(name, tmp_path, monkeypatch):
    path = fixture(name, tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    original = DuckDBStore._catch_up

    def fail_after_the_work(self, run_ids):
        original(self, run_ids)  # the tables are filled, the views made: now fail before the commit
        raise OSError("simulated failure mid-upgrade")

    monkeypatch.setattr(DuckDBStore, "_catch_up", fail_after_the_work)
    with pytest.raises(OSError, match="mid-upgrade"):
        DuckDBStore(path)
    monkeypatch.undo()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / f"{name}.wal").exists()
    with pytest.raises(StoreVersionError, match="read-write once to upgrade"):  # still the old schema, whole
        DuckDBStore(path, read_only=True)
    with duckdb.connect(str(path), read_only=True) as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    with DuckDBStore(path) as store:  # released: the next open upgrades it
        assert len(store.runs()) == runs > 0


def test_a_schema_4_file_keeps_module_ids_once_per_system_after_its_upgrade(tmp_path):
    """Schema 4 kept every run's module ids; schema 5 keeps a System's once and what expansion added per run."""
    path = fixture("store-2d0d184.duckdb", tmp_path)  # two runs of one System of 80 modules, one of 70 that adds "new"
    by_run = ("SELECT r.run_id, m.idx, m.module_id, m.kind FROM run_modules AS m JOIN runs AS r USING (run_key) "
              "ORDER BY r.run_id, m.idx")
    with duckdb.connect(str(path), read_only=True) as con:
        old = con.execute(by_run).fetchall()
    with DuckDBStore(path) as store:
        assert store.query(by_run).rows() == old and len(old) == 80 + 80 + 71
        assert store.query("SELECT count(DISTINCT system_digest), count(*) FROM system_modules").row(0) == (2, 150)
        assert store.query("SELECT idx, module_id FROM run_added_modules").rows() == [(70, "new")]
        for info in store.runs():
            ids = [r[2] for r in old if r[0] == info.run_id]
            assert list(replay(store, info.run_id).ids) == ids and list(store.module_ids(info.run_id)) == ids
        first = store.runs()[0].run_id
        system = store.read(first, types=["RunStarted"])[0].event.system
        relax(system, RelaxConfig(steps=3), store=store)  # a stored System: no module rows more
        assert store.query("SELECT count(*) FROM system_modules").item() == 150


def test_the_first_layout_is_refused_untouched(tmp_path):
    path = fixture("store-9ef8e13.duckdb", tmp_path)
    data = path.read_bytes()
    with pytest.raises(StoreVersionError, match="first store layout"):
        DuckDBStore(path)
    assert path.read_bytes() == data


def test_fixtures_are_small():
    from corpus import FIXTURES

    for packed in FIXTURES.glob("*.gz"):
        assert packed.stat().st_size < 1 << 20 and len(gzip.decompress(packed.read_bytes())) < 8 << 20


# -- who may hold a file ---------------------------------------------------------------------------------------


def test_a_second_store_on_the_same_file_in_one_process_is_busy(tmp_path):
    path = tmp_path / "runs.duckdb"
    with DuckDBStore(path) as store:
        for read_only in (False, True):
            with pytest.raises(StoreBusyError, match="already open in this process"):
                DuckDBStore(path, read_only=read_only)
        relax(standard_system(5), RelaxConfig(steps=2), store=store)
    with DuckDBStore(path, read_only=True) as a, DuckDBStore(path, read_only=True) as b:  # readers share
        assert len(a.runs()) == len(b.runs()) == 1
        with pytest.raises(StoreBusyError):
            DuckDBStore(path)
    DuckDBStore(path).close()  # every holder gone: free again


def test_a_second_process_cannot_open_a_file_being_written(tmp_path):
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from complexity_from_constraints.adapters import DuckDBStore
        from complexity_from_constraints.entities import RelaxConfig, standard_system
        from complexity_from_constraints.projectors import relax
        s = DuckDBStore({str(path)!r})
        relax(standard_system(5), RelaxConfig(steps=2), store=s)
        print("ready", flush=True)
        sys.stdin.readline()
        s.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for read_only in (False, True):
            with pytest.raises(StoreBusyError, match="another process") as info:
                DuckDBStore(path, read_only=read_only)
            assert str(path) in str(info.value)
    finally:
        holder.communicate("\n", timeout=60)
    with DuckDBStore(path) as store:
        assert len(store.runs()) == 1


@pytest.mark.parametrize("limit", [1 << 16, 1 << 18, 1 << 20])  # the disk fills in different statements
def test_a_full_disk_is_a_typed_error_and_the_file_reopens(tmp_path, limit):
    path = tmp_path / "runs.duckdb"
    system = standard_system(2000, seed=4)
    with DuckDBStore(path) as store:
        relax(standard_system(5), RelaxConfig(steps=2), store=store)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # "file too large" stands in for "disk full"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    store = DuckDBStore(path)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # no file may grow past the limit
        with pytest.raises(StoreWriteError, match="disk full") as info:
            relax(system, RelaxConfig(steps=30), store=store, flush_values=1 << 22)
        assert str(path) in str(info.value)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
        try:
            store.close()
        except StoreWriteError:
            pass
    with DuckDBStore(path) as store:  # the acknowledged run is there; the failed one left whole batches or nothing
        runs = store.runs()
        assert runs[0].complete
        for info in runs:
            log = store.read(info.run_id)
            assert [r.seq for r in log] == list(range(len(log)))


def test_a_failed_insert_inside_a_transaction_raises_its_own_error_not_the_aborted_transaction(tmp_path):
    # DuckDB aborts the transaction at the first failed statement and refuses every statement after it, the
    # clean-up of the INSERT's registered rows included: that refusal once hid a full disk ("cannot write:
    # TransactionException"), depending on which statement the disk filled in. A broken key fails the same way.
    path = tmp_path / "runs.duckdb"
    with DuckDBStore(path) as store:
        relax(standard_system(5), RelaxConfig(steps=2), store=store)
        [info] = store.runs()
        row = store.query("SELECT * FROM runs WHERE run_id = ?", [info.run_id]).to_arrow()
        with pytest.raises(duckdb.ConstraintException, match="Duplicate key"):
            with store.transaction():
                store._insert_rows("runs", row)
        relax(standard_system(5), RelaxConfig(steps=2), seed=1, store=store)  # the store goes on
        assert len(store.runs()) == 2


def test_a_read_only_folder_is_refused_before_opening(healthy_store, tmp_path, monkeypatch):
    # As root the kernel lets every write through, so the folder's permission is simulated here; the corpus
    # case "a writable file in a read-only folder" checks the real thing where permissions are enforced.
    import os

    from complexity_from_constraints.adapters import _duckdb_store

    path = tmp_path / "runs.duckdb"
    path.write_bytes(healthy_store.read_bytes())
    monkeypatch.setattr(_duckdb_store.os, "access", lambda p, mode: os.path.abspath(p) != str(tmp_path))
    with pytest.raises(StoreWriteError, match="folder is read-only"):
        DuckDBStore(path)
    monkeypatch.undo()
    assert path.read_bytes() == healthy_store.read_bytes()
    with DuckDBStore(path, read_only=True) as store:
        assert len(store.runs()) == 2


def test_a_new_file_whose_creation_fails_is_not_left_behind(tmp_path, monkeypatch):
    # A store is built beside its path and moved into place whole: a failure (or a kill) while
    # creating leaves no file at the path, in particular no empty database that is not a store.
    path = tmp_path / "new.duckdb"

    def fail(self, con):
        raise OSError("simulated failure while creating the views")

    monkeypatch.setattr(DuckDBStore, "_create_views", fail)
    with pytest.raises(OSError, match="simulated"):
        DuckDBStore(path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    with DuckDBStore(path) as store:  # the next open creates the store whole
        assert store.runs() == []
    with DuckDBStore(path, read_only=True) as store:
        assert store.runs() == []
