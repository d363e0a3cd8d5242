"""One contract suite, run against every event-store implementation (see the ``store`` fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import LogIntegrityError, RelaxConfig, UnknownRunError
from complexity_from_constraints.events import EtaRecorded, GateOpened, Recorded, RunFinished, RunStarted, StepCommitted
from complexity_from_constraints.projectors import package_version, relax


def _started(system) -> RunStarted:
    return RunStarted(system=system, config=RelaxConfig(), seed=0, package_version=package_version(),
                      system_digest=system.digest())


def _step(k: int) -> StepCommitted:
    return StepCommitted(step=k, energy=-float(k), pg_norm=1.0, step_size=0.1, backtracks=0, accepted=True, reason="decrease")


def test_a_run_is_read_back_exactly_in_seq_order(store, toy_system):
    run = "r-1"
    eta = np.array([0.1, 0.2, 0.3, 0.4])
    batch = [Recorded(run, 0, _started(toy_system)), Recorded(run, 1, _step(0)), Recorded(run, 2, EtaRecorded(0, eta)),
             Recorded(run, 3, GateOpened(gate_id="gate", step=0, eta=0.6))]
    store.append(run, batch)
    store.append(run, [Recorded(run, 4, _step(1)), Recorded(run, 5, EtaRecorded(1, eta / 2))])
    back = store.read(run)
    assert [r.seq for r in back] == list(range(6))
    assert [r.event for r in back] == [r.event for r in batch] + [_step(1), EtaRecorded(1, eta / 2)]
    assert back[0].event_id == "r-1/0"
    assert store.next_seq(run) == 6
    assert store.module_ids(run) == ("a", "b", "c", "gate")
    assert store.latest_eta(run, 0).eta.tolist() == eta.tolist()
    assert store.latest_eta(run, 7).eta.tolist() == (eta / 2).tolist()
    assert [r.seq for r in store.read(run, until_step=0)] == [0, 1, 2, 3]
    assert [r.event.type for r in store.read(run, types=["StepCommitted"])] == ["StepCommitted"] * 2
    assert not store.is_complete(run)
    (info,) = store.runs()
    assert (info.run_id, info.system_id, info.n_modules, info.complete) == (run, "toy", 4, False)


@pytest.mark.parametrize("case", ["gap", "duplicate", "no_run_started", "foreign_run", "second_run_started"])
def test_append_refuses_anything_but_a_gap_free_extension(store, toy_system, case):
    run = "r-1"
    store.append(run, [Recorded(run, 0, _started(toy_system)), Recorded(run, 1, _step(0))])
    bad = {
        "gap": [Recorded(run, 3, _step(1))],
        "duplicate": [Recorded(run, 1, _step(1))],
        "foreign_run": [Recorded("other", 2, _step(1))],
        "second_run_started": [Recorded(run, 2, _started(toy_system))],
    }.get(case)
    if case == "no_run_started":
        with pytest.raises(LogIntegrityError):
            store.append("fresh", [Recorded("fresh", 0, _step(0))])
        assert "fresh" not in {i.run_id for i in store.runs()}
        return
    with pytest.raises(LogIntegrityError):
        store.append(run, bad)
    assert [r.seq for r in store.read(run)] == [0, 1]  # nothing of the refused batch was kept


def test_a_finished_run_is_closed(store, toy_system):
    r = relax(toy_system, RelaxConfig(steps=3), store=store)
    assert store.is_complete(r.run_id)
    seq = store.next_seq(r.run_id)
    with pytest.raises(LogIntegrityError, match="finished"):
        store.append(r.run_id, [Recorded(r.run_id, seq, _step(99))])


def test_unknown_runs_raise(store):
    with pytest.raises(UnknownRunError):
        store.read("nope-1")
    with pytest.raises(UnknownRunError):
        store.module_ids("nope-1")


def test_run_ids_are_deterministic_and_unique(store, toy_system):
    a = relax(toy_system, RelaxConfig(steps=2), store=store)
    b = relax(toy_system, RelaxConfig(steps=2), store=store)
    stem = a.run_id.rsplit("-", 1)[0]
    assert (a.run_id, b.run_id) == (f"{stem}-1", f"{stem}-2")
    c = relax(toy_system, RelaxConfig(steps=3), store=store)
    assert not c.run_id.startswith(stem)


def test_a_crash_mid_run_leaves_whole_batches_and_an_incomplete_run(store, toy_system):
    class Crash(Exception):
        pass

    def crash_at_step_9(run_id, event, seq):
        if event.step == 9:
            raise Crash

    # Crash inside the loop: the event iterator raises; flush what was whole, keep the run incomplete.
    from complexity_from_constraints.projectors import SOLVERS
    from complexity_from_constraints.projectors._solvers import ProjectedGradient

    class Exploding(ProjectedGradient):
        calls = 0

        def propose(self, ctx):
            Exploding.calls += 1
            if Exploding.calls == 12:
                raise Crash("simulated crash")
            return super().propose(ctx)

    SOLVERS["projected_gradient"] = Exploding
    try:
        with pytest.raises(Crash):
            relax(toy_system, RelaxConfig(steps=50), store=store, flush_every=5)
    finally:
        SOLVERS["projected_gradient"] = ProjectedGradient
    (info,) = store.runs()
    assert not info.complete
    log = store.read(info.run_id)
    assert [r.seq for r in log] == list(range(len(log)))
    assert not any(isinstance(r.event, RunFinished) for r in log)
    steps = [r.event.step for r in log if isinstance(r.event, StepCommitted)]
    assert steps == list(range(12))  # every whole step before the crash
