"""The analysis views (terms, entity energies, contraction margin, weights, redemption, expansion metrics).

Most numbers here are computed by hand on tiny logs written event by event, so the views are checked
against their definitions rather than against the coordinator; a few runs check that the views agree
with the events a real relaxation records.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore, view_sql
from complexity_from_constraints.entities import (
    Candidate,
    CompressionModule,
    ConnectivityModule,
    DampedGateBenefitCoupling,
    ExpansionConfig,
    GateBenefitCoupling,
    GateModule,
    GradNormWeighting,
    LandauModule,
    NashModule,
    PolynomialModule,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    SequenceModule,
    StabilityConfig,
    System,
    apc_basis,
    module_kinds,
)
from complexity_from_constraints.events import (
    EntityRevised,
    EtaRecorded,
    GateOpened,
    MarginWarning,
    Recorded,
    RunFinished,
    RunStarted,
    StabilityBounded,
    StepCommitted,
    TermsRecorded,
    WeightsAdapted,
)
from complexity_from_constraints.projectors import package_version, relax

README = Path(__file__).resolve().parents[2] / "README.md"
VIEWS = ("v_terms_by_step", "v_entity_versions", "v_entity_energy", "v_contraction_margin", "v_weight_history",
         "v_gate_trajectory", "v_gate_redemption", "v_corrections", "v_redemption", "v_gating_metrics",
         "v_run_stats", "v_live_run_stats", "v_steps", "v_eta_steps")


@pytest.fixture
def db(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        yield store


def write_log(store: DuckDBStore, run_id: str, system: System, events: list) -> None:
    """Append RunStarted for ``system`` and then ``events``, in one batch."""
    started = RunStarted(system=system, config=RelaxConfig(), seed=0, package_version=package_version(),
                         system_digest=system.digest())
    store.append(run_id, [Recorded(run_id, seq, ev) for seq, ev in enumerate([started, *events])])


def step(k: int, energy: float = 0.0, step_size: float = 0.1, **diagnostics: float) -> StepCommitted:
    return StepCommitted(step=k, energy=energy, pg_norm=1.0, step_size=step_size, backtracks=0, accepted=True,
                         reason="initial" if k == 0 else "decrease", diagnostics=diagnostics)


def frame(k: int, *eta: float) -> EtaRecorded:
    return EtaRecorded(step=k, eta=np.array(eta))


@pytest.mark.parametrize("name", VIEWS)
def test_views_have_their_documented_columns_on_an_empty_database(db, name):
    declared = re.search(r"^-- Columns: (.*)$", view_sql()[name], flags=re.M).group(1)
    columns = [re.sub(r"\s*\(.*\)", "", c).strip() for c in declared.split(", ")]
    df = db.query(f"SELECT * FROM {name}")
    assert df.columns == columns and df.is_empty()
    assert f"`{name}`" in README.read_text()


def test_eta_steps_says_which_steps_hold_a_frame_which_repeat_one_and_which_were_not_recorded(db):
    system = System(id="t", modules=[LandauModule(id="m")])
    def rejected(k: int) -> StepCommitted:
        return StepCommitted(step=k, energy=0.0, pg_norm=1.0, step_size=0.1, backtracks=0, accepted=False,
                             reason="energy_increase")

    write_log(db, "r", system, [
        step(0), frame(0, 0.5), step(1), frame(1, 0.4), rejected(2), step(3), frame(3, 0.3),
        step(4), rejected(5), step(6), frame(6, 0.1),
    ])
    rows = db.query("SELECT step, eta, frame_step FROM v_eta_steps ORDER BY step").rows()
    assert rows == [(0, "recorded", 0), (1, "recorded", 1), (2, "unchanged", 1), (3, "recorded", 3),
                    (4, "not recorded", None), (5, "not recorded", None), (6, "recorded", 6)]


def test_eta_steps_of_a_snapshot_run_point_to_replay_for_the_steps_between_snapshots(db):
    from complexity_from_constraints.entities import SnapshotConfig, standard_system
    from complexity_from_constraints.projectors import replay

    system = standard_system(30, seed=0)
    snap = relax(system, RelaxConfig(steps=12, tol=0.0, snapshots=SnapshotConfig(every=5)), store=db)
    full = relax(system, RelaxConfig(steps=12, tol=0.0, snapshots=None), store=db)
    got = dict(db.query("SELECT step, eta FROM v_eta_steps WHERE run_id = ?", [snap.run_id]).rows())
    assert [k for k, v in sorted(got.items()) if v == "recorded"] == [0, 4, 5, 9, 10, 12]  # and the step before each
    assert {v for k, v in got.items() if k % 5 not in (0, 4) and k != 12} == {"not recorded"}
    assert set(db.query("SELECT eta FROM v_eta_steps WHERE run_id = ?", [full.run_id])["eta"]) <= {"recorded", "unchanged"}
    assert replay(db, snap.run_id, 7).eta.tobytes() == replay(db, full.run_id, 7).eta.tobytes()


# -- terms, weights, margins ------------------------------------------------------------------------

def test_terms_by_step_unpacks_energy_and_gradient_norm_per_kind(db):
    system = System(id="t", modules=[LandauModule(id="m")])
    write_log(db, "r", system, [
        step(0), TermsRecorded(step=0, energy={"landau": -0.25, "quadratic": 0.125}, grad_norm={"landau": 0.5, "quadratic": 2.0}),
        step(1), TermsRecorded(step=1, energy={"landau": -0.5}, grad_norm={"landau": 0.0, "gate": 1.5}),
    ])
    rows = db.query("SELECT step, kind, energy, grad_norm FROM v_terms_by_step ORDER BY step, kind").rows()
    assert rows == [(0, "landau", -0.25, 0.5), (0, "quadratic", 0.125, 2.0),
                    (1, "gate", None, 1.5), (1, "landau", -0.5, 0.0)]


def test_weight_history_has_one_row_per_kind_with_the_previous_weight(db):
    system = System(id="w", modules=[LandauModule(id="m")])
    write_log(db, "r", system, [
        step(0), step(1),
        WeightsAdapted(step=1, weighting="gradnorm", weights={"landau": 1.25, "quadratic": 0.5}, previous={"landau": 1.0}),
        step(2),
        WeightsAdapted(step=2, weighting="gradnorm", weights={"landau": 1.5, "quadratic": 0.5},
                       previous={"landau": 1.25, "quadratic": 0.5}),
    ])
    rows = db.query("SELECT step, weighting, kind, weight, previous FROM v_weight_history ORDER BY step, kind").rows()
    assert rows == [(1, "gradnorm", "landau", 1.25, 1.0), (1, "gradnorm", "quadratic", 0.5, None),
                    (2, "gradnorm", "landau", 1.5, 1.25), (2, "gradnorm", "quadratic", 0.5, 0.5)]


def test_contraction_margin_joins_diagnostics_warnings_and_the_lipschitz_bound(db):
    # L = 4 until step 3, then 5: margin = 2/L − α.
    system = System(id="c", modules=[LandauModule(id="m")])
    write_log(db, "r", system, [
        StabilityBounded(step=0, lipschitz=4.0, step_cap=0.45), step(0),
        step(1, step_size=0.3, margin=0.2),
        step(2, step_size=0.45, margin=0.05), MarginWarning(step=2, margin=0.05, threshold=0.1, lipschitz=4.0, step_size=0.45),
        StabilityBounded(step=3, lipschitz=5.0, step_cap=0.36), step(3, step_size=0.36, margin=0.04),
        MarginWarning(step=3, margin=0.04, threshold=0.1, lipschitz=5.0, step_size=0.36),
        step(4),  # no margin recorded (no guard on this step): no row
    ])
    rows = db.query("SELECT step, step_size, margin, warned, threshold, lipschitz FROM v_contraction_margin "
                    "WHERE run_id = 'r' ORDER BY step").rows()
    assert rows == [(1, 0.3, 0.2, False, None, 4.0), (2, 0.45, 0.05, True, 0.1, 4.0), (3, 0.36, 0.04, True, 0.1, 5.0)]
    for s, alpha, margin, *_, lipschitz in rows:
        assert margin == pytest.approx(2 / lipschitz - alpha, abs=1e-12)


def test_terms_margins_and_weights_agree_with_a_recorded_run(db, toy_system):
    config = RelaxConfig(steps=30, step_size=0.2, tol=0.0, record_terms_every=5,
                         stability=StabilityConfig(warn_margin=10.0), weighting=GradNormWeighting(every=2))
    r = relax(toy_system, config, store=db, flush_every=4)

    terms = [rec.event for rec in db.read(r.run_id, types=["TermsRecorded"])]
    expected = sorted((t.step, k, t.energy.get(k), t.grad_norm.get(k)) for t in terms for k in {*t.energy, *t.grad_norm})
    got = db.query("SELECT step, kind, energy, grad_norm FROM v_terms_by_step WHERE run_id = ? ORDER BY step, kind",
                   [r.run_id]).rows()
    assert got == expected and len(terms) >= 2

    margins = {rec.event.step: rec.event.diagnostics["margin"] for rec in db.read(r.run_id, types=["StepCommitted"])
               if "margin" in rec.event.diagnostics}
    warned = {rec.event.step for rec in db.read(r.run_id, types=["MarginWarning"])}
    rows = db.query("SELECT step, margin, warned FROM v_contraction_margin WHERE run_id = ? ORDER BY step", [r.run_id])
    assert dict(zip(rows["step"], rows["margin"])) == margins and margins
    assert {s for s, w in zip(rows["step"], rows["warned"]) if w} == warned and warned  # warn_margin 10: every step

    adapted = [rec.event for rec in db.read(r.run_id, types=["WeightsAdapted"])]
    expected_w = sorted((a.step, a.weighting, k, w, a.previous.get(k)) for a in adapted for k, w in a.weights.items())
    assert db.query("SELECT step, weighting, kind, weight, previous FROM v_weight_history WHERE run_id = ? "
                    "ORDER BY step, kind", [r.run_id]).rows() == expected_w


# -- entity energies ---------------------------------------------------------------------------------

def every_module_kind() -> System:
    return System(
        id="kinds",
        modules=[
            LandauModule(id="l", a=-1.0, b=1.2, h=0.1, eta0=0.3, weight=0.7),
            GateModule(id="g", a=0.2, b=0.3, gain=0.05),
            SequenceModule(id="s", alpha=0.5, beta=0.8, eta0=0.2),
            ConnectivityModule(id="c", alpha=0.4, beta=0.2, eta0=0.4, weight=1.5),
            NashModule.prisoners_dilemma("n", a=0.3, b=0.6),
            CompressionModule(id="z", a=1.0, b=2.0, target=0.3, eta0=0.9),
            PolynomialModule(id="p", coeffs=tuple(np.linspace(-0.3, 0.4, 13)), eta0=0.8),
            PolynomialModule(id="q", basis="apc", coeffs=(0.1, -0.2, 0.3),
                             apc_basis=tuple(map(tuple, apc_basis(np.linspace(-1.0, 1.0, 9), 3))), eta0=0.6),
        ],
        couplings=[QuadraticCoupling(id="lz", i="l", j="z", weight=0.5), QuadraticCoupling(id="sn", i="s", j="n")],
        family_weights={"landau": 1.5, "polynomial": 0.5},
    )


def python_energy(system: System, module_id: str, eta: float) -> float:
    """w_i · W_k · f_i(η) from the kind's own vectorised formula."""
    m = system.module(module_id)
    cls = type(m)
    params = {name: np.array([getattr(m, name)]) for name in cls.params}
    f = cls.energy_grad(np, np.array([eta]), params)[0][0]
    return m.weight * system.family_weights.get(m.kind, 1.0) * float(f)


