"""Array-backed entities: validation names the index, ids behave as the tuple they stand for, digests hash bytes,
JSON round-trips exactly, and a System of arrays compiles and relaxes to the very bits of the same System of objects."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    CouplingArray,
    EntityIds,
    GateModule,
    InvalidEntityError,
    LandauModule,
    ModuleArray,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    System,
    standard_array_system,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import compile_system, energy_and_gradient, hessian_diagonal, relax, replay


def mixed() -> System:
    lattice = ModuleArray(id="lat", member_kind="landau", n=6, values={"a": np.linspace(-1, 0.5, 6), "b": 1.2})
    gates = ModuleArray(id="gates", member_kind="gate", n=2, values={"cost": [0.05, 0.3], "threshold": [0.4, 0.6]})
    edges = CouplingArray(id="ring", member_kind="quadratic", i=np.arange(6), j=(np.arange(6) + 1) % 6,
                          values={"weight": np.linspace(0.1, 0.6, 6)})
    pulls = CouplingArray(id="pull", member_kind="gate_benefit", i=[6, 7], j=[0, 8], values={"delta": [0.4, 0.1]})
    return System(id="mixed", modules=[LandauModule(id="hub", a=-0.3)], module_arrays=[lattice, gates],
                  couplings=[QuadraticCoupling(id="spoke", i="lat/3", j="hub", weight=2.0)],
                  coupling_arrays=[edges, pulls], family_weights={"quadratic": 1.5})


def as_objects(system: System) -> System:
    """The same System with every array member written out as a plain entity (same η order, same coupling order)."""
    ids = system.module_ids
    modules = [a.member(k).model_dump() for a in system.module_arrays for k in range(a.n)]
    modules += [m.model_dump() for m in system.modules]
    couplings = [c.member(k, ids).model_dump() for c in system.coupling_arrays for k in range(len(c))]
    couplings += [c.model_dump() for c in system.couplings]
    for e in (*modules, *couplings):
        e["id"] = e["id"].replace("/", "_")
        for end in ("i", "j"):
            if end in e:
                e[end] = e[end].replace("/", "_")
        e["version"] = 1
    return System.model_validate({"id": system.id, "modules": modules, "couplings": couplings,
                                  "family_weights": system.family_weights})


@pytest.mark.parametrize(("values", "field", "index", "reason"), [
    ({"b": [1.0, 0.0, 2.0]}, "values.b", 1, "must be > 0"),
    ({"a": [0.0, 1.0, np.nan]}, "values.a", 2, "must be finite"),
    ({"eta0": [0.5, 1.5, 0.2]}, "values.eta0", 1, "must be <= 1"),
    ({"weight": [-1.0, 1.0, 1.0]}, "values.weight", 0, "must be >= 0"),
])
def test_module_array_validation_names_the_field_index_and_value(values, field, index, reason):
    with pytest.raises(InvalidEntityError) as err:
        ModuleArray(id="lat", member_kind="landau", n=3, values=values)
    e = err.value
    assert (e.kind, e.entity_id, e.field) == ("ModuleArray", "lat", f"{field}[{index}]")
    assert e.reason == reason
    assert e.value == np.asarray(values[field.split(".")[1]], float)[index] or np.isnan(e.value)


def test_module_array_refuses_unknown_kinds_fields_and_lengths():
    with pytest.raises(InvalidEntityError, match="member_kind"):
        ModuleArray(id="x", member_kind="no_such_kind", n=2)
    with pytest.raises(InvalidEntityError, match="values.measurement"):
        ModuleArray(id="x", member_kind="gate", n=2, values={"measurement": [1.0, 2.0]})
    with pytest.raises(InvalidEntityError, match="must hold 3 values"):
        ModuleArray(id="x", member_kind="landau", n=3, values={"a": [1.0, 2.0]})


def test_coupling_array_checks_its_endpoints_and_the_system_checks_the_graph():
    with pytest.raises(InvalidEntityError, match=r"'i\[1\]' = -2"):
        CouplingArray(id="e", member_kind="quadratic", i=[0, -2], j=[1, 1])
    with pytest.raises(InvalidEntityError, match=r"'j\[0\]'.*two different"):
        CouplingArray(id="e", member_kind="quadratic", i=[3, 0], j=[3, 1])
    with pytest.raises(InvalidEntityError, match="integer position"):
        CouplingArray(id="e", member_kind="quadratic", i=np.array([0.5, 1.0]), j=[1, 2])
    lattice = ModuleArray(id="lat", member_kind="landau", n=3)
    with pytest.raises(InvalidEntityError) as err:
        System(id="s", module_arrays=[lattice],
               coupling_arrays=[CouplingArray(id="e", member_kind="quadratic", i=[0, 1], j=[1, 3])])
    assert (err.value.entity_id, err.value.field, err.value.value) == ("e", "j[1]", 3)
    with pytest.raises(InvalidEntityError, match=r"'i\[0\]'.*kind \['gate'\]"):
        System(id="s", module_arrays=[lattice],
               coupling_arrays=[CouplingArray(id="e", member_kind="gate_benefit", i=[0], j=[1])])
    with pytest.raises(InvalidEntityError, match="unknown module id"):
        System(id="s", module_arrays=[lattice], modules=[LandauModule(id="hub")],
               couplings=[QuadraticCoupling(id="q", i="lat/3", j="hub")])
    with pytest.raises(InvalidEntityError, match="kept for the members"):
        System(id="s", modules=[LandauModule(id="lat/1")])
    with pytest.raises(InvalidEntityError, match="duplicate id"):
        System(id="s", module_arrays=[lattice], modules=[LandauModule(id="lat")])


def test_entity_ids_behave_as_the_tuple_they_stand_for():
    ids = EntityIds.of(("a", 2, 5), ("x", "y"), ("b", 0, 2))
    plain = ("a/2", "a/3", "a/4", "x", "y", "b/0", "b/1")
    assert list(ids) == list(plain) and ids == plain and len(ids) == 7
    assert [ids[k] for k in range(-7, 7)] == list(plain) * 2
    assert [ids.index(p) for p in plain] == list(range(7))
    assert "a/5" not in ids and "a/1" not in ids and "a/02" not in ids and "x" in ids
    assert ids[1:6] == plain[1:6] and ids[::2] == plain[::2]
    assert ids + ("z",) == plain + ("z",) and ("z",) + ids == ("z",) + plain
    assert hash(ids) == hash(plain)
    assert list(ids.to_numpy()) == list(plain)
    with pytest.raises(ValueError):
        ids.index("a/7")


def test_member_ids_positions_and_members():
    s = mixed()
    assert s.n_modules == 9 and s.n_couplings == 9
    assert s.module_ids[:3] == ("lat/0", "lat/1", "lat/2") and s.module_ids[-1] == "hub"
    assert s.positions(["hub", "gates/1", "lat/0"]).tolist() == [8, 7, 0]
    assert s.module("lat/2").a == pytest.approx(-0.4) and s.module("lat/2").b == 1.2
    assert isinstance(s.module("gates/0"), GateModule) and s.module("gates/0").threshold == 0.4
    assert s.entity("ring/5").i == "lat/5" and s.entity("ring/5").j == "lat/0"
    assert s.initial_eta().shape == (9,)
    assert s.initial_eta()[6] == GateModule(id="g", cost=0.05).initial_eta()


def test_digest_hashes_array_bytes_and_json_round_trips_exactly():
    s = mixed()
    again = System.model_validate_json(s.model_dump_json())
    assert again == s and again.digest() == s.digest()
    assert System.from_skeleton(s.skeleton(), s.arrays()) == s
    assert "base64" not in str(s.skeleton())  # the digest never writes the arrays out
    lattice = s.module_arrays[0]
    nudged = np.array(lattice.values["a"])
    nudged[4] = np.nextafter(nudged[4], 1)  # one ulp in one member
    changed = s.evolve(module_arrays=(lattice.evolve(values={**lattice.values, "a": nudged}), s.module_arrays[1]))
    assert changed.digest() != s.digest()
    assert standard_system(20).digest() == standard_system(20).digest()  # plain Systems: the JSON digest, as before
    assert "module_arrays" not in standard_system(5).model_dump_json()


def test_arrays_are_copied_and_read_only():
    a = np.array([-1.0, 0.0])
    lattice = ModuleArray(id="lat", member_kind="landau", n=2, values={"a": a})
    a[0] = 5.0
    assert lattice.values["a"][0] == -1.0
    with pytest.raises(ValueError):
        lattice.values["a"][0] = 1.0


def test_an_array_system_compiles_and_relaxes_to_the_bits_of_the_same_objects():
    s = mixed()
    plain = as_objects(s)
    cs, cp = compile_system(s), compile_system(plain)
    eta = np.random.default_rng(3).uniform(0, 1, s.n_modules)
    ea, ga = energy_and_gradient(cs, eta)
    eb, gb = energy_and_gradient(cp, eta)
    assert ea == eb and np.array_equal(ga, gb)
    assert np.array_equal(hessian_diagonal(cs, eta), hessian_diagonal(cp, eta))
    assert cs.gate_ids == ("gates/0", "gates/1") and cs.gate_threshold.tolist() == [0.4, 0.6]
    config = RelaxConfig(steps=40, step_size=0.05)
    ra, rb = relax(s, config), relax(plain, config)
    assert ra.energy == rb.energy and np.array_equal(ra.eta, rb.eta)
    assert ra.eta_of("lat/3") == rb.eta_of("lat_3")


def test_standard_array_system_matches_standard_system_bit_for_bit():
    config = RelaxConfig(steps=30, step_size=0.05)
    a, b = relax(standard_array_system(300, seed=2), config), relax(standard_system(300, seed=2), config)
    assert a.energy == b.energy and np.array_equal(a.eta, b.eta)


def test_a_member_revision_is_an_event_replayed_and_rerun_exactly():
    s = mixed()
    config = RelaxConfig(steps=12, step_size=0.05, revisions=[Revision(step=4, entity_id="lat/2", changes={"a": -2.0}),
                                                              Revision(step=6, entity_id="ring/1", changes={"weight": 3.0}),
                                                              Revision(step=8, entity_id="gates/1", changes={"threshold": 0.2})])
    store = InMemoryStore()
    run = relax(s, config, store=store)
    revised = [r.event for r in store.read(run.run_id, types=["EntityRevised"])]
    assert [(e.entity_id, e.version, e.entity["kind"]) for e in revised] == [
        ("lat/2", 2, "landau"), ("ring/1", 2, "quadratic"), ("gates/1", 2, "gate")]
    assert revised[0].entity["a"] == -2.0 and revised[1].entity["i"] == "lat/1"
    state = replay(store, run.run_id, 12)
    assert state.version_of("lat/2") == 2 and np.array_equal(state.eta, run.eta)
    # the revision really acts: a plain System revised the same way gives the same bits
    plain = as_objects(s)
    twin = relax(plain, config.evolve(revisions=[Revision(step=4, entity_id="lat_2", changes={"a": -2.0}),
                                                Revision(step=6, entity_id="ring_1", changes={"weight": 3.0}),
                                                Revision(step=8, entity_id="gates_1", changes={"threshold": 0.2})]))
    assert twin.energy == run.energy and np.array_equal(twin.eta, run.eta)
    with pytest.raises(InvalidEntityError, match="keeps its endpoints"):
        relax(s, RelaxConfig(steps=3, revisions=[Revision(step=1, entity_id="ring/0", changes={"j": "hub"})]))
