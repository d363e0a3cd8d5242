"""Every kind's ``curvature_bound`` bounds its Hessian over the whole box, and is tight where it can be."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.entities import (
    DampedGateBenefitCoupling,
    GateModule,
    InvalidEntityError,
    LandauModule,
    RelaxConfig,
    StabilityConfig,
    System,
    coupling_kinds,
    module_kinds,
)
from complexity_from_constraints.projectors import relax

from .kind_cases import COUPLING_CASES, MODULE_CASES

GRID_1D = np.linspace(0.0, 1.0, 2001)
_g = np.linspace(0.0, 1.0, 161)
GRID_I, GRID_J = (a.ravel() for a in np.meshgrid(_g, _g, indexing="ij"))
H = 1e-6

# Kinds whose bound is the exact maximum of |f''| (or of each |∂²φ|) on the box, whatever the parameters.
TIGHT_MODULES = {"landau", "gate", "sequence", "connectivity", "nash", "compression"}
TIGHT_COUPLINGS = {"quadratic", "directed_hinge", "gate_benefit", "asymmetric_hinge", "damped_gate_benefit"}


def _entity(cls, params):
    return cls(id="e", i="a", j="b", **params) if "i" in cls.model_fields else cls(id="e", **params)


def _arrays(entity, n: int):
    """The entity's parameter arrays as the compiler builds them, repeated ``n`` times."""
    return {name: np.repeat(np.array([getattr(entity, name)], dtype=np.float64), n, axis=0)
            for name in type(entity).params}


def _module_case(kind, params):
    cls = module_kinds[kind]
    entity = _entity(cls, params)
    bound = float(cls.curvature_bound(np, np.ones(1), _arrays(entity, 1))[0])
    worst = float(np.max(np.abs(cls.hessian_diagonal(np, GRID_1D, _arrays(entity, GRID_1D.size)))))
    return bound, worst


def _coupling_case(kind, params):
    """(bound, grid maximum) for ∂_i², ∂_j² and ∂_i∂_j; the mixed derivative by central differences of ∂_iφ."""
    cls = coupling_kinds[kind]
    entity = _entity(cls, params)
    bound = cls.curvature_bound(np, np.ones(1), _arrays(entity, 1))
    if bound is None:
        return None, None
    p = _arrays(entity, GRID_I.size)
    hi, hj = cls.hessian_diagonal(np, GRID_I, GRID_J, p)
    # central differences on the box's interior; at the edges one-sided (the formulas extend smoothly)
    up, down = np.minimum(GRID_J + H, 1.0), np.maximum(GRID_J - H, 0.0)
    mixed = (cls.energy_grad(np, GRID_I, up, p)[1] - cls.energy_grad(np, GRID_I, down, p)[1]) / (up - down)
    worst = [float(np.max(np.abs(hi))), float(np.max(np.abs(hj))), float(np.max(np.abs(mixed)))]
    return [float(b[0]) for b in bound], worst


def test_every_kind_has_a_curvature_bound_case():
    assert set(module_kinds.kinds()) <= set(MODULE_CASES)
    assert set(coupling_kinds.kinds()) <= set(COUPLING_CASES)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_module_bound_covers_the_hessian_on_the_whole_box(data):
    kind = data.draw(st.sampled_from(sorted(MODULE_CASES)))
    bound, worst = _module_case(kind, data.draw(MODULE_CASES[kind]))
    assert np.isfinite(bound) and bound >= 0, kind
    assert bound >= worst * (1 - 1e-12) - 1e-12, (kind, bound, worst)
    if kind in TIGHT_MODULES:  # the extremes of these f'' lie on the grid (at η = 0, 1 or the target)
        assert bound <= worst * (1 + 1e-9) + 1e-9, (kind, bound, worst)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_coupling_bound_covers_every_second_derivative_on_the_whole_box(data):
    kind = data.draw(st.sampled_from(sorted(COUPLING_CASES)))
    params = data.draw(COUPLING_CASES[kind])
    bound, worst = _coupling_case(kind, params)
    if bound is None:
        assert kind == "damped_gate_benefit" and 1 < params["eta_power"] < 2
        return
    for b, w, what in zip(bound, worst, ("ii", "jj", "ij")):
        assert np.isfinite(b) and b >= 0, (kind, what)
        # the mixed derivative is a finite difference: allow its truncation error
        assert b >= w * (1 - 1e-6) - 1e-6, (kind, what, b, w)
    if kind in TIGHT_COUPLINGS and params.get("beta", 1.0) > 0:  # β = 0 leaves the hinge never active
        for b, w, what in zip(bound, worst, ("ii", "jj", "ij")):
            assert b <= w * (1 + 1e-5) + 1e-6, (kind, what, b, w)


