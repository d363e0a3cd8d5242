"""Fuzzed input: Systems, configs and seeds, bad and edge-case, end in a typed error or a run that reads back.

Every example goes through what a user's script or ``cfc run`` does (validate the System, the config
and the seed, relax into a DuckDB store) and must end in a :class:`CfcError` or a recorded run that
reads back and replays; no untyped exception, and the store's other runs stay as they were.
``CFC_FUZZ_EXAMPLES`` sets the number of examples (``bench/reliability.py`` runs 5,000).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._run_file import RunFile
from complexity_from_constraints.entities import CfcError, RelaxConfig, demo_system
from complexity_from_constraints.projectors import relax, replay

EXAMPLES = int(os.environ.get("CFC_FUZZ_EXAMPLES", "1000"))

weird_floats = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, 1e300, 1e308, -1e308,
                                float("nan"), float("inf"), float("-inf"), 3.5, -2.5])
numbers = st.one_of(weird_floats, st.floats(-5, 5, allow_nan=False), st.integers(-3, 3))
anything = st.one_of(numbers, st.none(), st.text(max_size=4), st.lists(numbers, max_size=3), st.booleans())
ids = st.sampled_from(["a", "b", "c", "g", "a", "", "bad id", "x" * 200, "q"])
kinds = st.sampled_from(["landau", "gate", "compression", "nash", "polynomial", "sequence", "connectivity",
                         "landau", "gate", "bogus", "", 3])


@st.composite
def modules(draw):
    kind = draw(st.one_of(kinds, st.just([]), st.none()))
    module = {"kind": kind, "id": draw(ids)}
    fields = {"a": numbers, "b": numbers, "h": numbers, "eta0": numbers, "weight": numbers, "gain": numbers,
              "cost": numbers, "k": numbers, "threshold": numbers, "t": numbers, "alpha": numbers,
              "beta": numbers, "coeffs": st.lists(numbers, max_size=4),
              "observation": st.lists(numbers, max_size=6), "grid_n": st.sampled_from([None, 0, 3, 5, 10**6]),
              "bond_p": numbers, "shortcut_fraction": numbers, "samples": st.sampled_from([0, 1, 50, 10**9]),
              "row_payoffs": st.just([[3, 0], [5, 1]]), "col_payoffs": st.just([[3, 5], [0, 1]]),
              "unknown_key": anything}
    for name in draw(st.sets(st.sampled_from(sorted(fields)), max_size=5)):
        module[name] = draw(fields[name])
    if draw(st.booleans()):
        module.pop("id")
    return module


@st.composite
def couplings(draw):
    coupling = {"kind": draw(st.sampled_from(["quadratic", "directed_hinge", "gate_benefit", "asymmetric_hinge",
                                              "damped_gate_benefit", "nope"])),
                "id": draw(st.sampled_from(["e1", "e2", "a", "e1"])),
                "i": draw(ids), "j": draw(ids)}
    for name in draw(st.sets(st.sampled_from(["weight", "delta", "alpha", "beta", "eta_power", "damping"]), max_size=3)):
        coupling[name] = draw(numbers)
    return coupling


@st.composite
def configs(draw):
    config: dict = {"steps": draw(st.sampled_from([0, 1, 3, 8, -1, 10**9, "5", 2.5]))}
    optional = {
        "step_size": numbers, "tol": numbers, "solver": st.sampled_from(
            ["projected_gradient", "accelerated", "coordinate", "adaptive", "proximal", "admm", "lbfgsb", "nope", ""]),
        "line_search": st.sampled_from(["none", "armijo", "wolfe"]),
        "eta0": st.one_of(st.sampled_from(["uniform", "measured", "random"]), st.lists(numbers, max_size=4)),
        "stability": st.sampled_from([None, {}, {"cap_fraction": 0.9}, {"cap_fraction": 2.0},
                                      {"coupling_target": 0.5}, {"warn_margin": float("nan")}]),
        "noise": st.sampled_from([None, {"magnitude": 0.01}, {"magnitude": -1.0}, {"magnitude": 0.01, "mode": "metric"}]),
        "homotopy": st.sampled_from([None, {"steps": 3, "coupling_start": 0.1}, {"steps": 2, "kind_starts": {"zz": 0.5}},
                                     {"steps": 0}]),
        "weighting": st.sampled_from([None, {"kind": "gradnorm"}, {"kind": "small_gain"}, {"kind": "custom", "name": "x"},
                                      {"kind": "gradnorm", "ceiling": -1.0}]),
        "early_stop": st.sampled_from([None, {"patience": 2, "delta": 1e-3}]),
        "diagnostics": st.sampled_from([None, {}]),
        "record_terms_every": st.sampled_from([0, 1, -1]),
        "sed": anything,
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional)), max_size=4)):
        config[name] = draw(optional[name])
    return config


VALID_MODULES = [
    {"kind": "landau", "a": st.floats(-2, 2), "b": st.floats(0.1, 2), "h": st.floats(-0.5, 0.5), "eta0": st.floats(0, 1)},
    {"kind": "gate", "gain": st.floats(-1, 1), "cost": st.floats(0, 1), "k": st.floats(0.5, 20)},
    {"kind": "compression", "a": st.floats(0, 2), "b": st.floats(0, 2), "t": st.floats(0, 1)},
    {"kind": "sequence", "observation": st.lists(st.floats(0, 1), min_size=2, max_size=6)},
    {"kind": "polynomial", "coeffs": st.lists(st.floats(-1, 1), min_size=1, max_size=4)},
]
VALID_COUPLINGS = [{"kind": "quadratic", "weight": st.floats(0, 2)}, {"kind": "directed_hinge", "weight": st.floats(0, 2)}]


@st.composite
def valid_modules(draw, index: int):
    template = draw(st.sampled_from(VALID_MODULES))
    return {k: (draw(v) if not isinstance(v, str) else v) for k, v in template.items()} | {"id": f"m{index}"}


@st.composite
def run_files(draw):
    """Mostly well-formed run files with a few things wrong: the run, the config or the seed."""
    n = draw(st.integers(1, 5))
    mods = [draw(valid_modules(k)) for k in range(n)]
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    cps = []
    for e, (a, b) in enumerate(draw(st.lists(st.sampled_from(pairs), max_size=4, unique=True)) if pairs else []):
        template = draw(st.sampled_from(VALID_COUPLINGS))
        cps.append({"kind": template["kind"], "id": f"e{e}", "i": f"m{a}", "j": f"m{b}", "weight": draw(template["weight"])})
    config = {"steps": draw(st.integers(0, 8)), "step_size": draw(st.floats(0.001, 1.0))}
    extra = draw(configs())
    extra.pop("steps")
    config |= {k: v for k, v in extra.items() if draw(st.booleans())}
    data = {"system": {"id": "s", "modules": mods, "couplings": cps}, "config": config,
            "seed": draw(st.integers(0, 3))}
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):  # break something, the way people do
        where = draw(st.sampled_from(["module", "new module", "coupling", "config", "seed", "system"]))
        if where == "module" and mods:
            draw(st.sampled_from(mods))[draw(st.sampled_from(["a", "b", "eta0", "kind", "id", "weight", "junk"]))] = \
                draw(st.one_of(anything, kinds))
        elif where == "new module":
            mods.append(draw(modules()))
        elif where == "coupling":
            cps.append(draw(couplings()))
        elif where == "config":
            config["steps"] = draw(st.sampled_from([-1, 10**9, "5", 2.5, None]))
        elif where == "seed":
            data["seed"] = draw(st.sampled_from([-1, "abc", 2**70, 1.5, None]))
        else:
            data["system"][draw(st.sampled_from(["complexity_cost", "id", "junk"]))] = draw(anything)
    return data


def _log_digest(store: DuckDBStore, run_id: str) -> str:
    return hashlib.sha256(repr([(r.seq, r.event) for r in store.read(run_id)]).encode()).hexdigest()


@pytest.fixture(scope="module")
def store():
    with fuzz_store() as s:
        yield s


def check_one(store: DuckDBStore, data: dict) -> str:
    """Run one fuzzed run file into ``store``: ``"refused"`` (a typed error, nothing recorded) or ``"recorded"``
    (a run that reads back and replays). Anything else raises: an untyped exception, or an AssertionError."""
    before = {info.run_id for info in store.runs()}
    try:
        with np.errstate(all="ignore"):
            run = RunFile.model_validate(data)
            result = relax(run.system, run.config, seed=run.seed, store=store)
        run_id = result.run_id
    except CfcError as exc:
        run_id = getattr(exc, "run_id", None)  # DivergedError: recorded, and must read back too
        if run_id is None:
            assert {info.run_id for info in store.runs()} == before, "a refused input left a run behind"
            return "refused"
    log = store.read(run_id)
    assert log[0].event.type == "RunStarted" and log[-1].event.type == "RunFinished"
    replay(store, run_id)
    assert _log_digest(store, store.sentinel) == store.sentinel_digest, "another run changed"
    return "recorded"


def fuzz_store() -> DuckDBStore:
    """An in-memory store holding one sentinel run, whose log must never change."""
    store = DuckDBStore(":memory:")
    store.sentinel = relax(demo_system(0), RelaxConfig(steps=5), store=store).run_id
    store.sentinel_digest = _log_digest(store, store.sentinel)
    return store


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(data=run_files())
def test_fuzzed_input_ends_in_a_typed_error_or_a_run_that_reads_back(store, data):
    check_one(store, data)
