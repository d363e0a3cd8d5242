"""Snapshot mode: η every k steps plus the loop's state; every step still replays bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    Candidate,
    ExpansionConfig,
    GradNormWeighting,
    HomotopyConfig,
    LandauModule,
    NoiseConfig,
    NoiseControllerConfig,
    QuadraticCoupling,
    RelaxConfig,
    ReplayMismatchError,
    SnapshotConfig,
    StabilityConfig,
    standard_system,
)
from complexity_from_constraints.events import EtaRecorded, InMemoryStore, LoopSnapshotted
from complexity_from_constraints.projectors import diff_runs, fork, relax, replay, rerun
from complexity_from_constraints.projectors import _resume

SOLVERS = ("projected_gradient", "accelerated", "coordinate", "proximal", "adaptive", "admm")


def _config(solver: str, snapshots, steps: int = 25) -> RelaxConfig:
    """Every stateful piece at once: noise with its controller, a weighting, a homotopy ramp, a stability cap."""
    return RelaxConfig(solver=solver, steps=steps, step_size=0.2, tol=0.0, snapshots=snapshots,
                       noise=NoiseConfig(magnitude=0.02, controller=NoiseControllerConfig()),
                       weighting=GradNormWeighting(every=3), homotopy=HomotopyConfig(steps=12, coupling_start=0.3),
                       stability=StabilityConfig())


def _without_eta(store, run_id):
    return [r.event for r in store.read(run_id) if r.event.type not in ("RunStarted", "EtaRecorded", "LoopSnapshotted")]


@pytest.fixture
def resumed(monkeypatch):
    """The steps replay re-ran from: a snapshot's step, or None when it re-ran from the start."""
    starts: list[int | None] = []
    real = _resume.relaxation

    def spy(*args, resume=None, **kwargs):
        starts.append(None if resume is None else resume[0]["step"])
        return real(*args, resume=resume, **kwargs)

    monkeypatch.setattr(_resume, "relaxation", spy)
    return starts


@pytest.mark.parametrize("every", [1, 3, 10])
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_step_replays_bit_for_bit_as_when_every_step_is_recorded(solver, every, resumed):
    store = InMemoryStore()
    system = standard_system(30, seed=2)
    full = relax(system, _config(solver, None), seed=5, store=store)
    snap = relax(system, _config(solver, SnapshotConfig(every=every)), seed=5, store=store)
    assert _without_eta(store, full.run_id) == _without_eta(store, snap.run_id)  # the same run, recorded otherwise
    snapshots = [r.event for r in store.read(snap.run_id, types=["LoopSnapshotted"])]
    assert [s.step for s in snapshots] == list(range(0, snap.steps + 1, every))
    assert all(s.blocked_by is None for s in snapshots)
    frames = [r.event.step for r in store.read(snap.run_id, types=["EtaRecorded"])]
    assert frames == [k for k in range(snap.steps + 1) if k % every in (0, every - 1) or k == snap.steps]
    for step in range(snap.steps + 1):
        want, got = replay(store, full.run_id, step), replay(store, snap.run_id, step)
        assert got.eta.tobytes() == want.eta.tobytes(), f"step {step}"
        assert (got.energy, got.open_gates, got.accepted_steps) == (want.energy, want.open_gates, want.accepted_steps)
    # Steps without a frame were re-run from the snapshot just before them, never from the start (k = 1: none).
    assert all(s is not None for s in resumed) and bool(resumed) == (every > 1)
    assert replay(store, snap.run_id).eta.tobytes() == snap.eta.tobytes()


def test_a_snapshot_mode_run_replays_and_reruns_in_every_store(store):
    system = standard_system(40, seed=1)
    r = relax(system, _config("accelerated", SnapshotConfig(every=4), steps=30), seed=3, store=store, flush_every=5)
    live: dict[int, np.ndarray] = {}
    relax(system, _config("accelerated", None, steps=30), seed=3, store=store,
          hooks={"eta_recorded": lambda run_id, event, seq: live.__setitem__(event.step, event.eta.copy())})
    current = None
    for step in range(r.steps + 1):
        current = live.get(step, current)
        assert replay(store, r.run_id, step).eta.tobytes() == current.tobytes(), f"step {step}"
    again = rerun(store, r.run_id)
    a, b = store.read(r.run_id), store.read(again.run_id)
    assert len(a) == len(b) and all(x.event == y.event for x, y in zip(a, b))