def test_entity_energy_matches_every_module_kind_formula(db):
    system = every_module_kind()
    assert set(module_kinds.kinds()) <= {m.kind for m in system.modules}, "a new module kind needs a formula in v_entity_energy"
    r = relax(system, RelaxConfig(steps=12, step_size=0.05, tol=0.0), store=db, flush_every=5)
    frames = {rec.event.step: rec.event.eta for rec in db.read(r.run_id, types=["EtaRecorded"])}
    rows = db.query("SELECT step, entity_id, kind, energy, f, weight FROM v_entity_energy WHERE run_id = ?", [r.run_id])
    assert len(rows) == len(frames) * len(system.modules)
    ids = list(system.module_ids)
    for k, entity_id, kind, energy, f, weight in rows.iter_rows():
        expected = python_energy(system, entity_id, frames[k][ids.index(entity_id)])
        assert energy == pytest.approx(expected, rel=1e-12, abs=1e-14), (kind, k)
        assert kind == system.module(entity_id).kind and energy == pytest.approx(weight * f, rel=1e-15, abs=0)


def test_entity_energy_by_hand_and_summing_to_the_step_energy(db):
    # f = aη² + bη⁴ − hη at η = 0.5: −1·0.25 + 1·0.0625 − 0.1·0.5 = −0.2375; weight 2 · family weight 3.
    system = System(id="hand", modules=[LandauModule(id="m", a=-1.0, b=1.0, h=0.1, eta0=0.5, weight=2.0),
                                        CompressionModule(id="z", a=1.0, target=0.25, eta0=0.75)],
                    family_weights={"landau": 3.0})
    r = relax(system, RelaxConfig(steps=6, step_size=0.05, tol=0.0), store=db)
    at0 = dict(db.query("SELECT entity_id, energy FROM v_entity_energy WHERE run_id = ? AND step = 0", [r.run_id]).rows())
    assert at0["m"] == pytest.approx(6 * -0.2375, rel=1e-14) and at0["z"] == pytest.approx(0.25, rel=1e-14)
    # Without couplings and γ, the modules' energies add up to the recorded 𝓕 of every step.
    sums = db.query("SELECT e.step, sum(e.energy) AS total, s.energy FROM v_entity_energy AS e "
                    "JOIN v_steps AS s ON s.run_id = e.run_id AND s.step = e.step WHERE e.run_id = ? "
                    "GROUP BY e.step, s.energy ORDER BY e.step", [r.run_id])
    np.testing.assert_allclose(sums["total"].to_numpy(), sums["energy"].to_numpy(), rtol=1e-12)


