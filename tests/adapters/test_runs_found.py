"""Runs people can name and find: metadata beside the log, parameters as rows, ids by prefix, name or @-N, deletion."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._cli_common import resolve_run
from complexity_from_constraints.entities import CfcError, RelaxConfig, UnknownRunError, demo_system, standard_system
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import diff_runs, first_difference, fork, relax, rerun


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "runs.duckdb"
    with DuckDBStore(path) as store:
        relax(demo_system(0), RelaxConfig(steps=10), store=store, name="first", tags={"lab": "north"})
        relax(demo_system(1), RelaxConfig(steps=12, solver="accelerated", step_size=0.1), seed=1, store=store,
              tags={"lab": "south"})
        relax(standard_system(8, seed=0), RelaxConfig(steps=5), store=store)
    return path


def test_metadata_is_kept_beside_the_log_and_replay_ignores_it(tmp_path):
    with DuckDBStore(tmp_path / "m.duckdb") as store:
        a = relax(demo_system(0), RelaxConfig(steps=10), store=store, name="named", tags={"k": "v"})
        row = store.query("SELECT name, tags, solver, status, started_at, duration_s, parent FROM v_runs").row(0, named=True)
        assert row["name"] == "named" and json.loads(row["tags"]) == {"k": "v"} and row["solver"] == "projected_gradient"
        assert row["started_at"] is not None and row["duration_s"] > 0 and row["parent"] is None
        b = rerun(store, a.run_id)
        assert first_difference(store, a.run_id, b.run_id) is None  # a different name, start and duration: same log
        assert store.run_meta(b.run_id).parent == a.run_id and store.run_meta(b.run_id).name != "named"
        c = fork(store, a.run_id, 3, {"step_size": 0.1})
        assert store.query("SELECT parent FROM v_runs WHERE run_id = ?", [c.run_id]).item() == a.run_id
        assert diff_runs(store, a.run_id, b.run_id).is_empty


def test_recording_a_runs_metadata_again_replaces_its_one_row_and_rolls_back_with_a_transaction(tmp_path):
    from complexity_from_constraints.events import RunMeta

    with DuckDBStore(tmp_path / "m.duckdb") as store:
        store.record_meta("r1", RunMeta(name="first", tags={"a": "1"}, started_at="2026-01-02T03:04:05.678+00:00"))
        store.record_meta("r1", RunMeta(name="second", tags={"b": "2"}, duration_s=1.5))
        store.record_meta("r2", RunMeta(name="other"))
        rows = store.query("SELECT run_id, name, tags, started_at, duration_s FROM run_meta ORDER BY run_id").rows()
        assert [(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows] == [
            ("r1", "second", {"b": "2"}, None, 1.5), ("r2", "other", {}, None, None)]
        with pytest.raises(ZeroDivisionError), store.transaction():
            store.record_meta("r3", RunMeta(name="gone"))
            store.record_meta("r1", RunMeta(name="changed"))
            1 / 0
        assert store.query("SELECT run_id, name FROM run_meta ORDER BY run_id").rows() == [("r1", "second"), ("r2", "other")]


def test_every_config_field_and_system_parameter_is_a_queryable_row(db):
    with DuckDBStore(db, read_only=True) as store:
        slow = store.query("SELECT run_id FROM v_run_params WHERE key = 'step_size' AND value::DOUBLE < 0.1")
        assert len(slow) == 2
        keys = set(store.query("SELECT key FROM v_run_params")["key"])
        assert {"seed", "solver", "stability", "accelerated.restart", "system.complexity_cost", "system.s0.a"} <= keys


def test_a_run_is_found_by_id_prefix_name_and_position(db):
    with DuckDBStore(db, read_only=True) as store:
        ids = store.query("SELECT run_id FROM v_runs")["run_id"].to_list()
        assert resolve_run(store, ids[1]) == ids[1]
        assert resolve_run(store, ids[1][:7]) == ids[1]
        assert resolve_run(store, "first") == ids[0]
        assert resolve_run(store, "@latest") == ids[2] and resolve_run(store, "@-1") == ids[2]
        assert resolve_run(store, "@-3") == ids[0]
        for bad, message in (("@-4", "holds 3 run"), ("@0", "@latest or @-N"), ("zzz", "no run 'zzz'")):
            with pytest.raises(CfcError, match=message):
                resolve_run(store, bad)


def test_an_ambiguous_prefix_lists_the_matches(tmp_path):
    with DuckDBStore(tmp_path / "a.duckdb") as store:
        ids = [relax(demo_system(0), RelaxConfig(steps=3), store=store).run_id for _ in range(2)]
        assert ids[0][:10] == ids[1][:10]  # the same System, config and seed: one stem, two ordinals
        with pytest.raises(CfcError, match=f"matches 2 runs: {ids[0]}") as info:
            resolve_run(store, ids[0][:10])
        assert ids[1] in str(info.value)


def test_cfc_runs_filters_sorts_and_prints_for_scripts(cli, db):
    code, out, _ = cli("runs", "--db", db, "--json", "--tag", "lab=south")
    (row,) = json.loads(out)
    assert code == 0 and row["solver"] == "accelerated" and row["seed"] == 1
    code, out, _ = cli("runs", "--db", db, "--csv", "--where", "steps >= 10", "--sort", "steps", "--desc")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("run_id,name") and len(lines) == 3 and ",12," in lines[1]
    code, out, _ = cli("runs", "--db", db, "--limit", "1", "--json")
    assert len(json.loads(out)) == 1
    code, _, err = cli("runs", "--db", db, "--sort", "nope")
    assert code == 2 and "not a column of v_runs" in err


def test_cfc_runs_never_cuts_an_id_it_shows(cli, db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = cli("runs", "--db", db)
    with DuckDBStore(db, read_only=True) as store:
        ids = store.query("SELECT run_id FROM v_runs")["run_id"].to_list()
    assert code == 0 and all(i[:8] in out for i in ids)


def test_cfc_sql_prints_json_and_csv(cli, db):
    code, out, _ = cli("sql", "SELECT run_id, seed FROM v_runs ORDER BY seed", "--db", db, "--json")
    assert code == 0 and [r["seed"] for r in json.loads(out)] == [0, 0, 1]
    code, out, _ = cli("sql", "SELECT seed FROM v_runs ORDER BY seed", "--db", db, "--csv")
    assert out.split() == ["seed", "0", "0", "1"]


def test_cfc_diff_exit_code_says_whether_runs_differ(cli, db, tmp_path):
    assert cli("diff", "@-3", "@-2", "--db", db, "--exit-code")[0] == 1
    assert cli("diff", "@-3", "@-3", "--db", db, "--exit-code")[0] == 0
    assert cli("diff", "@-3", "@-2", "--db", db)[0] == 0


def test_cfc_rm_deletes_whole_runs_atomically_and_records_it(cli, db):
    with DuckDBStore(db, read_only=True) as store:
        ids = store.query("SELECT run_id FROM v_runs")["run_id"].to_list()
    code, _, err = cli("rm", "first", "nonexistent", "--db", db)
    assert code == 2 and "nonexistent" in err
    with DuckDBStore(db, read_only=True) as store:
        assert len(store.runs()) == 3  # nothing went: the unknown name stopped the whole command
    code, out, _ = cli("rm", "first", "@latest", "--db", db)
    assert code == 0 and "deleted 2 run(s)" in out
    with DuckDBStore(db) as store:
        assert [i.run_id for i in store.runs()] == [ids[1]]
        for table in ("events", "eta_frames", "mat_steps", "run_meta", "run_params"):
            left = store.query(f"SELECT count(*) FROM {table} WHERE run_id IN ({ids[0]!r}, {ids[2]!r})").item()
            assert left == 0, table
        assert store.query("SELECT count(*) FROM eta_values WHERE run_key NOT IN (SELECT run_key FROM runs)").item() == 0
        assert sorted(store.query("SELECT run_id FROM v_deletions")["run_id"]) == sorted([ids[0], ids[2]])
        relax(demo_system(0), RelaxConfig(steps=4), store=store)  # the store takes new runs afterwards


def test_delete_runs_refuses_unknown_ids_in_every_store():
    store = InMemoryStore()
    run = relax(demo_system(0), RelaxConfig(steps=3), store=store)
    with pytest.raises(UnknownRunError):
        store.delete_runs([run.run_id, "missing-1"])
    assert store.delete_runs([run.run_id]) > 0 and store.runs() == []


def test_cfc_run_quiet_prints_only_the_run_id(cli, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"system": demo_system(0).model_dump(mode="json"), "config": {"steps": 5}}))
    code, out, _ = cli("run", path, "--db", tmp_path / "r.duckdb", "--quiet", "--name", "q", "--tag", "a=b")
    assert code == 0 and len(out.split()) == 1
    with DuckDBStore(tmp_path / "r.duckdb", read_only=True) as store:
        assert store.query("SELECT name, tags FROM v_runs").row(0) == ("q", '{"a": "b"}')


def test_a_deleted_run_is_unknown_even_after_replay_read_its_registry_row(tmp_path):
    from complexity_from_constraints.adapters._run_rows import encode_run
    from complexity_from_constraints.projectors import replay

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run = relax(demo_system(0), RelaxConfig(steps=5), store=store)
        assert replay(store, run.run_id, 3).step == 3 and store.run_info(run.run_id).complete  # now remembered
        store.delete_runs([run.run_id])
        for ask in (lambda: store.run_info(run.run_id), lambda: store.read(run.run_id),
                    lambda: replay(store, run.run_id, 3), lambda: store.latest_eta(run.run_id, 3)):
            with pytest.raises(UnknownRunError):
                ask()
        memory = InMemoryStore()
        again = relax(demo_system(0), RelaxConfig(steps=5), store=memory).run_id
        with pytest.raises(RuntimeError), store.transaction():  # a rolled-back run is not remembered either
            store.append_runs([(encode_run(again, memory.read(again)), None)])
            assert store.run_info(again).complete
            raise RuntimeError("roll back")
        with pytest.raises(UnknownRunError):
            store.run_info(again)
