"""Properties that must hold for any input hypothesis can find, not just the examples we thought of."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._experiment_cli import config_from_options, load_study, studies
from complexity_from_constraints.entities import InvalidEntityError, RelaxConfig, demo_system, standard_system
from complexity_from_constraints.events import InMemoryStore, Recorded
from complexity_from_constraints.projectors import diff_runs, first_difference, relax

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _events(store, run_id):
    return [rec.event for rec in store.read(run_id)]


@pytest.fixture(scope="module")
def reference():
    """One run's events (gates open and close, η recorded every step), read back from memory."""
    store = InMemoryStore()
    r = relax(demo_system(0), RelaxConfig(steps=40, step_size=0.5, line_search="armijo"), store=store)
    return r.run_id, _events(store, r.run_id)


@SLOW
@given(data=st.data())
def test_any_split_into_batches_stores_the_same_log(reference, data):
    run_id, events = reference
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=12)))
    bounds = [0, *cuts, len(events)]
    with DuckDBStore(":memory:") as store:
        for lo, hi in zip(bounds, bounds[1:]):
            store.append(run_id, [Recorded(run_id, seq, events[seq]) for seq in range(lo, hi)])
        assert _events(store, run_id) == events
        assert store.is_complete(run_id)


@SLOW
@given(flush_every=st.integers(1, 30), flush_values=st.sampled_from([1, 7, 64, 1 << 19]), seed=st.integers(0, 3))
def test_pipelined_and_unpipelined_recording_store_the_same_log(flush_every, flush_values, seed):
    system, config = standard_system(12, seed=seed), RelaxConfig(steps=25, step_size=0.3)
    with DuckDBStore(":memory:") as store:
        a = relax(system, config, seed=seed, store=store, pipelined=True, flush_every=flush_every, flush_values=flush_values)
        b = relax(system, config, seed=seed, store=store, pipelined=False)
        assert first_difference(store, a.run_id, b.run_id) is None


@pytest.fixture(scope="module")
def pair_store():
    """A store with runs that differ in seed, config, System and length."""
    store = InMemoryStore()
    ids = [relax(standard_system(10, seed=s), RelaxConfig(steps=n, step_size=z), seed=s, store=store).run_id
           for s, n, z in [(0, 10, 0.3), (1, 10, 0.3), (0, 14, 0.1), (2, 6, 0.5)]]
    ids.append(relax(demo_system(0), RelaxConfig(steps=10), store=store).run_id)
    return store, ids


@settings(max_examples=30, deadline=None)
@given(data=st.data(), tol=st.sampled_from([0.0, 1e-9, 1e-3, 0.5]))
def test_a_diff_mirrors_the_diff_the_other_way(pair_store, data, tol):
    store, ids = pair_store
    a, b = data.draw(st.sampled_from(ids)), data.draw(st.sampled_from(ids))
    forward, backward = diff_runs(store, a, b, tol=tol), diff_runs(store, b, a, tol=tol)
    assert forward.mirror() == backward
    assert forward.is_empty == backward.is_empty == (a == b)


def _tokens(config, fields) -> list[str]:
    """The command line that sets ``fields`` of ``config``: what a user would type."""
    out = []
    for name in fields:
        value = getattr(config, name)
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif value is None:
            out += [flag, "null"]
        elif isinstance(value, (tuple, list, dict)) or hasattr(value, "model_dump"):
            dumped = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            out.append(f"{flag}={json.dumps(dumped)}")
        else:
            out.append(f"{flag}={value}")
    return out


def _variants(value):
    """Values of the same type near ``value`` (the model decides which are valid)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.sampled_from([value, value + 1, max(0, value - 1), 2 * value + 3])
    if isinstance(value, float):
        return st.sampled_from([value, value * 0.5, value + 0.25, -value, 1e-3])
    if isinstance(value, tuple) and value:
        return st.sampled_from([value, value[:1], value[::-1]])
    return st.just(value)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(studies())))
def test_the_study_option_parser_round_trips_every_config(data, name):
    model = load_study(name).config
    default = model()
    fields = data.draw(st.lists(st.sampled_from(sorted(model.model_fields)), unique=True, max_size=5))
    changes = {f: data.draw(_variants(getattr(default, f))) for f in fields}
    try:
        config = default.evolve(**changes)
    except InvalidEntityError:
        assume(False)
    assert config_from_options(model, _tokens(config, fields)) == config