def test_entity_energy_follows_revisions_and_modules_added_mid_run(db, toy_system):
    helper = LandauModule(id="helper", a=-1.0, b=1.0)
    config = RelaxConfig(
        steps=30, step_size=0.2, tol=0.0,
        revisions=[Revision(step=7, entity_id="a", changes={"a": 0.5, "h": 0.2}),
                   Revision(step=12, entity_id="toy", changes={"family_weights": {"landau": 2.0}})],
        expansion=ExpansionConfig(every=10, tau=0.0, candidates=[
            Candidate(module=helper, couplings=[QuadraticCoupling(id="q_helper", i="helper", j="a", weight=0.3)])]),
    )
    r = relax(toy_system, config, store=db, flush_every=4)
    assert db.read(r.run_id, types=["ModuleAdded"]), "the helper should be admitted"
    revised_a = toy_system.module("a").evolve(a=0.5, h=0.2)
    frames = {rec.event.step: rec.event.eta for rec in db.read(r.run_id, types=["EtaRecorded"])}
    ids = db.module_ids(r.run_id)
    rows = db.query("SELECT step, entity_id, energy FROM v_entity_energy WHERE run_id = ? ORDER BY step, entity_id",
                    [r.run_id])
    seen_helper = False
    for k, entity_id, energy in rows.iter_rows():
        modules = [*toy_system.modules, helper]
        if k >= 7:
            modules[0] = revised_a
        system = System(id="toy", modules=modules, family_weights={"landau": 2.0} if k >= 12 else {})
        expected = python_energy(system, entity_id, frames[k][ids.index(entity_id)])
        assert energy == pytest.approx(expected, rel=1e-12, abs=1e-14), (k, entity_id)
        seen_helper |= entity_id == "helper"
    assert seen_helper
    added = db.query("SELECT min(step) FROM v_entity_energy WHERE run_id = ? AND entity_id = 'helper'", [r.run_id]).item()
    assert added == db.read(r.run_id, types=["ModuleAdded"])[0].event.step
    assert len(rows) == sum(len(eta) for eta in frames.values())


