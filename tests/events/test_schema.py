"""Event schema versions: round trips, upcasting old payloads, refusing future ones."""

from __future__ import annotations

import json

import pytest

from complexity_from_constraints.entities import SchemaVersionError
from complexity_from_constraints.events import GateOpened, StepCommitted, decode, encode, register_upcaster, upcast
from complexity_from_constraints.events import _types


def test_events_round_trip_through_their_payload():
    ev = StepCommitted(step=3, energy=-1.25, pg_norm=0.5, step_size=0.1, backtracks=2, accepted=False,
                       reason="energy_increase", trial_energy=-1.0)
    assert decode("StepCommitted", 1, encode(ev)) == ev


def test_events_are_frozen():
    ev = GateOpened(gate_id="g", step=1, eta=0.7)
    with pytest.raises(Exception):
        ev.eta = 0.1  # type: ignore[misc]


def test_a_future_schema_version_fails_loudly():
    payload = encode(GateOpened(gate_id="g", step=1, eta=0.7))
    with pytest.raises(SchemaVersionError, match="newer"):
        decode("GateOpened", 2, payload)
    with pytest.raises(SchemaVersionError, match="unknown event type"):
        decode("GateExploded", 1, payload)


def test_old_payloads_pass_through_their_upcasters(monkeypatch):
    # Pretend GateOpened is at version 3: v1 called the field "gate", v2 stored η in percent.
    monkeypatch.setattr(GateOpened, "schema_version", 3)
    monkeypatch.setattr(_types, "_UPCASTERS", dict(_types._UPCASTERS))

    @register_upcaster("GateOpened", 1)
    def rename(p):
        p["gate_id"] = p.pop("gate")
        return p

    @register_upcaster("GateOpened", 2)
    def percent(p):
        p["eta"] = p["eta"] / 100
        return p

    v1 = {"type": "GateOpened", "gate": "g", "step": 4, "eta": 70.0}
    assert decode("GateOpened", 1, json.dumps(v1)) == GateOpened(gate_id="g", step=4, eta=0.7)
    assert upcast("GateOpened", 3, {"x": 1}) == {"x": 1}


def test_a_missing_upcaster_is_an_error(monkeypatch):
    monkeypatch.setattr(GateOpened, "schema_version", 2)
    monkeypatch.setattr(_types, "_UPCASTERS", {})
    with pytest.raises(SchemaVersionError, match="no upcaster"):
        decode("GateOpened", 1, encode(GateOpened(gate_id="g", step=1, eta=0.7)))


def test_payloads_from_before_weightings_were_named_so_still_read():
    """Weight "adapters" became "weightings": old RunStarted configs and WeightsAdapted payloads upcast."""
    from complexity_from_constraints.entities import GradNormWeighting, RelaxConfig, demo_system
    from complexity_from_constraints.events import RunStarted, WeightsAdapted, decode

    started = RunStarted(system=demo_system(0), config=RelaxConfig(weighting=GradNormWeighting(every=3), snapshots=None),
                         seed=0, package_version="x", system_digest="d")
    old = started.model_dump(mode="json")
    old["config"]["adapter"] = old["config"].pop("weighting")
    del old["config"]["snapshots"]  # from before snapshot mode
    assert decode("RunStarted", 2, old) == started
    adapted = decode("WeightsAdapted", 1, {"step": 4, "adapter": "gradnorm", "weights": {"landau": 1.5},
                                           "previous": {"landau": 1.0}})
    assert isinstance(adapted, WeightsAdapted) and adapted.weighting == "gradnorm"


def test_runs_recorded_before_the_local_relaxation_stop_spend_every_local_step():
    """RunStarted v3 has no ``expansion.local_tol``: it upcasts to 0, which spends the cap as those runs did."""
    from complexity_from_constraints.entities import ExpansionConfig, RelaxConfig, demo_system
    from complexity_from_constraints.events import RunStarted, decode

    started = RunStarted(system=demo_system(0), config=RelaxConfig(expansion=ExpansionConfig(local_steps=50, local_tol=0.0), snapshots=None),
                         seed=0, package_version="x", system_digest="d")
    old = started.model_dump(mode="json")
    del old["config"]["expansion"]["local_tol"]
    assert decode("RunStarted", 3, old) == started
    plain = RunStarted(system=demo_system(0), config=RelaxConfig(snapshots=None), seed=0, package_version="x", system_digest="d")
    assert decode("RunStarted", 3, plain.model_dump(mode="json")) == plain


