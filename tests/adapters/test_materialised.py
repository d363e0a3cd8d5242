"""Materialised tables: kept up to date batch by batch, positions in the same transaction, rebuild = incremental."""

from __future__ import annotations

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._duckdb_store import STORE_SCHEMA_VERSION
from complexity_from_constraints.entities import GateModule, LandauModule, RelaxConfig, System, demo_system
from complexity_from_constraints.events import Recorded, RunStarted, StepCommitted
from complexity_from_constraints.projectors import package_version, relax

TABLES = {
    "mat_steps": "SELECT * FROM mat_steps ORDER BY run_id, seq",
    "mat_run_stats": "SELECT * FROM mat_run_stats ORDER BY run_id",
    "mat_positions": "SELECT * FROM mat_positions ORDER BY name, run_id",
}
VIEWS = ("v_steps", "v_run_stats", "v_delta_f90", "v_step_stats", "v_run_summary", "v_energy_by_step")


def snapshot(store: DuckDBStore) -> dict:
    tables = {name: store.query(sql) for name, sql in TABLES.items()}
    views = {name: store.query(f"SELECT * FROM {name} ORDER BY ALL") for name in VIEWS}
    return {**tables, **views}


def assert_same(a: dict, b: dict) -> None:
    for name in a:
        assert a[name].equals(b[name]), name


def started(system: System) -> RunStarted:
    return RunStarted(system=system, config=RelaxConfig(), seed=0, package_version=package_version(),
                      system_digest=system.digest())


def committed(k: int, energy: float) -> StepCommitted:
    return StepCommitted(step=k, energy=energy, pg_norm=1.0, step_size=0.1, backtracks=0, accepted=True,
                         reason="initial" if k == 0 else "decrease")


@pytest.fixture
def db(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        yield store


@pytest.fixture
def several_runs(db, toy_system):
    """Runs written in many small batches, pipelined or not, with rejections, plus one left incomplete."""
    relax(toy_system, RelaxConfig(steps=40, step_size=0.3, tol=0.0), store=db, flush_every=3)
    relax(toy_system, RelaxConfig(steps=30, step_size=3.0, tol=0.0), store=db, flush_every=2, pipelined=False)
    relax(demo_system(1), RelaxConfig(steps=25, step_size=0.5, line_search="armijo"), store=db, flush_every=7)
    relax(demo_system(2), RelaxConfig(steps=10), store=db)  # one batch
    system = System(id="crash", modules=[LandauModule(id="m")])
    db.append("crashed-1", [Recorded("crashed-1", 0, started(system)), Recorded("crashed-1", 1, committed(0, 0.5))])
    db.append("crashed-1", [Recorded("crashed-1", 2, committed(1, 0.25))])
    return db


def test_rebuild_equals_the_incremental_result(several_runs):
    db = several_runs
    before_fold = snapshot(db)
    assert before_fold["mat_run_stats"].is_empty()  # finished runs are folded in when the store closes
    assert db.refresh_materialised() == sorted(i.run_id for i in db.runs() if i.complete)  # … or now
    incremental = snapshot(db)
    assert len(incremental["mat_run_stats"]) == 4  # the finished runs; the crashed one is computed live
    for view in VIEWS:  # the views read the same, folded or not
        assert before_fold[view].equals(incremental[view]), view
    assert db.rebuild_materialised() == 5
    assert_same(incremental, snapshot(db))


def test_closing_the_store_folds_the_finished_runs(tmp_path, toy_system):
    path = tmp_path / "fold.duckdb"
    with DuckDBStore(path) as store:
        run = relax(toy_system, RelaxConfig(steps=10), store=store).run_id
        live = store.query("SELECT * FROM v_run_stats")
        assert store.query("SELECT count(*) FROM mat_run_stats").item() == 0
    with DuckDBStore(path, read_only=True) as store:
        assert store.query("SELECT run_id FROM mat_run_stats").rows() == [(run,)]
        assert store.query("SELECT * FROM v_run_stats").equals(live)
        assert store.query("SELECT count(*) FROM v_live_run_stats").item() == 0


def test_views_read_the_tables_and_agree_with_the_live_definition(several_runs):
    db = several_runs
    db.refresh_materialised()
    stats = db.query("SELECT * FROM v_run_stats ORDER BY run_id")
    assert db.query("SELECT run_id FROM v_live_run_stats").rows() == [("crashed-1",)]  # only what the table lacks
    crashed = db.query("SELECT e0, e_min, delta_f90, accepted_steps FROM v_run_stats WHERE run_id = 'crashed-1'").row(0)
    assert crashed == (0.5, 0.25, 1, 1)
    # Every run's mat_steps position is its last seq; mat_run_stats has one for finished runs only.
    last = dict(db.query("SELECT run_id, max(seq) FROM v_events GROUP BY run_id").rows())
    positions = db.query("SELECT name, run_id, seq FROM mat_positions").rows()
    assert {(r, s) for n, r, s in positions if n == "mat_steps"} == set(last.items())
    assert {r for n, r, s in positions if n == "mat_run_stats"} == set(last) - {"crashed-1"}
    # Without the table, the definition computes the same rows for every run.
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), db.transaction():  # store.query only reads: delete through the private door
        db._execute("DELETE FROM mat_run_stats")
        assert db.query("SELECT * FROM v_live_run_stats ORDER BY run_id").equals(stats)
        raise Rollback
    assert db.query("SELECT * FROM v_run_stats ORDER BY run_id").equals(stats)