# -- redemption and the expansion metrics ------------------------------------------------------------

def redemption_system() -> System:
    return System(
        id="redeem",
        modules=[LandauModule(id="m"), LandauModule(id="n"), GateModule(id="g"), GateModule(id="h"), GateModule(id="k")],
        couplings=[
            GateBenefitCoupling(id="bg", i="g", j="m", delta=0.4, weight=0.5),
            DampedGateBenefitCoupling(id="bh", i="h", j="m", delta=-0.2, damping=0.5, eta_power=2.0, negative_scale=0.5),
            GateBenefitCoupling(id="bk", i="k", j="n", delta=0.3),
        ],
        family_weights={"gate_benefit": 2.0},
    )


@pytest.fixture
def redeemed(db):
    """A hand-written run: g and h open at step 1, k never does; bg's Δ is revised to 0.5 at step 2.

    η (m, n, g, h, k): step 0 (0.30, 0.80, 0.20, 0.40, 0.10), step 1 (0.35, 0.70, 0.60, 0.55, 0.15),
    step 2 (0.50, 0.60, 0.90, 0.70, 0.20).
    """
    system = redemption_system()
    revised = system.couplings[0].evolve(delta=0.5)
    write_log(db, "r", system, [
        step(0), frame(0, 0.30, 0.80, 0.20, 0.40, 0.10),
        step(1), frame(1, 0.35, 0.70, 0.60, 0.55, 0.15),
        GateOpened(gate_id="g", step=1, eta=0.60), GateOpened(gate_id="h", step=1, eta=0.55),
        EntityRevised(step=2, entity_id="bg", version=2, changes={"delta": 0.5}, entity=revised.model_dump(mode="json")),
        step(2), frame(2, 0.50, 0.60, 0.90, 0.70, 0.20),
        RunFinished(status="max_steps", steps=2, final_energy=0.0, best_step=2, final_digest="x"),
    ])
    return db


