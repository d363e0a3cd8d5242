"""Compiling once: cached compiles equal fresh ones bit for bit, stay read-only, and no run changes them.

``compile_system`` keeps the compiled arrays of the last few Systems (by digest
and backend). These tests pin that a cached compile is indistinguishable from
a fresh one (every array, every energy and gradient), that it matches the plain
per-entity definition of compiling (kind groups in order of first appearance,
parameters and weights times family weights, endpoint positions), that nothing
a run does can change it, and that a run on a warm cache records exactly the
events of a run on a cold one.
"""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    AsymmetricHingeCoupling,
    Candidate,
    DirectedHingeCoupling,
    ExpansionConfig,
    GateBenefitCoupling,
    GateModule,
    HomotopyConfig,
    LandauModule,
    PolynomialModule,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    SequenceModule,
    SmallGainWeighting,
    System,
    demo_system,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import (
    compile_system,
    energy_and_gradient,
    first_difference,
    hessian_diagonal,
    make_backend,
    relax,
)
from complexity_from_constraints.projectors import _compile


def mixed_system() -> System:
    """Kinds interleaved (so groups are not contiguous), two gates, a vector parameter, family weights."""
    modules = [
        LandauModule(id="l0", a=-1.0, b=1.0, h=0.05),
        GateModule(id="g0", gain=0.0, cost=0.1, k=10.0, threshold=0.4),
        SequenceModule(id="n0", alpha=0.5, beta=0.25),
        LandauModule(id="l1", a=0.3, b=0.7, weight=0.5),
        PolynomialModule(id="p0", coeffs=(0.1, -0.4, 0.2)),
        GateModule(id="g1", gain=0.3, cost=0.1, k=5.0),
        LandauModule(id="l2", a=-0.2, b=1.2, h=-0.1),
        SequenceModule(id="n1", alpha=1.5, beta=0.5, weight=2.0),
    ]
    couplings = [
        QuadraticCoupling(id="q0", i="l0", j="l1", weight=0.7),
        DirectedHingeCoupling(id="h0", i="l2", j="l0", weight=0.4),
        GateBenefitCoupling(id="b0", i="g0", j="l2", delta=0.35),
        QuadraticCoupling(id="q1", i="n0", j="p0", weight=0.3),
        AsymmetricHingeCoupling(id="a0", i="n1", j="l1", alpha=0.5, beta=1.5),
        GateBenefitCoupling(id="b1", i="g1", j="n1", delta=0.2, weight=2.0),
        QuadraticCoupling(id="q2", i="l2", j="n1", weight=0.9),
    ]
    return System(id="mixed", modules=modules, couplings=couplings,
                  family_weights={"quadratic": 1.5, "landau": 0.8}, complexity_cost=0.01)


SYSTEMS = {"standard": lambda: standard_system(200, seed=4), "demo": lambda: demo_system(1), "mixed": mixed_system}


def reference_compile(system: System) -> dict:
    """Compiling by definition, one entity at a time (what the vectorised compile must reproduce)."""
    position = {m.id: k for k, m in enumerate(system.modules)}
    fw = system.family_weights

    def groups(entities):
        out: dict[type, list] = {}
        for e in entities:
            out.setdefault(type(e), []).append(e)
        return out

    def params(cls, members):
        return {p: np.asarray([getattr(e, p) for e in members], np.float64) for p in cls.params}

    def weight(members):
        return np.asarray([e.weight * fw.get(e.kind, 1.0) for e in members], np.float64)

    return {
        "modules": [(cls, tuple(m.id for m in ms), np.array([position[m.id] for m in ms]), params(cls, ms), weight(ms))
                    for cls, ms in groups(system.modules).items()],
        "couplings": [(cls, tuple(c.id for c in cs), np.array([position[c.i] for c in cs]),
                       np.array([position[c.j] for c in cs]), params(cls, cs), weight(cs))
                      for cls, cs in groups(system.couplings).items()],
        "gates": [(m.id, position[m.id], m.threshold) for m in system.modules if isinstance(m, GateModule)],
    }


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def arrays_of(cs) -> list[np.ndarray]:
    """Every array a compiled System holds, as host copies, in a fixed order."""
    host = cs.backend.to_numpy
    out = [np.array(host(cs.edge_index)), np.array(cs.gate_index), np.array(cs.gate_threshold)]
    for g in cs.modules:
        out += [np.array(host(g.index)), np.array(host(g.weight))] + [np.array(host(v)) for v in g.params.values()]
    for c in cs.couplings:
        out += [np.array(host(c.i)), np.array(host(c.j)), np.array(host(c.weight))]
        out += [np.array(host(v)) for v in c.params.values()]
    return out


