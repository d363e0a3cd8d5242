"""landau_plot, apc_vs_legendre and polynomial_rhs_probe: their closed forms, and verdicts that flip where they must."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._experiment_cli import load_study as load
from complexity_from_constraints.entities import InvalidEntityError


@pytest.fixture
def store():
    with DuckDBStore(":memory:") as s:
        yield s


def test_landau_plot_settles_at_the_closed_form_and_contracts_at_its_rate(store):
    """a = −1, b = 2: η* = √(−a/2b) = 0.5, depth −a²/4b = −1/8, f''(η*) = −4a = 4, contraction 1 − lr·4 = 0.6."""
    study = load("landau_plot")
    result = study.run(study.config(a=-1.0, b=2.0, seeds=3, step_size=0.1), store)
    assert result.verdict == "held" and result.reason == "3/3 runs converged"
    assert len({r["start"] for r in result.rows}) == 3  # the seeds start from different η₀
    for r in result.rows:
        assert r["eta_final"] == pytest.approx(0.5, abs=1e-6)
        assert r["energy_final"] == pytest.approx(-0.125, abs=1e-12)
        assert r["contraction"] == pytest.approx(0.6, abs=1e-3)
    assert result.metrics["rate_predicted"] == pytest.approx(0.6)
    assert all(c.agrees for c in result.checks)


def test_landau_plot_above_the_transition_settles_at_zero_and_short_budgets_are_inconclusive(store):
    study = load("landau_plot")
    above = study.run(study.config(a=0.5, seeds=2), store)
    assert above.verdict == "held" and all(abs(r["eta_final"]) < 1e-6 for r in above.rows)
    assert above.metrics["rate_predicted"] == pytest.approx(1 - 0.1 * 1.0)  # f''(0) = 2a
    short = study.run(study.config(seeds=2, steps=10), store)
    assert short.verdict == "inconclusive" and short.reason.startswith("not converged: 0/2")


def test_landau_plot_no_longer_takes_an_output_file():
    study = load("landau_plot")
    assert "out" not in study.config.model_fields
    with pytest.raises(InvalidEntityError, match="out"):
        study.config(out="landau.png")


def test_apc_and_legendre_writings_of_one_function_relax_identically(store):
    """Theory: a change of basis only reparametrises the coefficients, so the runs agree; the claim does not hold."""
    study = load("apc_vs_legendre")
    result = study.run(study.config(seeds=3, n_train=200, n_test=200), store)
    assert result.verdict == "did not hold" and result.reason == f"{len(result.run_ids)}/{len(result.run_ids)} runs converged"
    assert result.metrics["parted_before_target"] == 0
    for split in ("train", "test", "ood"):
        assert result.metrics[f"difference_{split}_mean"] == 0 and result.metrics[f"difference_{split}_sd"] == 0
    assert result.metrics["gram_error_train_mean"] < 1e-12 < result.metrics["gram_error_test_mean"]
    assert result.metrics["gram_error_test_mean"] < result.metrics["gram_error_ood_mean"]
    assert result.metrics["gram_error_test_sd"] > 0  # each seed fits its own basis on its own split
    assert [c.agrees for c in result.checks][:3] == [True, True, True]


def test_apc_counts_backtracks_up_to_the_common_target():
    module = importlib.import_module("complexity_from_constraints.experiments.apc_vs_legendre")
    trace = [(0, 1.0, None), (1, 0.5, 2), (2, 0.1, 3), (3, 0.05, 1)]
    assert module.to_target(trace, 0.1) == (2, 5)
    assert module.to_target(trace, 0.0) == (None, 6)


def test_the_rhs_fixed_point_error_follows_linear_regression():
    """Without relaxing: over many noise draws the fitted energy's minimum moves by δ with the predicted sd (small σ;
    at σ = 0.05 the cubic term of E′ already pulls the large errors back, 0.027 against 0.031)."""
    probe = importlib.import_module("complexity_from_constraints.experiments.polynomial_rhs_probe")
    config = probe.RhsProbeConfig()
    true = probe.PolynomialModule(id="energy", coeffs=config.coeffs)
    mono = np.asarray(true.monomial)
    star = probe.interior_minimum(mono)
    assert star == pytest.approx(0.5)  # E = 0.4375ξ⁴ + 0.075ξ² − 0.1125
    assert probe.derivative(mono, np.array([star]), 2)[0] == pytest.approx(4 * 0.15)
    rng = np.random.default_rng(1)
    deltas = [probe.interior_minimum(np.asarray(probe.fitted_energy(config, true, 0.3, 0.005 * rng.standard_normal(25))
                                                .monomial)) - star for _ in range(2000)]
    assert np.std(deltas) == pytest.approx(probe.predicted_sd(config, mono, 0.005), rel=0.06)
    assert abs(np.mean(deltas)) < 3 * np.std(deltas) / np.sqrt(len(deltas))


def test_a_fit_below_the_rhs_degree_does_not_reproduce_the_trajectory(store):
    """−E′ is a cubic: degree 3 fits it exactly (held), degree 2 cannot (did not hold)."""
    study = load("polynomial_rhs_probe")
    exact = study.run(study.config(degree=3, noises=(0.0,), seeds=2), store)
    assert exact.verdict == "held" and exact.metrics["gap_0_mean"] < 1e-10
    short = study.run(study.config(degree=2, noises=(0.0,), seeds=2), store)
    assert short.verdict == "did not hold" and short.metrics["gap_0_mean"] > 1e-3
    assert short.checks[0].agrees is False