def test_runs_from_before_snapshot_mode_read_as_recording_every_step():
    """A RunStarted of schema 3 or 4 has no ``snapshots``: it recorded η at every step, whatever today's default says."""
    from complexity_from_constraints.entities import RelaxConfig, demo_system
    from complexity_from_constraints.events import RunStarted, decode

    old = RunStarted(system=demo_system(0), config=RelaxConfig(steps=7), seed=0, package_version="x",
                     system_digest="d").model_dump(mode="json")
    del old["config"]["snapshots"]
    assert old["config"] and decode("RunStarted", 3, old).config.snapshots is None
    assert decode("RunStarted", 4, old).config.snapshots is None
    assert decode("RunStarted", 5, old).config.snapshots == "auto"  # a current payload keeps what it says


def test_snapshot_runs_from_before_frame_references_re_run_as_they_were_recorded():
    """A schema-5 snapshot run embedded the previous iterate and recorded no frame before a snapshot."""
    from complexity_from_constraints.entities import RelaxConfig, SnapshotConfig, demo_system
    from complexity_from_constraints.events import RunStarted, decode

    payload = RunStarted(system=demo_system(0), config=RelaxConfig(snapshots=SnapshotConfig(every=4)), seed=0,
                         package_version="x", system_digest="d").model_dump(mode="json")
    del payload["config"]["snapshots"]["previous"]
    assert decode("RunStarted", 5, payload).config.snapshots == SnapshotConfig(every=4, previous=False)
    assert decode("RunStarted", 6, payload).config.snapshots == SnapshotConfig(every=4, previous=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("field", ["energy", "pg_norm", "step_size", "trial_energy", "diagnostics.margin"])
def test_a_step_names_its_non_finite_number_as_the_walk_does(field, bad):
    good = StepCommitted(step=2, energy=1.0, pg_norm=0.5, step_size=0.1, backtracks=1, accepted=True, reason="armijo",
                         trial_energy=0.9, diagnostics={"margin": 0.2, "spread": 3.0})
    assert _types.non_finite_field(good) is None and _types.finite_step(good)
    update = {"diagnostics": {"spread": 3.0, "margin": bad}} if field.startswith("diagnostics") else {field: bad}
    step = StepCommitted.model_validate(good.model_dump() | update)
    assert not _types.finite_step(step)
    assert _types.non_finite_field(step) == field
    walked = _types._non_finite(step)
    assert ".".join(reversed(walked)) == field  # the direct check and the generic walk agree


def test_a_step_built_without_validation_falls_back_to_the_walk():
    fields = dict(step=0, energy="x", pg_norm=0.0, step_size=0.1, backtracks=0, accepted=True, reason="initial",
                  trial_energy=None, diagnostics={})
    step = StepCommitted.model_construct(**fields)
    assert not _types.finite_step(step) and _types.non_finite_field(step) is None  # a string holds no NaN
    assert _types.non_finite_field(StepCommitted.model_construct(**fields | {"pg_norm": float("nan")})) == "pg_norm"


def test_an_eta_frame_is_finite_exactly_when_every_value_is():
    import numpy as np

    from complexity_from_constraints.events import EtaRecorded

    assert _types.non_finite_field(EtaRecorded(1, np.array([1e308, 1e308, 0.5]))) is None
    for bad, where in ((np.nan, "eta[2]"), (np.inf, "eta[2]"), (-np.inf, "eta[2]")):
        eta = np.array([0.25, 0.5, bad, 0.75, np.nan])
        assert _types.non_finite_field(EtaRecorded(1, eta)) == where
    assert _types.non_finite_field(EtaRecorded(1, np.array([np.inf, -np.inf]))) == "eta[0]"
    assert _types.non_finite_field(EtaRecorded(1, np.zeros(0))) is None
