"""Every study runs end to end at tiny sizes through an in-memory DuckDB store; a few check closed forms."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

from complexity_from_constraints import experiments
from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import AbstractFrozen, CompressionModule, NashModule, RelaxConfig, System, nash_eta, regret
from complexity_from_constraints.adapters._experiment_cli import load_study as load
from complexity_from_constraints.adapters._experiment_cli import studies
from complexity_from_constraints.entities import CfcError
from complexity_from_constraints.experiments import StudyResult
from complexity_from_constraints.experiments._evidence import VERDICTS
from complexity_from_constraints.experiments._framework import run_summaries
from complexity_from_constraints.projectors import relax

ROOT = Path(experiments.__file__).parent
STUDIES = tuple(studies())

TINY = {
    "landau_sweep": dict(num=3, seeds=2, steps=50),
    "landau_plot": dict(num=20, seeds=2, steps=300),
    "non_local_connectivity_threshold_shift": dict(n=8, num=3, seeds=2),
    "sequence_redemption": dict(n=12, mistake_pos=4, seeds=2),
    "sequence_gating_hypothesis": dict(n=12, mistake_pos=4, seeds=2, scan=(100.0,), steps=30),
    "energy_gated_expansion": dict(n=12, mistake_pos=4, seeds=2, costs=(0.0, 0.1), steps=30, local_steps=50),
    "branching_coexistence": dict(depth=3, trees=3, seeds=2, curve=(0.2,)),
    "emergent_nash_learning": dict(seeds=2, tol=0.01),
    "wormhole_demo": dict(seeds=2, steps=50, seed_steps=5),
    "apc_vs_legendre": dict(n_train=50, n_test=50, seeds=2, steps=50),
    "polynomial_rhs_probe": dict(seeds=2, steps=300),
    "coupling_gate_cost_sweep": dict(weights=(0.5, 4.0), costs=(0.0, 0.4), seeds=2, steps=100),
    "multi_module_scaling": dict(sizes=(1, 2), grid_n=4, seq_len=12, mistake_pos=4, steps=50, seeds=2),
    "auto_balance_demo": dict(steps=30, seeds=2),
    "agm_phase_demo": dict(steps=30, seeds=2),
    "benchmark_delta_f90": dict(dense_size=4, steps=30, seeds=2, repeats=1),
}


@pytest.fixture
def store():
    with DuckDBStore(":memory:") as s:
        yield s


def test_the_entry_points_list_every_study_module_and_nothing_else():
    modules = sorted(p.stem for p in ROOT.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(STUDIES) == modules
    assert set(TINY) == set(STUDIES)
    for name in STUDIES:
        study = load(name)
        module = importlib.import_module(f"complexity_from_constraints.experiments.{name}")
        assert study.name == name and study.title
        assert issubclass(study.config, AbstractFrozen) and study.config.model_config["frozen"]
        assert module.STUDY is study
    with pytest.raises(CfcError, match="unknown study"):
        load("no_such_study")


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_runs_at_tiny_size_and_records_its_runs(name, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a study writes no file: its figures are drawn by figures(result), written by the CLI
    study = load(name)
    config = study.config(**TINY[name])
    seen = []
    result = study.run(config, store, progress=experiments.Progress(lambda done, total, _: seen.append((done, total))))
    assert isinstance(result, StudyResult) and result.study == name
    assert result.hypothesis and result.measured
    assert result.config == config.model_dump(mode="json")
    assert result.run_ids, "a study records its runs"
    recorded = set(store.query("SELECT run_id FROM v_runs")["run_id"])
    assert set(result.run_ids) <= recorded
    assert seen and seen[-1][0] == seen[-1][1]  # the progress reached its total
    assert StudyResult.model_validate_json(result.model_dump_json()) == result
    assert result.verdict in VERDICTS
    # every study: many seeds, a stated rule, theory beside the measurement, figures
    assert result.rule and result.seeds >= 2 and (result.checks or result.verdict == "measured")
    assert result.seeds == config.seeds and study.config().seeds >= 10
    if result.verdict == "inconclusive":
        assert result.reason
    figures = study.figures(result)
    assert figures and all(hasattr(f, "savefig") for f in figures.values())
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)  # pyplot keeps every open figure (and warns past 20)
    assert not list(tmp_path.iterdir())


def test_landau_sweep_matches_the_fixed_point(store):
    """η* = √(−a/2b) for a < 0, 0 for a > 0 (run to convergence), from every seed's start."""
    study = load("landau_sweep")
    result = study.run(study.config(a_min=-1.0, a_max=1.0, num=5, b=2.0, seeds=3, steps=3000, lr=0.1), store)
    for r in result.rows:
        expected = math.sqrt(-r["a"] / (2 * 2.0)) if r["a"] < 0 else 0.0
        assert r["eta_star"] == pytest.approx(expected) and r["n"] == 3
        assert r["eta_mean"] == pytest.approx(expected, abs=1e-4 if r["a"] != 0 else 0.05)
        if r["a"] < 0:
            assert r["F_star"] == pytest.approx(-r["a"] ** 2 / (4 * 2.0), abs=1e-12)
    assert result.verdict == "held" and result.reason == "12/12 runs converged"
    assert all(c.agrees for c in result.checks)