def test_positions_commit_with_their_rows(db, monkeypatch):
    system = System(id="s", modules=[LandauModule(id="m")])
    db.append("r", [Recorded("r", 0, started(system)), Recorded("r", 1, committed(0, 1.0))])
    before = snapshot(db)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(db, "_materialise_batch", fail)
    with pytest.raises(RuntimeError):
        db.append("r", [Recorded("r", 2, committed(1, 0.5))])
    monkeypatch.undo()
    assert_same(before, snapshot(db))  # nothing of the failed batch: not its events, not its rows, not its position
    assert db.query("SELECT count(*) FROM events WHERE run_id = 'r'").item() == 2
    db.append("r", [Recorded("r", 2, committed(1, 0.5))])
    assert db.query("SELECT step, energy FROM v_steps ORDER BY step").rows() == [(0, 1.0), (1, 0.5)]


def test_a_store_from_before_the_tables_is_caught_up_when_opened(tmp_path, toy_system):
    path = tmp_path / "old.duckdb"
    with DuckDBStore(path) as store:
        relax(toy_system, RelaxConfig(steps=20, step_size=0.3), store=store, flush_every=4)
        store.refresh_materialised()
        expected = snapshot(store)
        for table in ("mat_steps", "mat_run_stats", "mat_positions"):  # what a schema-1 file holds: no derived rows
            store._execute(f"DELETE FROM {table}")
        store._execute("UPDATE store_meta SET value = '1' WHERE key = 'schema_version'")
    with DuckDBStore(path) as store:
        assert store.query("SELECT value FROM store_meta WHERE key = 'schema_version'").item() == str(STORE_SCHEMA_VERSION)
        assert_same(expected, snapshot(store))
        assert store.refresh_materialised() == []  # idempotent: nothing left to apply


def test_appending_to_a_run_whose_tables_lag_catches_up_first(db):
    system = System(id="s", modules=[LandauModule(id="m"), GateModule(id="g")])
    db.append("r", [Recorded("r", 0, started(system)), Recorded("r", 1, committed(0, 1.0))])
    db._execute("DELETE FROM mat_steps")
    db._execute("DELETE FROM mat_positions")
    db._mat_seq.clear()  # as a fresh process would see it
    db.append("r", [Recorded("r", 2, committed(1, 0.5))])
    assert db.query("SELECT step FROM mat_steps ORDER BY step")["step"].to_list() == [0, 1]
    assert db.query("SELECT seq FROM mat_positions WHERE name = 'mat_steps'").item() == 2


def test_refresh_reports_the_runs_it_updated(db, toy_system):
    r = relax(toy_system, RelaxConfig(steps=5), store=db)
    assert db.refresh_materialised() == [r.run_id]  # folds the finished run
    assert db.refresh_materialised() == []  # idempotent
    assert db.query("SELECT count(*) FROM mat_run_stats").item() == 1
    db._execute("DELETE FROM mat_run_stats")
    db._execute("DELETE FROM mat_positions WHERE name = 'mat_run_stats'")
    assert db.refresh_materialised([r.run_id]) == [r.run_id]
    assert db.query("SELECT count(*) FROM mat_run_stats").item() == 1


def test_a_read_only_store_cannot_rebuild(tmp_path):
    path = tmp_path / "ro.duckdb"
    DuckDBStore(path).close()
    with DuckDBStore(path, read_only=True) as store:
        with pytest.raises(Exception, match="read-only"):
            store.rebuild_materialised()


@pytest.mark.parametrize("table", ["mat_steps", "mat_run_stats"])
def test_each_table_has_the_columns_its_sql_file_declares(db, table):
    from importlib import resources

    text = (resources.files("complexity_from_constraints.adapters") / "sql" / f"{table}.sql").read_text()
    declared = [line for line in text.splitlines() if line.startswith("-- Columns: ")][0][len("-- Columns: "):]
    assert db.query(f"SELECT * FROM {table}").columns == declared.split(", ")
