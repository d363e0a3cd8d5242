"""`cfc diff`, `cfc export` / `cfc import` and `cfc plot`, driven as a user would."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import RelaxConfig
from complexity_from_constraints.projectors import relax



@pytest.fixture
def two_runs(tmp_path, toy_system):
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:
        a = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), store=store).run_id
        b = relax(toy_system, RelaxConfig(steps=30, step_size=0.2), seed=3, store=store).run_id
    return db, a, b


def test_diff_prints_a_summary_or_json(two_runs, cli):
    db, a, b = two_runs
    code, out, err = cli("diff", a, b, "--db", str(db))
    assert code == 0, err
    assert f"diff {a} (A) → {b} (B)" in out and "step_size" in out and "seed" in out
    assert "first divergence at step 1" in out and "energy: first difference at step 1" in out
    code, out, _ = cli("diff", a, b, "--json", "--tol", "1e-6", "--db", str(db))
    data = json.loads(out)
    assert code == 0 and data["config"] == {"step_size": [0.3, 0.2]} and data["seed"] == [0, 3] and data["tol"] == 1e-6
    code, out, _ = cli("diff", a, a, "--db", str(db))
    assert code == 0 and "no difference" in out
    code, _, err = cli("diff", a, "nope-1", "--db", str(db))
    assert code == 2 and "no run 'nope-1'" in err and len(err.strip().splitlines()) == 1


def test_export_then_import_into_another_database(two_runs, tmp_path, cli):
    db, a, b = two_runs
    out_dir, other = tmp_path / "exported", tmp_path / "other.duckdb"
    code, out, err = cli("export", a, "--to", str(out_dir), "--db", str(db))
    assert code == 0 and f"exported 1 run(s) to {out_dir}" in out, err
    code, out, err = cli("import", str(out_dir), "--db", str(other))
    assert code == 0 and f"imported 1 run(s) into {other}: {a}" in out, err
    code, _, err = cli("import", str(out_dir), "--db", str(other))
    assert code == 2 and f"run '{a}' already exists" in err
    code, out, _ = cli("export", "--to", str(tmp_path / "all"), "--db", str(db))
    assert code == 0 and "exported 2 run(s)" in out


def test_plot_writes_a_png_per_metric(two_runs, tmp_path, cli):
    db, a, b = two_runs
    for metric, runs in (("energy", [a, b]), ("eta", [a]), ("gates", [a])):
        target = tmp_path / f"{metric}.png"
        code, out, err = cli("plot", *runs, "--metric", metric, "-o", str(target), "--db", str(db))
        assert code == 0 and f"wrote {target}" in out, err
        assert target.read_bytes().startswith(b"\x89PNG")
    code, _, err = cli("plot", a, b, "--metric", "eta", "-o", str(tmp_path / "x.png"), "--db", str(db))
    assert code == 2 and "draws one run" in err
    code, _, err = cli("plot", a, "--metric", "speed", "--db", str(db))
    assert code == 2 and "unknown metric 'speed'" in err
