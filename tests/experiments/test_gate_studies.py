"""The gate studies against their closed forms: the counting identity of redemption, a gate's minimum
2aη + 4bη³ = wΔ and its opening boundary, and the converged ΔF_new of an expansion candidate."""

from __future__ import annotations

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._experiment_cli import load_study as load
from complexity_from_constraints.experiments._framework import gate_energy, gate_minimum, opening_pull


@pytest.fixture
def store():
    with DuckDBStore(":memory:") as s:
        yield s


@pytest.mark.parametrize(("position", "verdict"), [(3, "held"), (9, "did not hold")])
def test_redemption_is_the_counting_identity_and_changes_sign_at_the_middle(store, position, verdict):
    """Without noise the effect of a deep dip at p is exactly (2 − 4p/n)/(n − 1): positive before n/2, negative after."""
    study = load("sequence_redemption")
    n = 12
    result = study.run(study.config(n=n, mistake_pos=position, dip=1.0, noise=0.0, seeds=2), store)
    expected = (2 - 4 * position / n) / (n - 1)
    assert result.metrics["effect_predicted"] == pytest.approx(expected, abs=1e-15)
    assert all(r["due_to_mistake"] == pytest.approx(expected, abs=1e-12) for r in result.rows)
    assert all(r["control_redemption"] == 0.0 for r in result.rows)  # an ordered ramp redeems nothing
    assert result.verdict == verdict and result.checks[0].agrees


def test_the_repair_gate_ends_at_its_closed_form_and_opens_exactly_above_the_boundary(store):
    study = load("sequence_gating_hypothesis")
    result = study.run(study.config(n=12, mistake_pos=4, seeds=2, scan=(2.0, 20.0)), store)
    assert result.verdict == "did not hold"  # the seed's w = 0.9 cannot hold the gate open
    pull = opening_pull(0.2, 0.3, 0.5)
    for r in result.rows:
        assert r["eta_gate"] == pytest.approx(gate_minimum(0.2, 0.3, r["weight"] * r["delta_eta"]), abs=1e-5)
        assert r["gate_open"] == (r["weight"] * r["delta_eta"] >= pull)
        assert r["redemption"] == (r["delta_eta"] if r["gate_open"] else 0.0)
    assert {r["weight"]: r["gate_open"] for r in result.rows} == {0.9: False, 2.0: False, 20.0: True}
    assert all(c.agrees for c in result.checks)
    above = study.run(study.config(n=12, mistake_pos=4, seeds=2, benefit_weight=20.0, scan=()), store)
    assert above.verdict == "held"


def test_expansion_admits_exactly_below_the_closed_form_cost_and_flags_a_short_local_budget(store):
    study = load("energy_gated_expansion")
    config = study.config(n=12, mistake_pos=4, seeds=2, costs=(0.0, 0.001, 0.1))
    result = study.run(config, store)
    delta = 4 / 66  # the deep dip at 4 of 12 makes 4 of 66 pairs inversions; the repair orders them
    best = gate_energy(0.1, 0.1, delta, gate_minimum(0.1, 0.1, delta))
    assert best == pytest.approx(-delta**2 / 0.4, rel=0.1)
    by_cost = {r["cost"]: r for r in result.rows}
    for cost, r in by_cost.items():
        assert r["delta_f_mean"] == pytest.approx(cost + best, abs=1e-9)
        assert r["expansion_rate"] == (1.0 if cost + best < 0 else 0.0)
    assert result.verdict == "held" and all(c.agrees for c in result.checks)
    # the earlier default: 50 local steps of 0.1, no convergence stop, refuses everything and must not be judged
    short = study.run(config.evolve(local_steps=50, local_tol=0.0, local_step_size=0.1), store)
    assert short.verdict == "inconclusive" and "local relaxation" in short.reason


def test_the_gate_cost_does_not_move_the_opening_boundary_but_the_gate_energy_does(store):
    study = load("coupling_gate_cost_sweep")
    result = study.run(study.config(weights=(1.0, 1.25), costs=(0.0, 0.4), seeds=2), store)
    assert result.verdict == "did not hold" and all(c.agrees for c in result.checks)
    assert {(r["cost"], r["weight"]): r["open_share"] for r in result.rows} == {
        (0.0, 1.0): 0.0, (0.0, 1.25): 1.0, (0.4, 1.0): 0.0, (0.4, 1.25): 1.0}
    stiffer = study.run(study.config(weights=(2.0, 2.5), costs=(0.0,), seeds=2, gate_a=0.5), store)  # w* = 0.65/0.3
    assert stiffer.metrics["weight_needed"] == pytest.approx(0.65 / 0.3)
    assert [r["open_share"] for r in stiffer.rows] == [0.0, 1.0]