@pytest.mark.parametrize("kind, params, expected", [
    ("landau", {"a": -1.0, "b": 1.0}, 10.0),        # f'' = −2 + 12η²: |f''| is largest at η = 1
    ("landau", {"a": -3.0, "b": 0.1}, 6.0),         # … and at η = 0 when the well is shallow
    ("gate", {"a": 0.1, "b": 0.1}, 1.4),
    ("sequence", {"alpha": 1.0, "beta": 1.0}, 14.0),  # f'' = 2α + 12β(1−η)², largest at η = 0
    ("compression", {"a": 1.0, "b": 1.0, "target": 0.25}, 2.0 + 12 * 0.75 ** 2),
    ("polynomial", {"coeffs": (0.0, 0.0, 1.0)}, 12.0),  # P2(ξ) = (3ξ² − 1)/2, f'' = 4·3 = 12
])
def test_module_bound_values(kind, params, expected):
    bound, worst = _module_case(kind, params)
    assert bound == pytest.approx(expected) and worst == pytest.approx(expected)


def test_damped_benefit_bound_is_exact_for_integer_powers_and_absent_in_between():
    one = np.ones(1)
    p = {"delta": np.array([0.5]), "damping": np.array([2.0]), "positive_scale": np.array([1.5]),
         "negative_scale": np.array([1.0])}
    ii, jj, ij = DampedGateBenefitCoupling.curvature_bound(np, one, p | {"eta_power": np.array([3.0])})
    assert ii[0] == pytest.approx(1.5 * 3 * 2) and jj[0] == 0 and ij[0] == 0  # |c|p(p−1), c = 2·1.5·0.5
    assert DampedGateBenefitCoupling.curvature_bound(np, one, p | {"eta_power": np.array([1.0])})[0][0] == 0
    assert DampedGateBenefitCoupling.curvature_bound(np, one, p | {"eta_power": np.array([1.5])}) is None
    # one edge with 1 < p < 2 among many is enough: no finite bound holds for the kind's group
    mixed = {k: np.repeat(v, 2) for k, v in p.items()} | {"eta_power": np.array([2.0, 1.5])}
    assert DampedGateBenefitCoupling.curvature_bound(np, np.ones(2), mixed) is None


def _damped_system(power: float) -> System:
    return System(id="damped", modules=[GateModule(id="g", a=0.2, b=0.2), LandauModule(id="m", a=0.5, b=1.0)],
                  couplings=[DampedGateBenefitCoupling(id="d", i="g", j="m", delta=0.4, eta_power=power)])


def test_stability_guard_refuses_a_damped_benefit_without_a_bound():
    system = _damped_system(1.5)
    relax(system, RelaxConfig(steps=5))  # without the guard the kind relaxes normally
    with pytest.raises(InvalidEntityError) as info:
        relax(system, RelaxConfig(steps=5, stability=StabilityConfig()))
    assert info.value.field == "eta_power" and "eta_power" in str(info.value)
    assert relax(_damped_system(2.0), RelaxConfig(steps=5, stability=StabilityConfig())).steps == 5