@pytest.mark.parametrize("case", ["lbfgsb", "expansion", "weighting object"])
def test_a_loop_that_cannot_resume_mid_run_replays_from_its_start(case, resumed):
    system = standard_system(20, seed=0)
    kwargs = {}
    config = RelaxConfig(steps=23, tol=0.0, snapshots=SnapshotConfig(every=5))
    if case == "lbfgsb":
        config, blocker = config.evolve(solver="lbfgsb"), "solver 'lbfgsb'"
    elif case == "expansion":
        extra = Candidate(module=LandauModule(id="new", a=-0.8), couplings=[QuadraticCoupling(id="q-new", i="m0", j="new")])
        config, blocker = config.evolve(expansion=ExpansionConfig(every=4, tau=0.0, candidates=(extra,))), "Restructure"
    else:
        from complexity_from_constraints.projectors import AbstractWeighting

        class Nudge(AbstractWeighting):
            name, every = "nudge", 4

            def adapt(self, ctx):
                return {"landau": ctx.weights["landau"] * 1.01}

        kwargs, blocker = {"weighting": Nudge()}, "WeightAdaptation"
    store = InMemoryStore()
    full = relax(system, config.evolve(snapshots=None), store=store, **kwargs)
    snap = relax(system, config, store=store, **kwargs)
    snapshots = [r.event for r in store.read(snap.run_id, types=["LoopSnapshotted"])]
    assert snapshots and all(s.blocked_by == blocker and s.state == "" for s in snapshots)
    steps = [7, 13] if case != "weighting object" else []
    for step in steps:
        assert replay(store, snap.run_id, step).eta.tobytes() == replay(store, full.run_id, step).eta.tobytes()
    assert resumed == [None] * len(steps)
    if case == "weighting object":  # its code is not in the log: a re-run without it differs, and replay says so
        with pytest.raises(ReplayMismatchError, match="re-running the loop from its snapshot"):
            replay(store, snap.run_id, 8)


def test_a_snapshot_that_does_not_reproduce_the_log_raises(monkeypatch):
    store = InMemoryStore()
    r = relax(standard_system(20, seed=0), RelaxConfig(steps=20, tol=0.0, snapshots=SnapshotConfig(every=5)), store=store)
    real = _resume.decode_state

    def tampered(text):
        state = real(text)
        state["solver"]["alpha"] *= 3  # the step size the solver would have gone on with
        return state

    monkeypatch.setattr(_resume, "decode_state", tampered)
    assert replay(store, r.run_id, 10).step == 10  # recorded: no re-run
    with pytest.raises(ReplayMismatchError, match="step 1[1-3]"):
        replay(store, r.run_id, 13)


def test_auto_records_every_step_for_small_systems_and_snapshots_for_large_ones(monkeypatch):
    from complexity_from_constraints.entities import _config

    store = InMemoryStore()
    small = relax(standard_system(20, seed=0), RelaxConfig(steps=5), store=store)
    assert store.read(small.run_id, types=["RunStarted"])[0].event.config.snapshots is None
    monkeypatch.setattr(_config, "SNAPSHOT_MIN_MODULES", 20)  # as if 20 modules were many
    large = relax(standard_system(20, seed=0), RelaxConfig(steps=25, tol=0.0), store=store)
    assert store.read(large.run_id, types=["RunStarted"])[0].event.config.snapshots == SnapshotConfig(every=10)
    assert [r.event.step for r in store.read(large.run_id, types=["EtaRecorded"])] == [0, 9, 10, 19, 20, 25]
    monkeypatch.undo()  # the recorded choice, not today's rule, decides how a re-run records
    again = rerun(store, large.run_id)
    assert all(x.event == y.event for x, y in zip(store.read(large.run_id), store.read(again.run_id), strict=True))


