"""Whole runs appended as rows (what sweep workers send) land exactly as the same runs appended batch by batch."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._run_rows import encode_run
from complexity_from_constraints.entities import (
    Candidate,
    ExpansionConfig,
    LandauModule,
    LogIntegrityError,
    QuadraticCoupling,
    RelaxConfig,
    StoreWriteError,
    demo_system,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore, Recorded, RunMeta
from complexity_from_constraints.projectors import relax

TABLES = {  # every table a run writes, with the columns that identify a row
    "runs": "run_id", "systems": "system_digest", "system_modules": "system_digest, idx",
    "run_added_modules": "run_key, idx", "run_modules": "run_key, idx", "run_params": "run_id, key",
    "events": "run_id, seq", "eta_frames": "run_id, seq", "eta_blocks": "run_key, step, part",
    "mat_steps": "run_id, seq", "mat_positions": "name, run_id", "mat_run_stats": "run_id",
}
NEWCOMER = Candidate(module=LandauModule(id="helper", a=-1.0),
                     couplings=(QuadraticCoupling(id="qh", i="helper", j="s1", weight=0.7),))
CASES = {
    "plain": (standard_system(300, seed=2), RelaxConfig(steps=40, step_size=0.05, eta0="uniform")),
    "expansion": (demo_system(0), RelaxConfig(steps=30, step_size=0.1, expansion=ExpansionConfig(every=5, candidates=(NEWCOMER,)))),
}


def _tables(store: DuckDBStore) -> dict[str, list[tuple]]:
    return {t: store._execute(f"SELECT * FROM {t} ORDER BY {key}") for t, key in TABLES.items()}


def _recorded(system, config, seed) -> tuple[str, list[Recorded]]:
    memory = InMemoryStore()
    run_id = relax(system, config, seed=seed, store=memory).run_id
    return run_id, memory.read(run_id)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rows_from_a_worker_store_the_same_bytes_as_batches_from_relax(tmp_path, case):
    system, config = CASES[case]
    with DuckDBStore(tmp_path / "batches.duckdb") as batches:
        for seed in (0, 1):  # small batches: chains of η frames go on across them
            relax(system, config, seed=seed, store=batches, flush_every=7)
        expected = _tables(batches)
    with DuckDBStore(tmp_path / "rows.duckdb") as rows:
        encoded = [encode_run(*_recorded(system, config, seed)) for seed in (0, 1)]
        rows.append_runs([(run, None) for run in encoded])
        got = _tables(rows)
        assert [r.run_id for r in rows.runs()] == [r.run_id for r in encoded]
    for table in TABLES:
        assert got[table] == expected[table], table
    assert len(expected["eta_blocks"]) > 2 and (case != "expansion" or
                                                 any(m[2] == "helper" for m in expected["run_modules"]))
    # two runs of one System: its modules are stored once, each run sees them all (and what it added) in order
    assert len(expected["system_modules"]) == system.n_modules
    assert len(expected["run_modules"]) == 2 * system.n_modules + len(expected["run_added_modules"])
    assert [m[1] for m in expected["run_modules"]] == [k for n in (0, 1) for k in range(
        system.n_modules + sum(1 for a in expected["run_added_modules"] if a[0] == n + 1))]
    assert (case == "expansion") == bool(expected["run_added_modules"])


def test_appending_rows_is_all_or_none(tmp_path):
    system, config = CASES["plain"]
    first, second = (encode_run(*_recorded(system, config, seed)) for seed in (0, 1))
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        store.append_runs([(first, RunMeta(name="first"))])
        before = _tables(store)
        with pytest.raises(LogIntegrityError, match="already exists"):
            store.append_runs([(second, RunMeta(name="second")), (first, None)])
        with pytest.raises(LogIntegrityError, match="given twice"):
            store.append_runs([(second, None), (second, None)])
        assert _tables(store) == before
        assert store.run_meta(first.run_id).name == "first" and store.run_meta(second.run_id) is None
        store.append_runs([(second, RunMeta(name="second", tags={"k": "v"}, started_at="2026-01-02T03:04:05.000"))])
        meta = store.run_meta(second.run_id)
        assert (meta.name, dict(meta.tags), meta.started_at) == ("second", {"k": "v"}, "2026-01-02T03:04:05.000")
        assert [e.event for e in store.read(second.run_id)] == [r.event for r in _recorded(system, config, 1)[1]]
    with DuckDBStore(tmp_path / "runs.duckdb", read_only=True) as reader, pytest.raises(StoreWriteError):
        reader.append_runs([(second, None)])


def test_a_run_with_a_gap_or_without_its_start_is_refused_before_any_row_is_built():
    run_id, records = _recorded(*CASES["plain"], 0)
    with pytest.raises(LogIntegrityError, match="expected seq 3, got 4"):
        encode_run(run_id, records[:3] + records[4:])
    with pytest.raises(LogIntegrityError, match="must start with RunStarted"):
        encode_run(run_id, records[1:])
    with pytest.raises(LogIntegrityError, match="finished"):
        encode_run(run_id, records + [Recorded(run_id, len(records), records[1].event)])


def test_threads_limits_duckdb_inside_the_block_and_restores_it_after(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        setting = "SELECT current_setting('threads')"
        before = store._execute(setting)[0][0]
        with store.threads(1):
            assert store._execute(setting)[0][0] == 1
        assert store._execute(setting)[0][0] == before
        with pytest.raises(ZeroDivisionError), store.threads(1):
            1 / 0
        assert store._execute(setting)[0][0] == before


def test_pieces_cut_each_blob_at_piece_boundaries_and_join_back():
    from complexity_from_constraints.adapters._run_rows import PIECE, pieces

    rng = np.random.default_rng(0)
    blobs = [b"", bytes(PIECE), bytes(rng.integers(0, 256, PIECE + 1, dtype=np.uint8)),
             bytes(rng.integers(0, 256, 3 * PIECE - 7, dtype=np.uint8)), b"x"]
    table = pieces([4, 5, 6, 7, 8], [4, 4, 4, 7, 7], blobs)
    rows = table.to_pylist()
    assert [r["part"] for r in rows] == [0, 0, 0, 1, 0, 1, 2, 0]
    assert [r["step"] for r in rows] == [4, 5, 6, 6, 7, 7, 7, 8]
    assert [r["base"] for r in rows] == [4, 4, 4, 4, 7, 7, 7, 7]
    assert all(len(r["data"]) <= PIECE for r in rows)
    for step, blob in zip([4, 5, 6, 7, 8], blobs):
        assert b"".join(r["data"] for r in rows if r["step"] == step) == blob
    assert pieces([], [], []).num_rows == 0
