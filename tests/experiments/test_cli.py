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


def test_cfc_experiment_runs_a_study_into_the_database(cli, tmp_path):
    db = tmp_path / "runs.duckdb"
    code, out, err = cli("experiment", "landau_sweep", "--num", "3", "--a-min", "-1", "--steps", "400",
                         "--lr", "0.1", "--db", db)
    assert code == 0, err
    assert "hypothesis" in out and "verdict" in out and "held" in out
    with DuckDBStore(db, read_only=True) as store:
        assert len(store.query("SELECT * FROM v_runs")) == 3


def test_cfc_experiment_json_is_the_study_result(cli, tmp_path):
    code, out, _ = cli("experiment", "wormhole_demo", "--steps", "3", "--db", tmp_path / "w.duckdb", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["study"] == "wormhole_demo" and data["config"]["steps"] == 3 and len(data["run_ids"]) == 3


def test_cfc_experiment_errors_exit_2(cli, tmp_path):
    assert cli("experiment", "no_such_study")[0] == 2
    code, _, err = cli("experiment", "landau_sweep", "--nmu", "3", "--db", tmp_path / "x.duckdb")
    assert code == 2 and "--nmu" in err
