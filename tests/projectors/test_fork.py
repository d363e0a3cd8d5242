"""Fork: a new run from another run's state at step k; it records its parent, and agrees with it up to k."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    Candidate,
    ExpansionConfig,
    InvalidEntityError,
    LandauModule,
    RelaxConfig,
    Revision,
    UnknownStepError,
    demo_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import diff_runs, first_difference, fork, relax, replay, rerun

PARENT = RelaxConfig(steps=40, step_size=0.5, line_search="armijo", tol=0.0)


@pytest.fixture
def parent(store):
    """The demo relaxed for 40 steps in several batches (its gate opens at step 4), in every store."""
    return relax(demo_system(0), PARENT, store=store, flush_every=6)


@pytest.mark.parametrize("k", [0, 1, 4, 17, 40])
def test_a_fork_agrees_with_its_parent_up_to_its_step(store, parent, k):
    child = fork(store, parent.run_id, k, {"step_size": 0.1})
    d = diff_runs(store, parent.run_id, child.run_id)
    assert d.first_divergence is None or d.first_divergence > k
    assert d.first_energy_difference is None or d.first_energy_difference > k
    assert all(step > k for _, step, _ in d.gates_only_in_a + d.gates_only_in_b)
    assert d.config["step_size"] == (0.5, 0.1) and d.seed is None and not d.system
    np.testing.assert_array_equal(replay(store, child.run_id, k).eta, replay(store, parent.run_id, k).eta)


def test_a_fork_records_its_parent_and_copies_the_parents_log_up_to_its_step(store, parent):
    k = 9
    child = fork(store, parent.run_id, k, {"line_search": "none"}, seed=5)
    started = store.read(child.run_id, types=["RunStarted"])[0].event
    assert (started.parent_run_id, started.parent_step, started.seed) == (parent.run_id, k, 5)
    assert started.config.line_search == "none" and started.config.steps == PARENT.steps
    assert started.config.eta0 == tuple(replay(store, parent.run_id, k).eta)
    mine = [r.event for r in store.read(child.run_id, until_step=k)][1:]
    theirs = [r.event for r in store.read(parent.run_id, until_step=k)][1:]
    assert mine[: len(theirs)] == theirs
    steps = [r.event.step for r in store.read(child.run_id, types=["StepCommitted"])]
    assert steps == list(range(child.steps + 1)) and child.steps == PARENT.steps  # gap-free, up to the config's steps


def test_a_fork_without_changes_continues_like_its_parent(store, parent):
    # Armijo restarts from α every step, so nothing of the parent's state is lost at the fork.
    child = fork(store, parent.run_id, 12)
    d = diff_runs(store, parent.run_id, child.run_id)
    assert d.first_divergence is None and d.first_energy_difference is None and not d.gates_only_in_b
    assert set(d.config) == {"eta0"}  # the start, and nothing else


def test_rerunning_a_fork_forks_its_parent_again(store, parent):
    child = fork(store, parent.run_id, 7, {"step_size": 0.25})
    again = rerun(store, child.run_id)
    assert first_difference(store, child.run_id, again.run_id) is None


def test_fork_refuses_what_it_cannot_do(store, parent):
    with pytest.raises(UnknownStepError):
        fork(store, parent.run_id, 41)
    with pytest.raises(InvalidEntityError, match="eta0"):
        fork(store, parent.run_id, 3, {"eta0": "uniform"})
    with pytest.raises(InvalidEntityError, match="steps"):
        fork(store, parent.run_id, 30, {"steps": 20})
    with pytest.raises(InvalidEntityError, match="no_such_field"):
        fork(store, parent.run_id, 3, {"no_such_field": 1})


def test_fork_takes_a_whole_config_and_nested_changes(store, parent):
    whole = fork(store, parent.run_id, 5, RelaxConfig(steps=20, step_size=0.2))
    assert diff_runs(store, parent.run_id, whole.run_id).config["steps"] == (40, 20)
    nested = fork(store, parent.run_id, 5, {"stability.warn_margin": 0.5})
    cfg = store.read(nested.run_id, types=["RunStarted"])[0].event.config
    assert cfg.stability is not None and cfg.stability.warn_margin == 0.5


def test_fork_after_a_structural_change_is_refused_with_the_step_named():
    store = InMemoryStore()
    config = RelaxConfig(steps=20, revisions=[Revision(step=5, entity_id="wormhole", changes={"delta": 0.5})])
    run = relax(demo_system(0), config, store=store)
    assert fork(store, run.run_id, 4).steps == 20  # before the revision: fine
    with pytest.raises(InvalidEntityError, match="step 5"):
        fork(store, run.run_id, 6)
    grown = relax(demo_system(0), RelaxConfig(steps=20, expansion=ExpansionConfig(every=10, candidates=[
        Candidate(module=LandauModule(id="helper", a=-1.0))])), store=store)
    with pytest.raises(InvalidEntityError, match="ModuleAdded|ExpansionRejected"):
        fork(store, grown.run_id, 12)
