"""Threads sharing one store object: what is specified, and that it holds.

- Threads may relax *distinct* runs into one store at once: each run's log is
  its own computation's, gap-free, and every call succeeds.
- Threads appending to the *same* run race on seqs: the store checks and writes
  under one lock, so for each seq exactly one batch wins and the others are
  refused with ``LogIntegrityError``; the log never holds a gap or a duplicate.
- Another *process* cannot open a file one process writes (``StoreBusyError``,
  see ``test_files.py``); within a process a second store object on the same
  file is refused too: share the first one.
"""

from __future__ import annotations

import threading

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import LogIntegrityError, RelaxConfig
from complexity_from_constraints.events import InMemoryStore, Recorded, RunStarted, StepCommitted
from complexity_from_constraints.projectors import package_version, relax


@pytest.fixture(params=["memory", "duckdb"])
def shared(request, tmp_path):
    store = InMemoryStore() if request.param == "memory" else DuckDBStore(tmp_path / "runs.duckdb")
    yield store
    store.close()


def _together(fns):
    barrier = threading.Barrier(len(fns))
    out, errors = [None] * len(fns), []

    def run(k):
        barrier.wait()
        try:
            out[k] = fns[k]()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


def test_threads_relaxing_distinct_runs_each_keep_their_own_log(shared, toy_system):
    configs = [RelaxConfig(steps=20 + k, step_size=0.1 + 0.05 * k) for k in range(4)]
    results, errors = _together([lambda c=c: relax(toy_system, c, store=shared, flush_every=2) for c in configs])
    assert not errors
    for config, result in zip(configs, results):
        alone = InMemoryStore()
        ref = relax(toy_system, config, store=alone)
        assert [r.event for r in shared.read(result.run_id)] == [r.event for r in alone.read(ref.run_id)]


def test_threads_appending_to_the_same_run_cannot_both_win_a_seq(shared, toy_system):
    run = "same-1"
    started = RunStarted(system=toy_system, config=RelaxConfig(), seed=0, package_version=package_version(),
                         system_digest=toy_system.digest())
    shared.append(run, [Recorded(run, 0, started)])

    def writer(tag: float):
        won = 0
        for seq in range(1, 40):
            step = StepCommitted(step=seq, energy=tag, pg_norm=1.0, step_size=0.1, backtracks=0, accepted=True,
                                 reason="decrease")
            try:
                shared.append(run, [Recorded(run, shared.next_seq(run), step)])
                won += 1
            except LogIntegrityError:
                pass
        return won

    wins, errors = _together([lambda t=t: writer(float(t)) for t in range(4)])
    assert not errors
    log = shared.read(run)
    assert [r.seq for r in log] == list(range(len(log)))  # no gap, no duplicate
    assert len(log) == 1 + sum(wins)  # every append that returned is in the log, and nothing else
