"""One suite for every piece of the loop: built only when configured, and never acting silently.

Each control of :class:`RelaxConfig` is listed once in ``CONTROLS``; every
check runs over all of them. A piece "acts" when a hook changes the run (its
System, state, weights, objective, mask, step cap, slack or stop) or replaces
the solver's proposal; it must then say so in the same step: an event, a named
``diagnostics`` entry, or a stop status that ``RunFinished`` records. Changes
made by ``start`` are the config's own (recorded in ``RunStarted``), and the
end of a warm start's active set was announced by ``WarmStartProposed``
(``active_steps``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    AgmPhaseWeighting,
    AutoBalanceWeighting,
    Candidate,
    DiagnosticsConfig,
    EarlyStopConfig,
    ExpansionConfig,
    FreeEnergyConfig,
    GradNormWeighting,
    HomotopyConfig,
    LandauModule,
    NoiseConfig,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    SmallGainWeighting,
    StabilityConfig,
    WarmStart,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import _coordinator, compile_system, relax
from complexity_from_constraints.projectors._controls import (
    FreeEnergy,
    HomotopyRamp,
    NoiseInjection,
    Restructure,
    StabilityGuard,
    WarmStartMask,
    WeightAdaptation,
)
from complexity_from_constraints.projectors._loop import AbstractPiece, Run, Step, Weights
from complexity_from_constraints.projectors._observers import (
    CheckMonotone,
    RecordState,
    RecordTerms,
    StopAtFloor,
    StopEarly,
    WatchDiagnostics,
)
from complexity_from_constraints.projectors._solvers import State

SYSTEM = standard_system(12, seed=3)
HELPER = Candidate(module=LandauModule(id="helper", a=-1.0, b=1.0, eta0=0.3),
                   couplings=(QuadraticCoupling(id="qh", i="helper", j="m0", weight=0.5),))

# control name → (config fields, the piece it builds, run settings under which it acts)
CONTROLS = {
    "warm_start": ({"warm_start": WarmStart(source="t", eta0=(0.5,) * 12, active=("m0", "m3"), active_steps=4)}, WarmStartMask),
    "revisions": ({"revisions": (Revision(step=3, entity_id="m2", changes={"a": -0.8}),)}, Restructure),
    "expansion": ({"expansion": ExpansionConfig(every=4, candidates=(HELPER,))}, Restructure),
    "homotopy": ({"homotopy": HomotopyConfig(steps=8, coupling_start=0.1)}, HomotopyRamp),
    "homotopy-backoff": ({"step_size": 3.0, "homotopy": HomotopyConfig(steps=15, coupling_start=0.5, min_start=0.2)}, HomotopyRamp),
    "noise": ({"noise": NoiseConfig(magnitude=0.05)}, NoiseInjection),
    "free_energy": ({"free_energy": FreeEnergyConfig(temperature=0.05, epsilon=1e-4)}, FreeEnergy),
    "stability": ({"step_size": 2.0, "stability": StabilityConfig(warn_margin=10.0, coupling_target=24.0)}, StabilityGuard),
    "monotone": ({"monotone": "strict"}, CheckMonotone),
    "diagnostics": ({"noise": NoiseConfig(magnitude=0.05, decay=1.0), "diagnostics": DiagnosticsConfig(
        escape_noise_min=1e-9, escape_displacement_min=0.0, escape_cosine_max=1.0, escape_drop_min=0.0)}, WatchDiagnostics),
    "record_terms_every": ({"record_terms_every": 3}, RecordTerms),
    "early_stop": ({"steps": 200, "early_stop": EarlyStopConfig(patience=3, delta=1e-4)}, StopEarly),
    "auto_balance": ({"weighting": AutoBalanceWeighting(target=0.1, max_ratio=2.0)}, WeightAdaptation),
    "gradnorm": ({"weighting": GradNormWeighting()}, WeightAdaptation),
    "agm_phase": ({"weighting": AgmPhaseWeighting(history=4)}, WeightAdaptation),
    "small_gain": ({"step_size": 0.02, "weighting": SmallGainWeighting(max_step_change=0.3)}, WeightAdaptation),
}


def _config(fields) -> RelaxConfig:
    return RelaxConfig(**({"steps": 25, "step_size": 0.1} | fields))


ALWAYS = {RecordState, StopAtFloor}


def test_only_the_always_on_pieces_are_built_when_nothing_is_configured():
    assert {type(p) for p in _coordinator.pieces_for(compile_system(SYSTEM), RelaxConfig(), 0)} == ALWAYS
    # a solver with inner state progresses while its objective stays put: no floor for it
    assert {type(p) for p in _coordinator.pieces_for(compile_system(SYSTEM), RelaxConfig(solver="admm"), 0)} == {RecordState}


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_a_configured_control_builds_its_piece_and_nothing_else(name):
    fields, piece = CONTROLS[name]
    built = {type(p) for p in _coordinator.pieces_for(compile_system(SYSTEM), _config(fields), 0)} - ALWAYS
    side = {NoiseInjection} if name == "diagnostics" else set()  # the escape case needs noise too
    assert built == {piece} | side


def _snapshot(run: Run):
    w = run.weights
    return (id(run.cs), id(run.state), id(run.objective), dict(w.weights), dict(w.ramp), w.cap, w.temperature,
            id(run.mask), run.cap, run.slack, run.stop, run.changed)


class _Spy(AbstractPiece):
    """Runs one piece's hooks and notes, per step, whether it acted and whether it said so."""

    def __init__(self, piece, log):
        self.piece, self.log = piece, log

    def _call(self, hook, run, *args, diagnostics=None):
        before = _snapshot(run)
        keys = set(diagnostics) if diagnostics is not None else set()
        events = list(getattr(self.piece, hook)(run, *args))
        acted = _snapshot(run) != before
        said = bool(events) or (diagnostics is not None and set(diagnostics) != keys) or run.stop is not None
        self.log.append((hook, run.step, acted, said))
        return events

    def start(self, run):
        return self._call("start", run)

    def before(self, run):
        return self._call("before", run)

    def reframe(self, run):
        return self._call("reframe", run)

    def judge(self, run, step):
        return self._call("judge", run, step, diagnostics=step.diagnostics)

    def after(self, run, step):
        return self._call("after", run, step)

    def adjust(self, run, ctx, proposal):
        new = self.piece.adjust(run, ctx, proposal)
        self.log.append(("adjust", run.step, new is not proposal, None))
        return new

    def holds(self, run):
        return self.piece.holds(run)


