"""Bad input on the command line: one line on stderr, exit 2, and nothing left behind; never a traceback."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import InvalidEntityError, RelaxConfig, demo_system, standard_system
from complexity_from_constraints.events import Recorded, RunStarted
from complexity_from_constraints.projectors import relax


def _system_file(tmp_path, **extra):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"system": demo_system(0).model_dump(mode="json"), **extra}))
    return path


@pytest.mark.parametrize("extra, field", [({"seed": "abc"}, "seed"), ({"sed": 3}, "sed"), ({"seed": -1}, "seed"),
                                          ({"config": {"eta0": [1.5]}}, "eta0")])
def test_a_bad_run_file_names_the_field_and_records_nothing(cli, tmp_path, extra, field):
    db = tmp_path / "r.duckdb"
    code, out, err = cli("run", _system_file(tmp_path, **extra), "--db", db)
    assert code == 2 and err.startswith("cfc: error:") and field in err and "Traceback" not in err + out
    if db.exists():
        with DuckDBStore(db, read_only=True) as store:
            assert store.runs() == []


def test_negative_seeds_are_refused_everywhere(cli, tmp_path):
    """One rule: a seed is an integer ≥ 0, from the command line, the Python API and the families alike."""
    assert cli("demo", "--seed", "-1", "--db", tmp_path / "d.duckdb")[0] == 2
    for call in (lambda: relax(demo_system(0), RelaxConfig(steps=2), seed=-1), lambda: demo_system(-1),
                 lambda: standard_system(10, seed=-3)):
        with pytest.raises(InvalidEntityError, match="seed"):
            call()


def test_commands_on_existing_runs_never_create_a_database(cli, tmp_path):
    for args in (("rerun", "abc"), ("fork", "abc", "--step", "1"), ("rm", "abc"), ("show", "abc")):
        typo = tmp_path / "tpyo.duckdb"
        code, _, err = cli(*args, "--db", typo)
        assert code == 2 and "no database at" in err and not typo.exists(), args


def test_a_run_with_no_steps_is_shown_and_refused_for_replay(cli, tmp_path):
    db = tmp_path / "n.duckdb"
    with DuckDBStore(db) as store:  # what a crash right after RunStarted leaves
        started = RunStarted(system=demo_system(0), config=RelaxConfig(), seed=0, package_version="x",
                             system_digest=demo_system(0).digest())
        run_id = store.new_run_id(started)
        store.append(run_id, [Recorded(run_id, 0, started)])
    code, out, _ = cli("show", run_id, "--db", db)
    assert code == 0 and "none recorded" in out and "incomplete" in out
    code, _, err = cli("replay", run_id, "--db", db)
    assert code == 2 and "has no recorded step" in err


def test_unwritable_export_folder_and_malformed_progress_lines_are_one_line_errors(cli, tmp_path):
    db = tmp_path / "e.duckdb"
    assert cli("demo", "--db", db, "--steps", "3")[0] == 0
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("export", "--to", blocker / "sub", "--db", db)
    assert code == 2 and err.startswith("cfc: error:") and len(err.strip().splitlines()) == 1
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"type": "StepCommitted", "step": 1}\ngarbage{\n')
    code, _, err = cli("follow", bad, "--timeout", "1")
    assert code == 2 and "StepCommitted line without a usable 'accepted'" in err
    bad.write_text('{"type": "Nothing"}\ngarbage{\n')
    code, _, err = cli("follow", bad, "--timeout", "1")
    assert code == 2 and "line 2" in err


def test_follow_says_it_waits_for_a_missing_file(cli, tmp_path):
    code, _, err = cli("follow", tmp_path / "later.jsonl", "--timeout", "0.2")
    assert code == 1 and "waiting for" in err and "giving up after 0.2 s" in err
