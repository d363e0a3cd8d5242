"""``cfc experiment``: studies found by entry point, options mapped onto config fields by pydantic-settings."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._experiment_cli import config_from_options, parse_options
from complexity_from_constraints.entities import CfcError, InvalidEntityError
from complexity_from_constraints.experiments.benchmark_delta_f90 import BenchmarkConfig
from complexity_from_constraints.experiments.landau_sweep import LandauSweepConfig
from complexity_from_constraints.experiments.sequence_gating_hypothesis import SequenceGatingConfig


def test_options_are_the_config_fields():
    assert parse_options(LandauSweepConfig, ["--a-min", "-0.5", "--num=3", "--b", "2"]) == \
        {"a_min": -0.5, "num": 3, "b": 2.0}
    config = config_from_options(LandauSweepConfig, ["--a-min", "-.5", "--num", "3"])
    assert (config.a_min, config.num, config.a_max) == (-0.5, 3, 1.0)
    bench = config_from_options(BenchmarkConfig, ["--presets", "vect,lbfgsb", "--scenarios=baseline,dense"])
    assert bench.presets == ("vect", "lbfgsb") and bench.scenarios == ("baseline", "dense")
    repeated = config_from_options(BenchmarkConfig, ["--presets", "vect", "--presets", "lbfgsb"])
    assert repeated.presets == ("vect", "lbfgsb")
    gating = config_from_options(SequenceGatingConfig, ["--no-normalize", "--noise", "0"])
    assert gating.normalize is False and gating.noise == 0.0
    assert config_from_options(SequenceGatingConfig, ["--normalize"]).normalize is True
    assert config_from_options(BenchmarkConfig, ['--presets', '["coord", "admm"]']).presets == ("coord", "admm")


def test_no_environment_variable_sets_an_option(monkeypatch):
    monkeypatch.setenv("NUM", "7")
    monkeypatch.setenv("num", "7")
    assert config_from_options(LandauSweepConfig, []).num == LandauSweepConfig().num


@pytest.mark.parametrize("tokens, message", [
    (["--nmu", "3"], "unrecognized arguments: --nmu"),
    (["3"], "unrecognized arguments: 3"),
    (["--num"], "expected one argument"),
    (["--num", "3", "4"], "unrecognized arguments: 4"),
])
def test_bad_options_say_what_is_wrong(tokens, message):
    with pytest.raises(CfcError, match=message):
        parse_options(LandauSweepConfig, tokens)


def test_a_bad_value_names_the_field():
    with pytest.raises(InvalidEntityError, match="num"):
        config_from_options(LandauSweepConfig, ["--num", "1"])
    with pytest.raises(InvalidEntityError, match="num"):
        config_from_options(LandauSweepConfig, ["--num", "many"])
    with pytest.raises(InvalidEntityError, match="presets"):
        config_from_options(BenchmarkConfig, ["--presets", "nope"])


def test_cfc_experiment_lists_the_studies(cli):
    code, out, _ = cli("experiment")
    assert code == 0 and "landau_sweep" in out and "benchmark_delta_f90" in out


def test_cfc_experiment_help_lists_a_studys_options(cli):
    code, out, _ = cli("experiment", "landau_sweep", "--help")
    assert code == 0 and "--a-min" in out and "--critical-band" in out and "--db" in out


LANDAU = ("--num", "3", "--a-min", "-1", "--seeds", "2", "--steps", "400", "--lr", "0.1")


def _runs(db):
    with DuckDBStore(db, read_only=True) as store:
        return store.query("SELECT run_id, study, sweep, tags FROM v_runs ORDER BY run_id")


def _events(db):
    with DuckDBStore(db, read_only=True) as store:
        return store.query("SELECT run_id, seq, type, payload FROM events ORDER BY run_id, seq"), \
            store.query("SELECT run_id, step, entity_id, eta FROM v_eta ORDER BY run_id, step, entity_id")


def test_cfc_experiment_runs_a_study_into_the_database(cli, tmp_path):
    db = tmp_path / "runs.duckdb"
    code, out, err = cli("experiment", "landau_sweep", *LANDAU, "--engine", "serial", "--db", db)
    assert code == 0, err
    assert "hypothesis" in out and "rule" in out and "theory" in out and "verdict" in out and "held" in out
    runs = _runs(db)
    assert len(runs) == 6 and set(runs["study"]) == {"landau_sweep"}  # 3 values of a × 2 seeds
    assert runs["sweep"].str.starts_with("landau_sweep-").all()
    figure = tmp_path / "runs-figures" / "landau_sweep-eta_vs_a.png"
    assert figure.read_bytes()[:4] == b"\x89PNG" and str(figure) in out.replace("\n", "")


def test_a_study_run_again_finds_its_runs_and_repeats_none(cli, tmp_path):
    db = tmp_path / "runs.duckdb"
    first = cli("experiment", "landau_sweep", *LANDAU, "--engine", "serial", "--db", db, "--json", "--no-figures")
    before = _events(db)
    second = cli("experiment", "landau_sweep", *LANDAU, "--engine", "serial", "--db", db, "--json", "--no-figures")
    assert first[0] == second[0] == 0
    assert json.loads(first[1]) == json.loads(second[1])
    after = _events(db)
    assert before[0].equals(after[0]) and before[1].equals(after[1])
    assert not (tmp_path / "runs-figures").exists()


def test_a_study_gives_the_same_runs_on_the_process_pool_as_in_one_process(cli, tmp_path):
    serial, pool = tmp_path / "serial.duckdb", tmp_path / "pool.duckdb"
    assert cli("experiment", "landau_sweep", *LANDAU, "--engine", "serial", "--db", serial, "--no-figures")[0] == 0
    code, _, err = cli("experiment", "landau_sweep", *LANDAU, "--engine", "local", "--workers", "2", "--db", pool,
                       "--no-figures")
    assert code == 0, err
    assert _runs(serial).equals(_runs(pool))
    for a, b in zip(_events(serial), _events(pool)):
        assert a.equals(b)  # same ids, same events and η, bit for bit


def test_a_study_runs_on_ray(cli, tmp_path):
    serial, on_ray = tmp_path / "serial.duckdb", tmp_path / "ray.duckdb"
    args = ("experiment", "landau_sweep", "--num", "2", "--seeds", "2", "--steps", "50", "--no-figures")
    assert cli(*args, "--engine", "serial", "--db", serial)[0] == 0
    code, _, err = cli(*args, "--engine", "ray", "--workers", "2", "--db", on_ray)
    assert code == 0, err
    for a, b in zip(_events(serial), _events(on_ray)):
        assert a.equals(b)


@pytest.mark.parametrize("args, message", [
    (("--all", "landau_sweep"), "give no study name"),
    (("landau_sweep", "--table"), "--table goes with --all"),
    (("landau_sweep", "--engine", "gpu"), "choose local, ray or serial"),
])
def test_bad_engine_and_table_options_say_what_is_wrong(cli, tmp_path, args, message):
    code, _, err = cli("experiment", *args, "--db", tmp_path / "x.duckdb")
    assert code == 2 and message in err


def test_cfc_experiment_json_is_the_study_result(cli, tmp_path):
    code, out, _ = cli("experiment", "wormhole_demo", "--steps", "3", "--seeds", "2", "--db", tmp_path / "w.duckdb",
                       "--json", "--engine", "serial")
    assert code == 0
    data = json.loads(out)
    assert data["study"] == "wormhole_demo" and data["config"]["steps"] == 3
    assert len(data["run_ids"]) == 2 * 2 + 3  # two arms per seed, and the seed's three arms replicated


def test_cfc_experiment_errors_exit_2(cli, tmp_path):
    assert cli("experiment", "no_such_study")[0] == 2
    code, _, err = cli("experiment", "landau_sweep", "--nmu", "3", "--db", tmp_path / "x.duckdb")
    assert code == 2 and "--nmu" in err


def test_a_study_killed_half_way_finishes_when_run_again(cli, tmp_path):
    """The serial engine relaxes in the cfc process itself: a kill marker on the fourth run SIGKILLs the whole
    command half way; run again, the study finishes with the runs an uninterrupted study records."""
    import os
    import subprocess
    import sys

    from complexity_from_constraints.adapters._sweep import FAULTS_ENV

    whole, killed, faults = tmp_path / "whole.duckdb", tmp_path / "killed.duckdb", tmp_path / "faults"
    faults.mkdir()
    args = ("experiment", "landau_sweep", *LANDAU, "--engine", "serial", "--no-figures")
    assert cli(*args, "--db", whole)[0] == 0
    with DuckDBStore(whole, read_only=True) as store:
        victim = store.query("SELECT run_id FROM v_runs WHERE name = 'landau_sweep/p3'")["run_id"][0]
    (faults / f"{victim}.kill").touch()
    command = [sys.executable, "-c", "from complexity_from_constraints.adapters.cli import main; raise SystemExit(main())",
               *args, "--db", str(killed)]
    first = subprocess.run(command, env={**os.environ, FAULTS_ENV: str(faults)}, capture_output=True, timeout=300)
    assert first.returncode == -9, first.stderr.decode()[-500:]
    assert len(_runs(killed)) < 6  # the runs of groups written before the kill are kept, whole; no run half
    again = subprocess.run(command, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-500:]
    assert _runs(whole).drop("tags").equals(_runs(killed).drop("tags"))
    for a, b in zip(_events(whole), _events(killed)):
        assert a.equals(b)
