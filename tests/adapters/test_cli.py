"""The ``cfc`` command line, driven as a user would."""

from __future__ import annotations

import re

import pytest

from complexity_from_constraints.adapters import DuckDBStore



@pytest.fixture
def demo_db(tmp_path, cli):
    db = tmp_path / "runs.duckdb"
    code, out, err = cli("demo", "--db", str(db))
    assert code == 0, err
    run_id = re.search(r"run (\S+-\d+)", out).group(1)
    return db, run_id, out


def test_demo_relaxes_the_demo_system_and_summarises_it(demo_db):
    db, run_id, out = demo_db
    assert "hook: gate 'repair' opened at step" in out
    assert "energy trace" in out and "gate events" in out and "repair" in out
    assert f"cfc sql \"SELECT step, energy FROM v_energy_by_step WHERE run_id = '{run_id}'" in out
    with DuckDBStore(db, read_only=True) as store:
        gates = store.query("SELECT gate_id, event FROM v_gate_events WHERE run_id = ?", [run_id]).rows()
        assert ("repair", "opened") in gates and not any(g == "idle" for g, _ in gates)


def test_runs_show_replay_sql_and_rerun(demo_db, cli):
    db, run_id, _ = demo_db
    code, out, _ = cli("runs", "--db", str(db))
    assert code == 0 and "1 run(s)" in out and "demo-0" in out
    code, out, _ = cli("show", run_id, "--db", str(db))
    assert code == 0 and "status converged" in out
    code, out, _ = cli("replay", run_id, "--step", "5", "--db", str(db))
    assert code == 0 and f"run {run_id} at step 5" in out and "open gates: repair" in out
    code, out, _ = cli("sql", "SELECT count(*) AS n FROM v_gate_events", "--db", str(db))
    assert code == 0 and " 1 " in out
    code, out, _ = cli("rerun", run_id, "--db", str(db))
    assert code == 0 and "identical" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "nope-1", "--step", "1"], "no run 'nope-1'"),
        (["replay", "RUN", "--step", "99999"], "does not exist"),
        (["replay", "RUN", "--step", "abc"], "Invalid value for '--step'"),
        (["sql", "SELEC 1"], "syntax error"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["demo", "--steps", "-1"], "Invalid value for '--steps'"),
    ],
)
def test_bad_arguments_give_one_clear_line(demo_db, cli, args, message):
    db, run_id, _ = demo_db
    args = [run_id if a == "RUN" else a for a in args]
    code, out, err = cli(*args, "--db", str(db))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_database_is_explained(tmp_path, cli):
    code, _, err = cli("runs", "--db", str(tmp_path / "none.duckdb"))
    assert code == 2 and "no database at" in err


def test_run_a_system_from_a_toml_file(tmp_path, cli):
    cfg = tmp_path / "system.toml"
    cfg.write_text("""
seed = 4

[system]
id = "from-toml"

[[system.modules]]
kind = "landau"
id = "x"
a = -1.0

[[system.modules]]
kind = "gate"
id = "g"

[[system.couplings]]
kind = "gate_benefit"
id = "pull"
i = "g"
j = "x"
delta = 0.4

[config]
steps = 50
line_search = "armijo"
""")
    code, out, err = cli("run", str(cfg), "--db", str(tmp_path / "r.duckdb"))
    assert code == 0, err
    assert "system from-toml (2 modules)  seed 4" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[system]\nid = "b"\n[[system.modules]]\nkind = "landau"\nid = "x"\nb = -1\n')
    code, _, err = cli("run", str(bad), "--db", str(tmp_path / "r.duckdb"))
    assert code == 2 and "LandauModule 'x': field 'b' = -1" in err


def test_cfc_help_imports_none_of_the_heavy_libraries():
    """`cfc --help` stays quick: the commands import numpy, DuckDB, Polars, … only when they run."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io\n"
            "from complexity_from_constraints.adapters.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert main(['--help']) == 0\n"
            "heavy = {'numpy', 'duckdb', 'polars', 'pyarrow', 'torch', 'scipy', 'networkx', 'pydantic', 'matplotlib'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}), 'experiment' in out.getvalue())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True"


def test_output_paths_never_replace_a_store(cli, tmp_path):
    """`cfc plot -o runs.duckdb` and `cfc report --out runs.duckdb` refuse; --force overwrites on purpose."""
    import hashlib

    db = tmp_path / "runs.duckdb"
    assert cli("demo", "--db", db, "--steps", "5")[0] == 0
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for args in (("plot", "@latest", "-o", db), ("report", "@latest", "--out", db)):
        code, _, err = cli(*args, "--db", db)
        assert code == 2 and "refusing to replace it" in err
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    page = tmp_path / "page.html"
    assert cli("report", "@latest", "--out", page, "--db", db)[0] == 0
    assert cli("report", "@latest", "--out", page, "--db", db)[0] == 0  # an HTML report may be replaced
    png = tmp_path / "other.png"
    png.write_text("not a png")
    assert cli("plot", "@latest", "-o", png, "--db", db)[0] == 2
    assert cli("plot", "@latest", "-o", png, "--db", db, "--force")[0] == 0
