"""Store files share one DuckDB instance per process: attached while their store is open, released when it closes."""

from __future__ import annotations

import gc
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters import _duckdb_host
from complexity_from_constraints.entities import RelaxConfig, standard_system
from complexity_from_constraints.projectors import relax, replay


def _run(store, n=6, seed=0):
    return relax(standard_system(n, seed=seed), RelaxConfig(steps=3), seed=seed, store=store)


def test_two_files_open_at_once_each_see_their_own_runs_under_their_own_name(tmp_path):
    with DuckDBStore(tmp_path / "a.duckdb") as a, DuckDBStore(tmp_path / "b.duckdb") as b:
        ra, rb = _run(a, seed=1), _run(b, n=9, seed=2)
        names = {a.query("SELECT current_database()").item(), b.query("SELECT current_database()").item()}
        assert names == {"cfc_store", "cfc_store_2"}
        assert [r.run_id for r in a.runs()] == [ra.run_id] and [r.run_id for r in b.runs()] == [rb.run_id]
        assert a.query("SELECT count(DISTINCT entity_id) FROM v_eta").item() == 6  # the views read their own file
        assert b.query("SELECT count(DISTINCT entity_id) FROM v_eta").item() == 9
        assert replay(a, ra.run_id, 2).eta.tobytes() == replay(a, ra.run_id, 2).eta.tobytes()
    with DuckDBStore(tmp_path / "c.duckdb") as c:  # the first name is free again
        assert c.query("SELECT current_database()").item() == "cfc_store"
    assert _duckdb_host._host_files == {}  # every file was detached


def test_a_closed_store_releases_its_file_to_another_process(tmp_path):
    path = tmp_path / "runs.duckdb"
    with DuckDBStore(path) as store:
        _run(store)
    script = textwrap.dedent(f"""
        from complexity_from_constraints.adapters import DuckDBStore
        with DuckDBStore({str(path)!r}) as store:  # for writing: nothing in the first process holds the file
            print(len(store.runs()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_a_store_dropped_without_close_releases_its_file_when_collected(tmp_path):
    path = tmp_path / "runs.duckdb"
    store = DuckDBStore(path)
    run = _run(store)
    store.self_reference = store  # a cycle: only the collector frees it
    del store
    gc.collect()
    assert _duckdb_host._host_files == {}
    script = textwrap.dedent(f"""
        from complexity_from_constraints.adapters import DuckDBStore
        with DuckDBStore({str(path)!r}) as store:
            print(store.runs()[0].complete)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"  # every committed batch is there, the WAL replayed
    with DuckDBStore(path) as again:  # and this process may open it again
        assert [r.run_id for r in again.runs()] == [run.run_id]


def test_threads_open_write_and_close_files_at_the_same_time(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(k):
        with DuckDBStore(tmp_path / f"t{k}.duckdb") as store:
            run = _run(store, n=5 + k, seed=k)
            return store.query("SELECT count(DISTINCT entity_id) FROM v_eta WHERE run_id = ?", [run.run_id]).item()

    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(one, range(6))) == [5 + k for k in range(6)]
    assert _duckdb_host._host_files == {}


def test_a_second_reader_of_an_attached_file_gets_an_instance_of_its_own(tmp_path):
    path = tmp_path / "runs.duckdb"
    with DuckDBStore(path) as store:
        run = _run(store)
    with DuckDBStore(path, read_only=True) as a, DuckDBStore(path, read_only=True) as b:
        assert a.query("SELECT count(*) FROM events").item() == b.query("SELECT count(*) FROM events").item() > 0
        assert replay(b, run.run_id, 3).eta.tobytes() == replay(a, run.run_id, 3).eta.tobytes()
        assert len(_duckdb_host._host_files) == 1  # the first reader is attached here; the second is not
    assert _duckdb_host._host_files == {}


def test_a_new_store_file_has_no_wal_beside_it(tmp_path):
    path = tmp_path / "fresh.duckdb"
    DuckDBStore(path).close(checkpoint=False)
    assert path.exists() and not (tmp_path / "fresh.duckdb.wal").exists()


def _child(path: str, queue) -> None:
    with DuckDBStore(path) as store:
        result = _run(store, seed=5)
        queue.put((len(store.runs()), result.status))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_process_opens_stores_on_an_instance_of_its_own(tmp_path):
    with DuckDBStore(tmp_path / "parent.duckdb") as store:  # the parent holds an instance (and a file) at the fork
        _run(store)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child, args=(str(tmp_path / "child.duckdb"), queue))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        assert queue.get(timeout=5) == (1, "max_steps")
        assert len(store.runs()) == 1  # the parent's store goes on
        _run(store, seed=3)
    assert os.path.exists(tmp_path / "child.duckdb")