def _spied_run(name, monkeypatch):
    fields, piece_type = CONTROLS[name]
    log: list = []
    build = _coordinator.pieces_for

    def spied(*args, **kwargs):
        return [_Spy(p, log) if isinstance(p, piece_type) else p for p in build(*args, **kwargs)]

    monkeypatch.setattr(_coordinator, "pieces_for", spied)
    store = InMemoryStore()
    result = relax(SYSTEM, _config(fields), seed=1, store=store)
    return log, [rec.event for rec in store.read(result.run_id)]


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_every_piece_that_acts_says_so_in_the_same_step(name, monkeypatch):
    log, events = _spied_run(name, monkeypatch)
    if name != "monotone":  # the monotone check acts only by raising (see test_pieces)
        assert any(acted or said for hook, _, acted, said in log if hook != "start"), f"{name}: the piece never acted"
    replaced = {step for hook, step, acted, _ in log if hook == "adjust" and acted}
    said_at = {step for hook, step, _, said in log if said}
    for hook, step, acted, said in log:
        if hook == "start" or not acted or (name == "warm_start" and hook == "before"):
            continue
        assert said or step in said_at, f"{name}: {hook} at step {step} changed the run and recorded nothing"
    assert replaced <= said_at, f"{name}: a replaced proposal left no trace at steps {sorted(replaced - said_at)}"


def _initial_run(config: RelaxConfig) -> Run:
    """A run at its initial state, as the loop hands it to the pieces (state in)."""
    cs = compile_system(SYSTEM)
    run = Run(config, cs, Weights(cs), step=0, start_step=0)
    run.objective = run.weights.build(cs)
    eta = np.array([m.initial_eta() for m in SYSTEM.modules])
    run.state = State.at(run.objective, eta)
    run.host, run.pg = eta, 1.0
    return run


def test_a_piece_is_state_in_events_out():
    run = _initial_run(RelaxConfig())
    stop = StopEarly(patience=2, delta=1.0)
    step = Step(1, proposal=None, accepted=True, stalled=False, previous=run.state)
    assert list(stop.after(run, step)) == [] and run.stop is None  # the initial state is not a calm step
    guard = StabilityGuard(0.5, None, None)
    bounded = list(guard.reframe(run))
    assert [e.type for e in bounded] == ["StabilityBounded"] and run.cap == bounded[0].step_cap
    assert math.isclose(run.cap, 0.5 * 2 / bounded[0].lipschitz)
    recorded = list(RecordState().after(run, step))
    assert [e.type for e in recorded] == ["EtaRecorded"] and np.array_equal(recorded[0].eta, run.host)