@pytest.fixture(autouse=True)
def cold_cache():
    _compile.clear_compile_cache()
    yield
    _compile.clear_compile_cache()


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("from_json", [False, True], ids=["objects", "from-json"])
def test_compile_matches_the_per_entity_definition(name, from_json):
    """Groups, ids, positions, parameters and weights as one entity at a time would build them.

    From JSON, endpoint ids are separate string objects from the modules' ids, so
    positions are found by value rather than by object identity.
    """
    system = SYSTEMS[name]()
    if from_json:
        system = System.model_validate_json(system.model_dump_json())
    cs, ref = compile_system(system), reference_compile(system)
    assert [g.cls for g in cs.modules] == [r[0] for r in ref["modules"]]
    for g, (cls, ids, index, params, weight) in zip(cs.modules, ref["modules"]):
        assert g.ids == ids and same(g.index, index) and same(g.weight, weight), cls.__name__
        assert g.params.keys() == params.keys() and all(same(g.params[p], params[p]) for p in params), cls.__name__
        assert (g.span is not None) == bool(np.all(np.diff(index) == 1))
    assert [c.cls for c in cs.couplings] == [r[0] for r in ref["couplings"]]
    for c, (cls, ids, i, j, params, weight) in zip(cs.couplings, ref["couplings"]):
        assert c.ids == ids and same(c.i, i) and same(c.j, j) and same(c.weight, weight), cls.__name__
        assert all(same(c.params[p], params[p]) for p in params), cls.__name__
    assert cs.gate_ids == tuple(g[0] for g in ref["gates"])
    assert same(cs.gate_index, np.array([g[1] for g in ref["gates"]], np.int64))
    assert same(cs.gate_threshold, np.array([g[2] for g in ref["gates"]], np.float64))
    assert same(cs.edge_index, np.concatenate([r[2] for r in ref["couplings"]] + [r[3] for r in ref["couplings"]]))
    assert cs.constant == system.complexity_cost * len(system.modules)
    assert dict(cs.position) == {m.id: k for k, m in enumerate(system.modules)}


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("backend", ["numpy", "numpy-float32", "torch"])
def test_a_cached_compile_equals_a_fresh_one(name, backend, require):
    """Every array, and the energy, gradient and Hessian diagonal at random points, bit for bit."""
    if backend == "torch":
        require("torch")
    dtype = "float32" if backend.endswith("float32") else "float64"
    be = make_backend("torch") if backend == "torch" else make_backend("numpy", dtype=dtype)
    system = SYSTEMS[name]()
    fresh = compile_system(system, be)
    cached = compile_system(system, be)
    _compile.clear_compile_cache()
    again = compile_system(system, be)
    assert len(arrays_of(fresh)) == len(arrays_of(cached))
    assert all(same(a, b) and same(a, c) for a, b, c in zip(arrays_of(fresh), arrays_of(cached), arrays_of(again)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        eta = be.asarray(rng.uniform(0.0, 1.0, fresh.n))
        (e1, g1), (e2, g2) = energy_and_gradient(fresh, eta), energy_and_gradient(cached, eta)
        assert e1 == e2 and same(be.to_numpy(g1), be.to_numpy(g2))
        assert same(be.to_numpy(hessian_diagonal(fresh, eta)), be.to_numpy(hessian_diagonal(cached, eta)))


def test_the_second_relax_of_a_system_does_not_compile_again(monkeypatch):
    calls = []
    real = _compile._compile
    monkeypatch.setattr(_compile, "_compile", lambda *a: calls.append(1) or real(*a))
    system = standard_system(50, seed=2)
    relax(system, RelaxConfig(steps=3))
    relax(system, RelaxConfig(steps=5, solver="accelerated"))
    relax(System.model_validate_json(system.model_dump_json()), RelaxConfig(steps=2))  # equal content, equal digest
    assert len(calls) == 1
    relax(system, RelaxConfig(steps=2, dtype="float32"))  # another dtype: built from the cached host arrays
    assert len(calls) == 1
    relax(standard_system(50, seed=3), RelaxConfig(steps=2))
    assert len(calls) == 2


def test_cached_arrays_are_read_only_and_the_cache_is_bounded():
    cs = compile_system(mixed_system())
    assert not any(a.flags.writeable for a in _host_arrays(cs))
    with pytest.raises(ValueError):
        cs.couplings[0].weight[0] = 0.0
    with pytest.raises(TypeError):
        cs.position["l0"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        cs.modules[0].params["a"] = np.zeros(3)  # type: ignore[index]

    small = _compile.compiled_bytes(compile_system(standard_system(10, seed=0)))
    previous = _compile.set_compile_cache_limit(3 * small)
    try:
        for seed in range(10):
            compile_system(standard_system(10, seed=seed))
        assert _compile._CACHE.bytes <= 3 * small  # bounded by bytes: the last three stay
        assert len(_compile._CACHE) == 3
        assert _compile._CACHE.get((standard_system(10, seed=9).digest(), "numpy", "cpu", "float64",
                                    type(make_backend("numpy")))) is not None
        _compile.set_compile_cache_limit(0)
        assert len(_compile._CACHE) == 0
        compile_system(standard_system(10, seed=1))
        assert len(_compile._CACHE) == 0  # a compile larger than the bound is not kept
    finally:
        _compile.set_compile_cache_limit(previous)


def _host_arrays(cs) -> list[np.ndarray]:
    out = [cs.edge_index, cs.gate_index, cs.gate_threshold]
    for g in cs.modules:
        out += [g.index, g.weight, *g.params.values()]
    for c in cs.couplings:
        out += [c.i, c.j, c.weight, *c.params.values()]
    return out


def _configs():
    newcomer = Candidate(module=LandauModule(id="helper", a=-1.0),
                         couplings=(QuadraticCoupling(id="qh", i="helper", j="s1", weight=0.7),))
    return {
        "revisions": RelaxConfig(steps=30, step_size=0.1, revisions=(
            Revision(step=3, entity_id="s1", changes={"a": -0.9}),
            Revision(step=6, entity_id="wormhole", changes={"delta": 0.6}),
            Revision(step=9, entity_id="repair", changes={"cost": 0.05}),
            Revision(step=12, entity_id="demo-0", changes={"family_weights": {"quadratic": 2.0}}))),
        "expansion": RelaxConfig(steps=30, step_size=0.1, expansion=ExpansionConfig(every=5, candidates=(newcomer,))),
        "homotopy": RelaxConfig(steps=30, homotopy=HomotopyConfig(steps=10, coupling_start=0.1)),
        "weighting": RelaxConfig(steps=30, step_size=0.075, weighting=SmallGainWeighting(), record_terms_every=1),
        "coordinate": RelaxConfig(steps=20, solver="coordinate"),
        "proximal": RelaxConfig(steps=20, solver="proximal"),
        "admm": RelaxConfig(steps=20, solver="admm"),
        "lbfgsb": RelaxConfig(steps=20, solver="lbfgsb"),
    }


@pytest.mark.parametrize("name", sorted(_configs()))
def test_a_run_leaves_the_cached_compile_unchanged_and_records_the_same_events(name):
    """Runs that revise, expand, rescale and re-weight read the cached arrays and never write them."""
    system, config, store = demo_system(0), _configs()[name], InMemoryStore()
    cold = relax(system, config, seed=1, store=store)
    cached = compile_system(system)
    before = [np.array(a, copy=True) for a in _host_arrays(cached)]
    warm = relax(system, config, seed=1, store=store)
    assert compile_system(system).modules[0].weight is cached.modules[0].weight  # the warm run used the cache
    assert all(same(a, b) for a, b in zip(before, _host_arrays(cached)))
    assert first_difference(store, cold.run_id, warm.run_id) is None
