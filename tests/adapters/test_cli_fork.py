"""`cfc fork RUN --step K [--set FIELD=VALUE …]`, driven as a user would."""

from __future__ import annotations

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import RelaxConfig
from complexity_from_constraints.projectors import diff_runs, relax


@pytest.fixture
def parent(tmp_path, toy_system):
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:
        run = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), store=store).run_id
    return db, run


def test_fork_continues_a_run_with_changed_settings(parent, cli):
    db, run = parent
    code, out, err = cli("fork", run, "--step", "5", "--set", "step_size=0.1", "--set", "line_search=armijo",
                         "--set", "stability.warn_margin=0.5", "--db", str(db))
    assert code == 0, err
    assert f"of {run} at step 5" in out and "step_size" in out and "first divergence at step 6" in out
    with DuckDBStore(db, read_only=True) as store:
        (child,) = [i.run_id for i in store.runs() if i.run_id != run]
        started = store.read(child, types=["RunStarted"])[0].event
        assert (started.parent_run_id, started.parent_step) == (run, 5)
        cfg = started.config
        assert (cfg.step_size, cfg.line_search, cfg.stability.warn_margin) == (0.1, "armijo", 0.5)
        d = diff_runs(store, run, child)
        assert d.first_divergence == 6 and d.first_energy_difference == 6


def test_fork_errors_are_one_line(parent, cli):
    db, run = parent
    for args, message in ((["--step", "99"], "cannot fork at step 99"), (["--step", "2", "--set", "step_size"], "FIELD=VALUE"),
                          (["--step", "2", "--set", "step_size=-1"], "step_size"),
                          (["--step", "2", "--set", "eta0=uniform"], "eta0")):
        code, _, err = cli("fork", run, *args, "--db", str(db))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