def test_diff_compares_a_snapshot_run_where_both_runs_know_eta():
    store = InMemoryStore()
    system = standard_system(30, seed=4)
    config = RelaxConfig(steps=30, tol=0.0, snapshots=SnapshotConfig(every=7))
    a = relax(system, config, store=store).run_id
    b = relax(system, config.evolve(snapshots=None), store=store).run_id
    same = diff_runs(store, a, b)
    assert same.first_divergence is None and same.first_energy_difference is None
    assert same.config["snapshots.every"] == (7, None)
    c = relax(system, config.evolve(step_size=0.06), store=store).run_id
    d = diff_runs(store, b, c)
    assert d.first_energy_difference == 1 and d.first_divergence == 6  # the first step whose η both recorded (before the snapshot at 7)
    assert diff_runs(store, b, relax(system, config.evolve(step_size=0.06, snapshots=None), store=store).run_id
                     ).first_divergence == 1


def test_a_fork_of_a_snapshot_run_leaves_from_the_replayed_state():
    store = InMemoryStore()
    system = standard_system(25, seed=3)
    config = RelaxConfig(steps=20, tol=0.0, solver="accelerated")
    snap = relax(system, config.evolve(snapshots=SnapshotConfig(every=6)), store=store)
    full = relax(system, config.evolve(snapshots=None), store=store)
    f_snap = fork(store, snap.run_id, 9, {"step_size": 0.1})
    f_full = fork(store, full.run_id, 9, {"step_size": 0.1})
    assert f_snap.eta.tobytes() == f_full.eta.tobytes()
    for step in (5, 9, 10, 13, 20):  # before the fork (the parent's), at it, and the fork's own steps
        assert replay(store, f_snap.run_id, step).eta.tobytes() == replay(store, f_full.run_id, step).eta.tobytes()


def test_the_snapshot_state_round_trips_exactly():
    from complexity_from_constraints.projectors._snapshot import decode_state, encode_state

    rng = np.random.default_rng(0)
    value = {"x": rng.standard_normal(5), "i": np.arange(3, dtype=np.int32), "mask": np.array([True, False]),
             "inf": float("inf"), "tiny": 5e-324, "big": 2**127 + 1, "none": None, "rng": rng.bit_generator.state}
    back = decode_state(encode_state(value))
    assert back["x"].tobytes() == value["x"].tobytes() and back["i"].dtype == np.int32 and back["mask"].dtype == bool
    assert back["inf"] == float("inf") and back["tiny"] == 5e-324 and back["big"] == 2**127 + 1
    assert back["rng"] == value["rng"] and back["none"] is None
    assert isinstance(LoopSnapshotted(step=0, state=encode_state(value)), LoopSnapshotted)
    assert EtaRecorded(0, back["x"]).eta.tobytes() == value["x"].tobytes()


@pytest.mark.parametrize("previous", [True, False])
def test_a_snapshot_refers_to_the_frame_before_it_instead_of_holding_the_previous_iterate(previous):
    store = InMemoryStore()
    system = standard_system(500, seed=2)
    full = relax(system, _config("accelerated", None), seed=5, store=store)
    snap = relax(system, _config("accelerated", SnapshotConfig(every=5, previous=previous)), seed=5, store=store)
    held = {r.event.step: json.loads(r.event.state)["solver"]["previous"]
            for r in store.read(snap.run_id, types=["LoopSnapshotted"]) if r.event.step}
    assert held and all((v == {"__frame__": k - 1}) if previous else ("__ndarray__" in v) for k, v in held.items())
    frames = {r.event.step for r in store.read(snap.run_id, types=["EtaRecorded"])}
    assert {4, 9}.issubset(frames) == previous
    for step in (6, 12):
        assert replay(store, snap.run_id, step).eta.tobytes() == replay(store, full.run_id, step).eta.tobytes()


def test_a_snapshot_whose_referenced_frame_is_missing_raises(monkeypatch):
    store = InMemoryStore()
    r = relax(standard_system(30, seed=0), _config("accelerated", SnapshotConfig(every=5)), seed=1, store=store)
    real = store.latest_eta
    monkeypatch.setattr(store, "latest_eta", lambda run_id, step: None if step == 9 else real(run_id, step))
    with pytest.raises(ReplayMismatchError, match="step 9 the snapshot refers to"):
        replay(store, r.run_id, 12)