def test_gate_redemption_by_hand(redeemed):
    # benefit = Σ w·W·φ: bg = 2·0.5·(−η_g·Δ), bh = −0.5·η_h²·0.5·(−0.2) (negative Δ, scale 0.5), bk = 2·1·(−η_k·0.3)
    #   g: start 2·0.5·(−0.2·0.4) = −0.08,  final (Δ revised to 0.5) 2·0.5·(−0.9·0.5) = −0.45  → r = 0.37
    #   h: start 0.05·0.16 = 0.008,         final 0.05·0.49 = 0.0245                          → r = −0.0165
    #   k: start 2·(−0.1·0.3) = −0.06,      final 2·(−0.2·0.3) = −0.12                        → r = 0.06
    rows = {row[0]: row[1:] for row in redeemed.query(
        "SELECT gate_id, opened, opened_step, final_step, benefit_start, benefit_final, redemption "
        "FROM v_gate_redemption").iter_rows()}
    assert rows == {
        "g": (True, 1, 2, pytest.approx(-0.08), pytest.approx(-0.45), pytest.approx(0.37)),
        "h": (True, 1, 2, pytest.approx(0.008), pytest.approx(0.0245), pytest.approx(-0.0165)),
        "k": (False, None, 2, pytest.approx(-0.06), pytest.approx(-0.12), pytest.approx(0.06)),
    }


