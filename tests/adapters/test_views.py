"""The SQL views agree with the events they are defined over, and queries come back as Polars."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import polars as pl
import pytest

from complexity_from_constraints.adapters import DuckDBStore, StoreBusyError, view_sql
from complexity_from_constraints.entities import RelaxConfig, System, LandauModule, GateModule, GateBenefitCoupling
from complexity_from_constraints.projectors import relax


@pytest.fixture
def db(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        yield store


def test_every_view_builds_on_an_empty_database(db):
    names = set(view_sql())
    assert {"v_energy_by_step", "v_eta", "v_gate_events", "v_runs", "v_steps", "v_events"} <= names
    for name in names:
        assert isinstance(db.query(f"SELECT * FROM {name}"), pl.DataFrame)


def test_views_match_the_events_of_a_run(db, toy_system):
    r = relax(toy_system, RelaxConfig(steps=40, step_size=0.3), store=db, flush_every=6)
    steps = [rec.event for rec in db.read(r.run_id, types=["StepCommitted"])]
    energy = db.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [r.run_id])
    assert energy["step"].to_list() == [s.step for s in steps]
    assert energy["energy"].to_list() == [s.energy for s in steps]  # exact: the view reads the stored floats

    eta = db.query("SELECT step, entity_id, eta FROM v_eta WHERE run_id = $run ORDER BY step, entity_id", {"run": r.run_id})
    frames = {rec.event.step: rec.event.eta for rec in db.read(r.run_id, types=["EtaRecorded"])}
    assert len(eta) == 4 * len(frames)
    ids = list(toy_system.module_ids)
    for step, entity, value in eta.iter_rows():
        assert frames[step][ids.index(entity)] == value

    gates = db.query("SELECT step, gate_id, event, eta FROM v_gate_events WHERE run_id = ?", [r.run_id])
    opened = [rec.event for rec in db.read(r.run_id, types=["GateOpened"])]
    assert gates.rows() == [(e.step, e.gate_id, "opened", e.eta) for e in opened] and len(opened) == 1

    run = db.query("SELECT status, steps, final_energy, n_modules FROM v_runs WHERE run_id = ?", [r.run_id]).row(0)
    assert run == (r.status, r.steps, r.energy, 4)
    kinds = db.query("SELECT type, count(*) AS n FROM v_events WHERE run_id = ? GROUP BY type ORDER BY type", [r.run_id])
    assert dict(kinds.rows())["StepCommitted"] == r.steps + 1


def test_parameters_are_bound_not_formatted(db, toy_system):
    relax(toy_system, RelaxConfig(steps=2), store=db)
    hostile = "x' OR '1'='1"
    assert db.query("SELECT * FROM v_runs WHERE run_id = ?", [hostile]).is_empty()


def test_a_gate_closing_is_a_closed_event(db):
    # A gate starting open (gain > cost) with nothing paying for it relaxes shut.
    s = System(id="shut", modules=[GateModule(id="g", gain=1.0, cost=0.1, a=1.0, b=1.0), LandauModule(id="m")],
               couplings=[GateBenefitCoupling(id="gb", i="g", j="m", delta=0.0)])
    r = relax(s, RelaxConfig(steps=200, step_size=0.2), store=db)
    events = db.query("SELECT step, event FROM v_gate_events WHERE run_id = ? ORDER BY step", [r.run_id])
    assert events["event"].to_list() == ["opened", "closed"] and events["step"][0] == 0


def test_another_process_cannot_open_a_file_being_written(tmp_path):
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from complexity_from_constraints.adapters import DuckDBStore
        s = DuckDBStore({str(path)!r})
        print("ready", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusyError, match="another process"):
            DuckDBStore(path, read_only=True)
    finally:
        holder.communicate("\n", timeout=30)
    with DuckDBStore(path, read_only=True) as store:  # free again once the writer is gone
        assert store.query("SELECT count(*) AS n FROM v_runs")["n"][0] == 0


@pytest.mark.parametrize("sql", [
    "DELETE FROM events", "UPDATE events SET seq = seq + 1", "DROP TABLE events", "DROP VIEW v_runs",
    "INSERT INTO store_meta VALUES ('x', 'y')", "CREATE TABLE t AS SELECT 1", "ATTACH ':memory:' AS other",
    "COPY events TO '{tmp}/out.csv'", "SELECT 1; DELETE FROM events", "EXPLAIN ANALYZE DELETE FROM events",
    "PRAGMA enable_profiling", "SET threads = 1", "CALL checkpoint()", "CHECKPOINT", "INSTALL sqlite",
])
def test_queries_cannot_change_the_log(db, toy_system, tmp_path, sql):
    from complexity_from_constraints.entities import StoreWriteError

    r = relax(toy_system, RelaxConfig(steps=5), store=db)
    before = [(x.seq, x.event) for x in db.read(r.run_id)]
    with pytest.raises(StoreWriteError, match="only reads|one statement"):
        db.query(sql.format(tmp=tmp_path))
    assert [(x.seq, x.event) for x in db.read(r.run_id)] == before
    assert not (tmp_path / "out.csv").exists()
    # Reading statements still work.
    assert db.query("WITH n AS (SELECT count(*) AS k FROM events) SELECT k FROM n").item() == len(before) - r.steps - 1
    assert db.query("DESCRIBE events").height > 0 and db.query("SHOW TABLES").height > 0
    assert db.query("EXPLAIN SELECT * FROM v_runs").height > 0
    assert db.query("PRAGMA table_info('events')").height > 0


def test_a_stored_payload_that_does_not_decode_is_a_typed_error(db, toy_system):
    from complexity_from_constraints.entities import UnreadableEventError
    from complexity_from_constraints.projectors import replay, rerun

    r = relax(toy_system, RelaxConfig(steps=5), store=db)
    # What an earlier version wrote for a non-finite float: JSON null.
    db._execute("UPDATE events SET payload = replace(payload, '\"pg_norm\":', '\"pg_norm\":null,\"x\":') "
                "WHERE run_id = ? AND type = 'StepCommitted' AND step = 2", [r.run_id])
    seq = db.query("SELECT seq FROM events WHERE run_id = ? AND step = 2 AND type = 'StepCommitted'", [r.run_id]).item()
    for call in (lambda: db.read(r.run_id), lambda: replay(db, r.run_id)):
        with pytest.raises(UnreadableEventError, match=rf"run '{r.run_id}', seq {seq} \(StepCommitted\)") as info:
            call()
        assert (info.value.run_id, info.value.seq, info.value.event_type) == (r.run_id, seq, "StepCommitted")
    db._execute("UPDATE events SET payload = replace(payload, '\"seed\":0', '\"seed\":null') "
                "WHERE run_id = ? AND type = 'RunStarted'", [r.run_id])
    with pytest.raises(UnreadableEventError, match=rf"run '{r.run_id}', seq 0 \(RunStarted\)"):
        rerun(db, r.run_id)


def test_no_connection_loads_or_installs_extensions(db):
    settings = db.query("SELECT current_setting('autoinstall_known_extensions') AS i, "
                        "current_setting('autoload_known_extensions') AS l").row(0)
    assert settings == (False, False)


def test_views_are_created_once_per_definition(tmp_path):
    path = tmp_path / "v.duckdb"
    DuckDBStore(path).close()
    with DuckDBStore(path) as store:
        digest = store.query("SELECT value FROM store_meta WHERE key = 'views'").item()
        store._execute("DROP VIEW v_eta")  # a second open does not rebuild what it finds current
    with DuckDBStore(path) as store:
        assert store.query("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_eta'").item() == 0
        store._execute("UPDATE store_meta SET value = 'stale' WHERE key = 'views'")
    with DuckDBStore(path) as store:  # new definitions: rebuilt, once
        assert store.query("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_eta'").item() == 1
        assert store.query("SELECT value FROM store_meta WHERE key = 'views'").item() == digest