def test_landau_sweep_on_a_short_budget_is_inconclusive_not_held(store):
    study = load("landau_sweep")
    result = study.run(study.config(num=3, seeds=2, steps=20), store)
    assert result.verdict == "inconclusive" and result.reason.startswith("not converged: 0/4")


def test_the_prisoners_dilemma_converges_to_mutual_defection(store):
    study = importlib.import_module("complexity_from_constraints.experiments.emergent_nash_learning")
    game = NashModule.prisoners_dilemma("g")
    assert study.pure_equilibria(game.row_payoffs, game.col_payoffs) == [(1, 1)]
    assert regret(game.row_payoffs, game.col_payoffs, 1.0, 1.0) == (0.0, 0.0)
    assert nash_eta(game.row_payoffs, game.col_payoffs, 1.0, 1.0) == 1.0
    result = study.run(study.NashLearningConfig(seeds=4), store)
    assert result.held is True
    for r in result.rows:
        assert r["p_row"] > 0.99 and r["p_col"] > 0.99  # (Defect, Defect), not the seed's (Defect, Cooperate)
        assert r["eta_final"] > r["eta0"] and r["eta_final"] > 0.999


def test_delta_f90_on_a_hand_computed_trace(store):
    """f = η² from η₀ = 1 with α = 1/4: η halves each step, E_k = 4^−k, so with 5 steps
    E_min = 4^−5; ΔF90: first E_k ≤ 1 − 0.9(1 − 4^−5) ≈ 0.10088 → k = 2; ΔF99: ≤ 0.01097 → k = 4."""
    system = System(id="halving", modules=[CompressionModule(id="c", a=1.0, b=0.0, target=0.0, eta0=1.0)])
    run_id = relax(system, RelaxConfig(steps=5, step_size=0.25, tol=0.0), store=store).run_id
    energies = store.query("SELECT energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [run_id])["energy"]
    assert energies.to_list() == [4.0 ** -k for k in range(6)]
    summary = run_summaries(store, [run_id]).row(0, named=True)
    assert (summary["delta_f90"], summary["delta_f99"]) == (2, 4)
    assert summary["e0"] == 1.0 and summary["final_energy"] == 4.0 ** -5


def test_the_benchmark_scenarios_reproduce_the_seed_initial_energies():
    import numpy as np

    from complexity_from_constraints.projectors import compile_system, energy

    bench = importlib.import_module("complexity_from_constraints.experiments.benchmark_delta_f90")
    for system, e0 in ((bench.baseline(), 0.213087), (bench.dense(16), 0.343396), (bench.dense(32), 0.682829)):
        eta = np.array([m.initial_eta() for m in system.modules])
        assert energy(compile_system(system), eta) == pytest.approx(e0, abs=5e-7)


def test_the_wormhole_comparison_changes_only_the_coupling(store):
    study = importlib.import_module("complexity_from_constraints.experiments.wormhole_demo")
    config = study.WormholeConfig()
    a, b = study.system(config, "a", config.spring_weight, False), study.system(config, "b", config.spring_weight, True)
    assert a.modules == b.modules and a.couplings == b.couplings[:1] and b.couplings[1].kind == "gate_benefit"
    result = study.run(config, store)
    rows = {r["arm"]: r for r in result.rows if r["part"] != "converged"}  # the seed's 30 steps from its start
    assert rows["without"]["grad_on_gate0"] == pytest.approx(-0.5)  # 2·w·(0 − 0.5) with w = 0.5
    assert rows["with"]["grad_on_gate0"] == pytest.approx(-1.1)  # … − w_gb·Δ = −0.6 more
    assert rows["seed_A"]["eta_gate"] == pytest.approx(0.112, abs=5e-4)  # the seed's own numbers
    assert rows["with"]["eta_gate"] == pytest.approx(0.535, abs=5e-4)
    converged = {r["arm"]: r for r in result.rows if r["part"] == "converged"}  # run to convergence, every seed
    assert converged["with"]["eta_gate"] == pytest.approx(converged["with"]["eta_gate_theory"], abs=1e-5)
    assert converged["without"]["eta_gate"] == pytest.approx(0.0, abs=1e-5)
    assert result.verdict == "held" and result.reason == f"{2 * config.seeds}/{2 * config.seeds} runs converged"
