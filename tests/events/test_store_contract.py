"""One contract suite, run against every event-store implementation (see the ``store`` fixture)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    LogIntegrityError,
    NonFiniteValueError,
    RelaxConfig,
    StoreTransactionError,
    UnknownRunError,
)
from complexity_from_constraints.events import (
    EtaRecorded,
    GateOpened,
    InMemoryStore,
    NullStore,
    Recorded,
    RunFinished,
    RunStarted,
    StepCommitted,
)
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


# -- issue 12: the store side of reliability ---------------------------------------------------------------


@pytest.mark.parametrize("threads", [2, 6])
@pytest.mark.parametrize("pipelined", [True, False])
def test_concurrent_relaxations_of_the_same_run_each_get_their_own_id(store, toy_system, threads, pipelined):
    import threading

    config = RelaxConfig(steps=40, step_size=0.3)
    reference = InMemoryStore()
    ref = relax(toy_system, config, seed=7, store=reference)
    expected = [(r.seq, r.event) for r in reference.read(ref.run_id)]
    barrier = threading.Barrier(threads)
    results, errors = [], []

    def one():
        barrier.wait()
        try:
            results.append(relax(toy_system, config, seed=7, store=store, flush_every=3, pipelined=pipelined))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    ids = sorted(r.run_id for r in results)
    stem = ref.run_id.rsplit("-", 1)[0]
    assert ids == sorted(f"{stem}-{k}" for k in range(1, threads + 1))  # distinct ordinals, none skipped
    for run_id in ids:  # each run holds exactly one computation's events
        assert [(r.seq, r.event) for r in store.read(run_id)] == expected
        assert store.is_complete(run_id)


def test_null_store_reserves_run_ids_too(toy_system):
    store = NullStore()
    started = _started(toy_system)
    a, b = store.new_run_id(started), store.new_run_id(started)
    assert a != b
    store.release_run_id(a)
    assert store.new_run_id(started) == a  # a released id is handed out again


def test_a_batch_that_holds_a_non_finite_number_is_refused_whole(store, toy_system):
    run = "r-1"
    store.append(run, [Recorded(run, 0, _started(toy_system))])
    for bad, field in [(GateOpened(gate_id="gate", step=0, eta=float("nan")), "eta"),
                       (EtaRecorded(0, np.array([0.1, np.inf, 0.3, 0.4])), "eta[1]"),
                       (StepCommitted(step=0, energy=1.0, pg_norm=1.0, step_size=0.1, backtracks=0, accepted=True,
                                      reason="decrease", diagnostics={"margin": -np.inf}), "diagnostics.margin")]:
        with pytest.raises(NonFiniteValueError, match=rf"seq 2 \({bad.type}\): field '{re.escape(field)}'"):
            store.append(run, [Recorded(run, 1, _step(0)), Recorded(run, 2, bad)])
        assert [r.seq for r in store.read(run)] == [0]  # not even the finite event before it
    store.append(run, [Recorded(run, 1, _step(0))])


def test_a_diverging_run_never_leaves_an_unreadable_log(store):
    from complexity_from_constraints.entities import CfcError, LandauModule, System
    from complexity_from_constraints.projectors import replay

    system = System(id="huge", modules=[LandauModule(id="m", a=1e308, b=1e308, eta0=0.3)])
    try:
        with np.errstate(all="ignore"):  # the energy overflows: that is the point
            relax(system, RelaxConfig(steps=3), store=store)
    except CfcError:
        pass  # refused by the store: no NaN or inf reaches the log
    for info in store.runs():
        log = store.read(info.run_id)  # reads back, whatever happened
        assert [r.seq for r in log] == list(range(len(log)))
        replay(store, info.run_id)


@pytest.mark.parametrize("pipelined", [True, False])
def test_relax_inside_an_open_transaction_is_refused_before_writing(store, toy_system, pipelined):
    if not hasattr(store, "transaction"):
        pytest.skip("the store has no multi-statement transactions")
    with store.transaction():
        with pytest.raises(StoreTransactionError, match="transaction"):
            relax(toy_system, RelaxConfig(steps=3), store=store, pipelined=pipelined)
    assert store.runs() == []
    r = relax(toy_system, RelaxConfig(steps=3), store=store, pipelined=pipelined)
    assert r.run_id.endswith("-1")  # the refused run gave its id back
