"""Export runs to Parquet and import them into another DuckDB file: the log survives bit for bit."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.adapters import DuckDBStore, ExportError, export_runs, import_runs
from complexity_from_constraints.entities import LandauModule, RelaxConfig, System, UnknownRunError
from complexity_from_constraints.projectors import relax, replay, state_digest


@pytest.fixture
def source(tmp_path, toy_system):
    with DuckDBStore(tmp_path / "a.duckdb") as store:
        first = relax(toy_system, RelaxConfig(steps=40, step_size=0.3), store=store, flush_every=7)
        other = relax(System(id="one", modules=[LandauModule(id="m", a=-1.0)]), RelaxConfig(steps=10), store=store)
        yield store, first, other


def test_a_run_exported_and_imported_replays_to_the_same_state(source, tmp_path):
    store1, first, other = source
    assert export_runs(store1, tmp_path / "out", [first.run_id]) == [first.run_id]
    with DuckDBStore(tmp_path / "b.duckdb") as store2:
        # The target already holds a run, so the imported run cannot keep its run_key.
        local = relax(System(id="local", modules=[LandauModule(id="z")]), RelaxConfig(steps=5), store=store2)
        assert import_runs(store2, tmp_path / "out") == [first.run_id]
        state = replay(store2, first.run_id)
        assert state.eta.tobytes() == first.eta.tobytes() and state.status == first.status
        digest = store2.query("SELECT final_digest FROM v_runs WHERE run_id = ?", [first.run_id])["final_digest"][0]
        assert digest == state_digest(state.eta)
        a, b = store1.read(first.run_id), store2.read(first.run_id)
        assert len(a) == len(b) and all(ra.seq == rb.seq and ra.event == rb.event for ra, rb in zip(a, b))
        assert store2.module_ids(first.run_id) == first.ids
        keys = store2.query("SELECT run_id, run_key FROM runs ORDER BY run_key").rows()
        assert keys == [(local.run_id, 1), (first.run_id, 2)]
        for view in ("v_eta", "v_steps", "v_gate_events", "v_run_summary"):
            sql = f"SELECT * FROM {view} WHERE run_id = ? ORDER BY ALL"
            assert store1.query(sql, [first.run_id]).equals(store2.query(sql, [first.run_id])), view
        with pytest.raises(ExportError, match=f"run '{first.run_id}' already exists"):
            import_runs(store2, tmp_path / "out")
        assert store2.query("SELECT count(*) AS n FROM runs")["n"][0] == 2  # nothing half-imported


def test_export_everything_by_default_and_share_systems(source, tmp_path):
    store1, first, other = source
    assert export_runs(store1, tmp_path / "all") == [first.run_id, other.run_id]
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    assert manifest["runs"] == [first.run_id, other.run_id]
    with DuckDBStore(tmp_path / "c.duckdb") as store2:
        import_runs(store2, tmp_path / "all")
        assert store2.query("SELECT count(*) AS n FROM systems")["n"][0] == 2
        assert [r.run_id for r in store2.runs()] == [first.run_id, other.run_id]
        assert replay(store2, other.run_id, 5).eta.tobytes() == replay(store1, other.run_id, 5).eta.tobytes()
        # a third run of a System the target holds: its modules are not stored again
        again = relax(store2.read(first.run_id, types=["RunStarted"])[0].event.system, RelaxConfig(steps=3),
                      store=store2)
        assert store2.query("SELECT count(*) FROM system_modules").item() == len(first.ids) + 1
        assert store2.module_ids(again.run_id) == first.ids


def test_bad_exports_and_unknown_runs_are_clear_errors(source, tmp_path):
    store1, _, _ = source
    with pytest.raises(UnknownRunError, match="no run 'nope-1'"):
        export_runs(store1, tmp_path / "x", ["nope-1"])
    with DuckDBStore(tmp_path / "d.duckdb") as store2:
        with pytest.raises(ExportError, match="not a cfc export"):
            import_runs(store2, tmp_path)
        export_runs(store1, tmp_path / "y")
        (tmp_path / "y" / "events.parquet").unlink()
        with pytest.raises(ExportError, match="events.parquet is missing"):
            import_runs(store2, tmp_path / "y")
        manifest = tmp_path / "y" / "manifest.json"
        manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"store_schema_version": 99}))
        with pytest.raises(ExportError, match="newer version"):
            import_runs(store2, tmp_path / "y")
