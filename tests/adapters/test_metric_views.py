"""The metric views (ΔF, ΔF90, step stats, gate timeline, gating metrics, run summary) on hand-computed runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore, view_sql
from complexity_from_constraints.entities import GateBenefitCoupling, GateModule, LandauModule, RelaxConfig, System
from complexity_from_constraints.events import Recorded, RunStarted, StepCommitted
from complexity_from_constraints.projectors import package_version, relax

README = Path(__file__).resolve().parents[2] / "README.md"
NEW_VIEWS = ("v_delta_f_by_step", "v_delta_f90", "v_step_stats", "v_gate_timeline", "v_gating_metrics", "v_run_summary")


@pytest.fixture
def db(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        yield store


def landau_trajectory(a: float, b: float, h: float, eta0: float, alpha: float, steps: int) -> np.ndarray:
    """Energies of fixed-step projected descent on aη² + bη⁴ − hη (every step accepted)."""
    eta, out = eta0, []
    for _ in range(steps + 1):
        out.append(a * eta**2 + b * eta**4 - h * eta)
        eta = min(1.0, max(0.0, eta - alpha * (2 * a * eta + 4 * b * eta**3 - h)))
    return np.array(out)


def delta_f_q(energies: np.ndarray, q: float) -> int | None:
    """ΔF_q as README defines it: the first step k with E_k ≤ E_0 − q·(E_0 − min E); None without a drop."""
    e0, e_min = energies[0], energies.min()
    if not e_min < e0:
        return None
    return int(np.flatnonzero(energies <= e0 - q * (e0 - e_min))[0])


@pytest.mark.parametrize("name", NEW_VIEWS)
def test_new_views_have_their_documented_columns_on_an_empty_database(db, name):
    declared = re.search(r"^-- Columns: (.*)$", view_sql()[name], flags=re.M).group(1)
    columns = [re.sub(r"\s*\(.*\)", "", c).strip() for c in declared.split(", ")]
    df = db.query(f"SELECT * FROM {name}")
    assert df.columns == columns and df.is_empty()
    assert f"`{name}`" in README.read_text()


def test_delta_f_and_delta_f90_on_a_hand_computed_landau_descent(db):
    system = System(id="landau", modules=[LandauModule(id="m", a=-1.0, b=1.0, h=0.05, eta0=0.1)])
    r = relax(system, RelaxConfig(steps=25, step_size=0.1, tol=0.0), store=db)
    expected = landau_trajectory(-1.0, 1.0, 0.05, 0.1, 0.1, 25)

    rows = db.query("SELECT step, energy, delta_f FROM v_delta_f_by_step WHERE run_id = ? ORDER BY step", [r.run_id])
    assert rows["step"].to_list() == list(range(26))
    np.testing.assert_allclose(rows["energy"].to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert rows["delta_f"][0] is None
    np.testing.assert_allclose(rows["delta_f"].to_numpy()[1:], np.diff(expected), rtol=1e-9, atol=1e-14)
    assert (rows["delta_f"].to_numpy()[1:] <= 0).all()  # a descent: the energy never rises

    stored = rows["energy"].to_numpy()
    f90 = db.query("SELECT * FROM v_delta_f90 WHERE run_id = ?", [r.run_id]).row(0, named=True)
    assert (f90["e0"], f90["e_min"]) == (stored[0], stored.min())
    assert f90["delta_f90"] == delta_f_q(stored, 0.9) == delta_f_q(expected, 0.9)
    assert f90["delta_f99"] == delta_f_q(stored, 0.99)
    assert 0 < f90["delta_f90"] < f90["delta_f99"] <= 25


def test_delta_f90_is_null_without_a_drop(db):
    # Already at the minimum (η = 0 of a convex well): no step lowers the energy.
    r = relax(System(id="flat", modules=[LandauModule(id="m", a=1.0, eta0=0.0)]), RelaxConfig(steps=5), store=db)
    row = db.query("SELECT e0, e_min, delta_f90, delta_f99 FROM v_delta_f90 WHERE run_id = ?", [r.run_id]).row(0)
    assert row == (0.0, 0.0, None, None)


def test_delta_f90_matches_python_on_a_run_with_rejections_and_gates(db, toy_system):
    for config in (RelaxConfig(steps=60, step_size=3.0), RelaxConfig(steps=60, step_size=0.9, line_search="armijo")):
        r = relax(toy_system, config, store=db)
        energies = np.array([rec.event.energy for rec in db.read(r.run_id, types=["StepCommitted"])])
        row = db.query("SELECT delta_f90, delta_f99 FROM v_delta_f90 WHERE run_id = ?", [r.run_id]).row(0)
        assert row == (delta_f_q(energies, 0.9), delta_f_q(energies, 0.99))


def test_step_stats_count_rejections_backtracks_and_step_sizes(db):
    # α = 3 from η = 0.2 overshoots to the wall η = 1 (E = 0 > E_0): rejected, α halves until a step is kept.
    system = System(id="overshoot", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.2)])
    for config in (RelaxConfig(steps=30, step_size=3.0), RelaxConfig(steps=30, step_size=3.0, line_search="armijo")):
        r = relax(system, config, store=db)
        steps = [rec.event for rec in db.read(r.run_id, types=["StepCommitted"])]
        taken = [s.step_size for s in steps if s.accepted and s.step > 0]
        row = db.query("SELECT * EXCLUDE (run_id) FROM v_step_stats WHERE run_id = ?", [r.run_id]).row(0, named=True)
        assert row == pytest.approx({
            "accepted_steps": len(taken),
            "rejected_steps": sum(not s.accepted for s in steps),
            "total_backtracks": sum(s.backtracks for s in steps),
            "mean_step_size": float(np.mean(taken)),
            "min_step_size": min(taken),
            "max_step_size": max(taken),
        }, rel=1e-12)
        if config.line_search == "none":
            assert row["rejected_steps"] >= 1 and not steps[1].accepted and steps[1].reason == "energy_increase"
        else:
            assert row["total_backtracks"] >= 1


def test_gate_timeline_hazard_is_minus_log_one_minus_eta(db, toy_system):
    r = relax(toy_system, RelaxConfig(steps=40, step_size=0.3), store=db)
    rows = db.query("SELECT gate_id, step, event, eta, hazard FROM v_gate_timeline WHERE run_id = ? ORDER BY step",
                    [r.run_id])
    opened = [rec.event for rec in db.read(r.run_id, types=["GateOpened"])]
    assert rows.select("gate_id", "step", "event", "eta").rows() == [(e.gate_id, e.step, "opened", e.eta) for e in opened]
    np.testing.assert_allclose(rows["hazard"].to_numpy(), -np.log1p(-rows["eta"].to_numpy()), rtol=1e-12)


def always_open_gate() -> System:
    # A straight-through gate measures exactly η = 1, and with a = b = 0 nothing moves it.
    return System(id="open", modules=[GateModule(id="g", gain=1.0, measurement="straight_through", a=0.0, b=0.0),
                                      LandauModule(id="m")])


def test_hazard_is_null_at_eta_one(db):
    r = relax(always_open_gate(), RelaxConfig(steps=3), store=db)
    assert db.query("SELECT event, eta, hazard FROM v_gate_timeline WHERE run_id = ?", [r.run_id]).rows() == [
        ("opened", 1.0, None)]
    metrics = db.query("SELECT gates, opened, closed, open_at_end, hazard_mean FROM v_gating_metrics WHERE run_id = ?",
                       [r.run_id])
    assert metrics.row(0) == (1, 1, 0, 1, None)


def test_gating_metrics_count_gates_events_and_open_ones(db, toy_system):
    toy = relax(toy_system, RelaxConfig(steps=40, step_size=0.3), store=db)
    shut = relax(System(id="shut", modules=[GateModule(id="g", gain=1.0, cost=0.1, a=1.0, b=1.0), LandauModule(id="m")],
                        couplings=[GateBenefitCoupling(id="gb", i="g", j="m", delta=0.0)]),
                 RelaxConfig(steps=200, step_size=0.2), store=db)
    plain = relax(System(id="plain", modules=[LandauModule(id="m")]), RelaxConfig(steps=3), store=db)
    rows = {row[0]: row[1:] for row in db.query(
        "SELECT run_id, gates, opened, closed, open_at_end, hazard_mean FROM v_gating_metrics").iter_rows()}
    assert set(rows) == {toy.run_id, shut.run_id, plain.run_id}
    toy_eta = db.query("SELECT eta FROM v_gate_events WHERE run_id = ?", [toy.run_id])["eta"].to_numpy()
    assert rows[toy.run_id][:4] == (1, 1, 0, 1)
    assert rows[toy.run_id][4] == pytest.approx(float(np.mean(-np.log1p(-toy_eta))), rel=1e-12)
    shut_eta = db.query("SELECT eta FROM v_gate_events WHERE run_id = ? ORDER BY step", [shut.run_id])["eta"].to_numpy()
    assert rows[shut.run_id][:4] == (1, 1, 1, 0)
    assert rows[shut.run_id][4] == pytest.approx(float(np.mean(-np.log1p(-shut_eta))), rel=1e-12)
    assert rows[plain.run_id] == (0, 0, 0, 0, None)


def test_run_summary_has_one_row_per_run_and_agrees_with_the_parts(db, toy_system):
    done = relax(toy_system, RelaxConfig(steps=50, step_size=0.3), store=db)
    # An incomplete run: started and one step committed, never finished.
    started = RunStarted(system=toy_system, config=RelaxConfig(), seed=0, package_version=package_version(),
                         system_digest=toy_system.digest())
    db.append("crashed-1", [Recorded("crashed-1", 0, started), Recorded("crashed-1", 1, StepCommitted(
        step=0, energy=0.25, pg_norm=1.0, step_size=0.05, backtracks=0, accepted=True, reason="initial"))])
    summary = db.query("SELECT * FROM v_run_summary ORDER BY run_id")
    assert summary["run_id"].to_list() == sorted([done.run_id, "crashed-1"])
    row = summary.filter(summary["run_id"] == done.run_id).row(0, named=True)
    energies = np.array([rec.event.energy for rec in db.read(done.run_id, types=["StepCommitted"])])
    assert row == {
        "run_id": done.run_id, "status": done.status, "steps": done.steps, "e0": energies[0],
        "final_energy": done.energy, "energy_drop": energies[0] - done.energy,
        "delta_f90": delta_f_q(energies, 0.9),
        "accepted_steps": sum(s.event.accepted and s.event.step > 0 for s in db.read(done.run_id, types=["StepCommitted"])),
        "rejected_steps": 0, "gate_openings": 1,
    }
    assert row["energy_drop"] > 0
    crashed = summary.filter(summary["run_id"] == "crashed-1").row(0, named=True)
    assert crashed == {"run_id": "crashed-1", "status": "incomplete", "steps": None, "e0": 0.25, "final_energy": None,
                       "energy_drop": None, "delta_f90": None, "accepted_steps": 0, "rejected_steps": 0,
                       "gate_openings": 0}
