"""A user's solver, weighting and backend: chosen by name in RelaxConfig, recorded, found again by rerun."""

from __future__ import annotations

import pytest

from complexity_from_constraints.entities import CustomWeighting, InvalidEntityError, MissingDependencyError, RelaxConfig, standard_system
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import (
    SOLVERS,
    AbstractWeighting,
    NumpyBackend,
    Proposal,
    first_difference,
    register_weighting,
    register_backend,
    register_solver,
    relax,
    rerun,
)
from complexity_from_constraints.projectors._weighting import _BY_NAME
from complexity_from_constraints.projectors._backend import _BACKENDS
from complexity_from_constraints.projectors._solvers import ProjectedGradient


class HalfStep(ProjectedGradient):
    """Projected gradient that marks its proposals: a solver of one's own."""

    name = "half_step"

    def propose(self, ctx):
        p = super().propose(ctx)
        return Proposal(p.eta, p.value, p.grad, p.energy, p.step_size, p.backtracks, p.accepted, p.reason,
                        p.diagnostics | {"mine": 1.0})


class Shrink(AbstractWeighting):
    name = "shrink"
    every = 2

    def __init__(self, factor: float):
        self.factor = factor

    def adapt(self, ctx):
        return {k: w * self.factor for k, w in ctx.weights.items()}


@pytest.fixture
def registered():
    register_solver(HalfStep)
    register_weighting("shrink", lambda config: Shrink(config.options["factor"]))
    register_backend("numpy_again", NumpyBackend)
    yield
    SOLVERS.pop("half_step", None)
    _BY_NAME.pop("shrink", None)
    _BACKENDS.pop("numpy_again", None)


CONFIG = RelaxConfig(steps=12, solver="half_step", backend="numpy_again",
                     weighting=CustomWeighting(name="shrink", options={"factor": 0.9}))


def test_a_registered_solver_adapter_and_backend_run_and_rerun_bit_for_bit(registered):
    store = InMemoryStore()
    result = relax(standard_system(30, seed=1), CONFIG, store=store)
    started = store.read(result.run_id, types=["RunStarted"])[0].event
    assert (started.config.solver, started.config.backend, started.config.weighting.name) == ("half_step", "numpy_again", "shrink")
    assert all(e.event.diagnostics.get("mine") == 1.0 for e in store.read(result.run_id, types=["StepCommitted"])[1:])
    assert store.read(result.run_id, types=["WeightsAdapted"])
    again = rerun(store, result.run_id)
    assert first_difference(store, result.run_id, again.run_id) is None


@pytest.mark.parametrize("field, config, message", [
    ("solver", RelaxConfig(steps=3, solver="half_step"), "no such solver in this process"),
    ("backend", RelaxConfig(steps=3, backend="numpy_again"), "unknown backend"),
])
def test_an_unregistered_name_is_refused_clearly_and_nothing_is_recorded(field, config, message):
    store = InMemoryStore()
    with pytest.raises(InvalidEntityError, match=message) as info:
        relax(standard_system(10, seed=0), config, store=store)
    assert info.value.field in (field, "name")
    assert store.runs() == []


def test_an_unregistered_adapter_name_says_how_to_provide_it():
    config = RelaxConfig(steps=3, weighting=CustomWeighting(name="nobody_registered_this"))
    with pytest.raises(MissingDependencyError, match="register_weighting"):
        relax(standard_system(10, seed=0), config)


def test_solver_names_are_checked_for_shape_not_membership():
    assert RelaxConfig(solver="anything_registered_later").solver == "anything_registered_later"
    with pytest.raises(InvalidEntityError, match="solver"):
        RelaxConfig(solver="Not A Name")
