"""Entities and the System: validation that names the culprit, versions, digests."""

from __future__ import annotations

import math

import pytest

from complexity_from_constraints.entities import (
    CfcError,
    GateModule,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    RelaxConfig,
    System,
    demo_system,
    standard_system,
)


def _system(**changes):
    base = {
        "id": "s",
        "modules": [{"kind": "landau", "id": "m1"}, {"kind": "landau", "id": "m2"}, {"kind": "gate", "id": "g"}],
        "couplings": [{"kind": "quadratic", "id": "q", "i": "m1", "j": "m2"}],
    }
    base.update(changes)
    return System.model_validate(base)


@pytest.mark.parametrize(
    ("changes", "kind", "entity", "field", "value"),
    [
        ({"couplings": [{"kind": "quadratic", "id": "q", "i": "m1", "j": "nope"}]}, "QuadraticCoupling", "q", "j", "nope"),
        ({"modules": [{"kind": "landau", "id": "m1"}, {"kind": "gate", "id": "m1"}]}, "GateModule", "m1", "id", "m1"),
        ({"modules": [{"kind": "landau", "id": "m1", "a": math.nan}]}, "LandauModule", "m1", "a", "nan"),
        ({"modules": [{"kind": "landau", "id": "m1", "b": 0.0}]}, "LandauModule", "m1", "b", "0.0"),
        ({"modules": [{"kind": "landau", "id": "m1", "b": -2.0}]}, "LandauModule", "m1", "b", "-2.0"),
        ({"modules": [{"kind": "gate", "id": "g1", "a": -0.1}]}, "GateModule", "g1", "a", "-0.1"),
        ({"couplings": [{"kind": "quadratic", "id": "q", "i": "m1", "j": "m2", "weight": -1}]},
         "QuadraticCoupling", "q", "weight", "-1"),
        ({"couplings": [{"kind": "gate_benefit", "id": "gb", "i": "m1", "j": "m2"}]}, "GateBenefitCoupling", "gb", "i", "m1"),
        ({"couplings": [{"kind": "quadratic", "id": "q", "i": "m1", "j": "m1"}]}, "QuadraticCoupling", "q", "j", "m1"),
        ({"modules": [{"kind": "warp", "id": "w"}]}, "System.modules.0", "w", "kind", "warp"),
        ({"family_weights": {"landau": -1.0}}, "System", "s", "family_weights.landau", "-1.0"),
        ({"family_weights": {"nope": 1.0}}, "System", "s", "family_weights.nope", "nope"),
    ],
)
def test_invalid_systems_name_entity_field_and_value(changes, kind, entity, field, value):
    with pytest.raises(InvalidEntityError) as info:
        _system(**changes)
    err = info.value
    assert (err.kind, err.entity_id, err.field) == (kind, entity, field)
    assert value in str(err) and repr(entity) in str(err) and repr(field) in str(err)
    assert isinstance(err, CfcError)


def test_direct_construction_errors_are_typed():
    with pytest.raises(InvalidEntityError, match=r"LandauModule 'x': field 'b' = -1"):
        LandauModule(id="x", b=-1)
    with pytest.raises(InvalidEntityError, match="RelaxConfig: field 'step_size'"):
        RelaxConfig(step_size=0)
    with pytest.raises(InvalidEntityError, match="field .bee. = 1: Extra inputs are not permitted"):
        LandauModule(id="x", bee=1)


def test_entities_are_frozen_and_evolve_validates_and_bumps_the_version():
    m = LandauModule(id="m", a=-1.0)
    with pytest.raises(Exception):
        m.a = 3.0  # type: ignore[misc]
    m2 = m.evolve(a=-0.5)
    assert (m2.version, m2.a, m.version, m.a) == (2, -0.5, 1, -1.0)
    with pytest.raises(InvalidEntityError, match="'b'"):
        m.evolve(b=0.0)
    with pytest.raises(InvalidEntityError, match="version"):
        m.evolve(version=7)


def test_digest_identifies_content():
    s = demo_system(0)
    again = System.model_validate_json(s.model_dump_json())
    assert again == s and again.digest() == s.digest()
    assert demo_system(1).digest() != s.digest()
    assert s.evolve(complexity_cost=0.5).digest() != s.digest()
    # family weights are canonicalised, so insertion order does not change the digest
    assert _system(family_weights={"landau": 2.0, "quadratic": 1.0}).digest() == \
        _system(family_weights={"quadratic": 1.0, "landau": 2.0}).digest()


def test_systems_accept_entities_or_tagged_dicts():
    a = System(id="s", modules=[LandauModule(id="m1"), GateModule(id="g")],
               couplings=[QuadraticCoupling(id="q", i="m1", j="g")])
    b = System.model_validate(a.model_dump())
    assert a == b and a.module_ids == ("m1", "g")


def test_gate_measurement_is_a_hazard_probability():
    g = GateModule(id="g", gain=0.0, cost=0.1, k=10.0)
    assert g.hazard(0.0) == pytest.approx(math.log1p(math.exp(-1.0)))
    assert g.initial_eta() == pytest.approx(0.268941, abs=1e-6)
    assert g.measure(0.1 + 0.05) == pytest.approx(1 - math.exp(-math.log1p(math.exp(0.5))))
    assert 0.0 <= g.measure(-1e6) <= g.measure(0.0) <= g.measure(1e6) == 1.0


def test_standard_family_is_seeded():
    a, b = standard_system(50, seed=3), standard_system(50, seed=3)
    assert a == b and a.digest() == b.digest()
    assert standard_system(50, seed=4).digest() != a.digest()
    kinds = [c.kind for c in a.couplings]
    assert len(kinds) == 150 and kinds.count("directed_hinge") == 50
