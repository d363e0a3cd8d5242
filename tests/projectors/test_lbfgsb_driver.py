"""The ``lbfgsb`` solver drives scipy one iteration per step: same iterates, no trajectory kept, no thread left."""

from __future__ import annotations

import gc
import threading

import numpy as np
from scipy.optimize import minimize

from complexity_from_constraints.entities import RelaxConfig, Revision, demo_system, standard_system
from complexity_from_constraints.events import EtaRecorded, InMemoryStore, StepCommitted
from complexity_from_constraints.projectors import (
    Objective,
    compile_system,
    energy_and_gradient,
    initial_eta,
    relax,
    relaxation,
)


def _lbfgsb_threads() -> list[threading.Thread]:
    gc.collect()
    return [t for t in threading.enumerate() if t.name == "lbfgsb" and t.is_alive()]


def _wait_for_no_threads() -> None:
    for t in _lbfgsb_threads():
        t.join(timeout=10)
    assert not _lbfgsb_threads()


def test_each_accepted_step_is_scipys_next_iterate_bit_for_bit():
    system, steps = standard_system(60, seed=5), 40
    cs = compile_system(system)
    x0 = initial_eta(cs, RelaxConfig(), 1)
    iterates = []
    minimize(lambda x: energy_and_gradient(cs, np.array(x)), x0, jac=True, method="L-BFGS-B",
             bounds=[(0.0, 1.0)] * cs.n, callback=lambda xk: iterates.append(np.array(xk)),
             options={"maxiter": steps, "maxfun": 20 * steps + 20, "ftol": 0.0, "gtol": 0.0, "maxcor": 10})
    store = InMemoryStore()
    run = relax(system, RelaxConfig(solver="lbfgsb", steps=steps, tol=0.0), seed=1, store=store)
    events = [r.event for r in store.read(run.run_id)]
    accepted = {e.step for e in events if isinstance(e, StepCommitted) and e.accepted and e.step > 0}
    recorded = [e.eta for e in events if isinstance(e, EtaRecorded) and e.step in accepted]
    assert len(recorded) == min(len(iterates), steps)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(recorded, iterates))
    _wait_for_no_threads()


def test_a_finished_reset_or_abandoned_run_leaves_no_thread_behind():
    relax(demo_system(0), RelaxConfig(solver="lbfgsb", steps=30,
                                      revisions=(Revision(step=5, entity_id="s1", changes={"a": -0.9}),)))
    _wait_for_no_threads()
    loop = relaxation(compile_system(standard_system(50, seed=1)), RelaxConfig(solver="lbfgsb", steps=100, tol=0.0), 1)
    for _ in range(10):
        next(loop)
    assert _lbfgsb_threads()  # paused in scipy's callback, waiting for the next step
    loop.close()
    del loop
    _wait_for_no_threads()


def test_an_error_in_the_objective_reaches_the_caller():
    class Failing(Objective):
        calls = 0

        def evaluate(self, eta):
            Failing.calls += 1
            if Failing.calls > 3:
                raise FloatingPointError("boom")
            return super().evaluate(eta)

    from complexity_from_constraints.projectors._solvers import Lbfgsb, State, StepContext

    cs = compile_system(standard_system(20, seed=2))
    objective = Failing(cs)
    solver = Lbfgsb(RelaxConfig(solver="lbfgsb", steps=50, tol=0.0))
    state = State.at(objective, initial_eta(cs, RelaxConfig(), 0))
    solver.reset(objective, state, 0)
    try:
        for step in range(1, 50):
            solver.propose(StepContext(step, objective, state, threshold=np.inf))
        raise AssertionError("the error was swallowed")
    except FloatingPointError as exc:
        assert str(exc) == "boom"
    del solver
    _wait_for_no_threads()