def test_redemption_and_corrections_by_hand(redeemed):
    row = redeemed.query("SELECT * FROM v_redemption").row(0, named=True)
    assert row == {"run_id": "r", "final_step": 2, "benefit_start": pytest.approx(-0.132),
                   "benefit_final": pytest.approx(-0.5455), "redemption": pytest.approx(0.4135),
                   "gates_opened": 2, "corrected_modules": 1, "corrected": ["m"]}
    # m rose from 0.35 (step 1, when g and h opened) to 0.50; n fell; gates are not "corrected".
    rows = redeemed.query("SELECT gate_id, opened_step, entity_id, eta_at_open, final_step, eta_final, correction "
                          "FROM v_corrections ORDER BY gate_id").rows()
    assert rows == [("g", 1, "m", 0.35, 2, 0.5, pytest.approx(0.15)), ("h", 1, "m", 0.35, 2, 0.5, pytest.approx(0.15))]


def test_expansion_metrics_follow_the_reference_definition(redeemed):
    # expansions = opened gates (g, h) = 2; Σ max(r, 0) = 0.37 + 0.06 (k counts though it never opened);
    # good = opened with r > 0 (g), bad = opened with r ≤ 0 (h).
    row = redeemed.query("SELECT * FROM v_gating_metrics").row(0, named=True)
    assert row == {"run_id": "r", "gates": 3, "opened": 2, "closed": 0, "open_at_end": 2,
                   "hazard_mean": pytest.approx((-math.log(0.4) - math.log(0.45)) / 2),
                   "expansions": 2, "redemption_positive": pytest.approx(0.43), "mu_hat": pytest.approx(2 / 0.43),
                   "good": 1, "bad": 1, "good_bad_ratio": 1.0}


def test_expansion_metrics_are_null_without_a_denominator(db):
    # One gate, open from step 0 with no benefit edge: an expansion that redeemed nothing (bad, r = 0).
    system = System(id="open", modules=[GateModule(id="g", gain=1.0, measurement="straight_through", a=0.0, b=0.0),
                                        LandauModule(id="m")])
    r = relax(system, RelaxConfig(steps=3), store=db)
    row = db.query("SELECT expansions, redemption_positive, mu_hat, good, bad, good_bad_ratio FROM v_gating_metrics "
                   "WHERE run_id = ?", [r.run_id]).row(0)
    assert row == (1, 0.0, None, 0, 1, 0.0)
    plain = relax(System(id="plain", modules=[LandauModule(id="m")]), RelaxConfig(steps=2), store=db)
    assert db.query("SELECT expansions, mu_hat, good_bad_ratio FROM v_gating_metrics WHERE run_id = ?",
                    [plain.run_id]).row(0) == (0, None, None)
    assert db.query("SELECT redemption, corrected FROM v_redemption WHERE run_id = ?", [plain.run_id]).row(0) == (0.0, [])


def test_gate_trajectory_has_every_gate_at_every_recorded_step(redeemed):
    rows = redeemed.query("SELECT step, gate_id, eta, hazard, is_open FROM v_gate_trajectory ORDER BY step, gate_id").rows()
    etas = {0: (0.20, 0.40, 0.10), 1: (0.60, 0.55, 0.15), 2: (0.90, 0.70, 0.20)}
    expected = [(k, g, e, pytest.approx(-math.log(1 - e)), e >= 0.5)
                for k, values in etas.items() for g, e in zip("ghk", values)]
    assert rows == expected


def test_redemption_of_the_demo_agrees_with_the_benefit_formula(db):
    from complexity_from_constraints.entities import demo_system

    system = demo_system(0)
    r = relax(system, RelaxConfig(steps=80, step_size=0.5, line_search="armijo"), store=db)
    final = db.latest_eta(r.run_id, 10**9).eta
    start = db.latest_eta(r.run_id, 0).eta
    gate = system.module_ids.index("repair")
    expected = -start[gate] * 0.3 - (-final[gate] * 0.3)  # the wormhole edge, Δ = 0.3, weight 1
    row = db.query("SELECT redemption, gates_opened FROM v_redemption WHERE run_id = ?", [r.run_id]).row(0)
    assert row == (pytest.approx(expected, rel=1e-12), 1) and expected > 0
