"""The new module and coupling kinds: derivatives, relaxation, validation, JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.entities import (
    AsymmetricHingeCoupling,
    CompressionModule,
    ConnectivityModule,
    DampedGateBenefitCoupling,
    GateModule,
    InvalidEntityError,
    LandauModule,
    NashModule,
    PolynomialModule,
    RelaxConfig,
    SequenceModule,
    System,
    apc_basis,
)
from complexity_from_constraints.projectors import compile_system, energy, relax

H = 1e-6
RTOL, ATOL = 1e-5, 1e-6
nonneg = st.floats(0.0, 5.0)
eta_value = st.floats(0.01, 0.99)


def _params(cls, members):
    """Parameter arrays exactly as ``compile_system`` builds them."""
    return {p: np.asarray([getattr(m, p) for m in members], dtype=np.float64) for p in cls.params}


def _finite(x):
    return st.floats(-x, x)


@st.composite
def _polynomial(draw):
    if draw(st.booleans()):
        return {"coeffs": tuple(draw(st.lists(_finite(1.0), min_size=1, max_size=13)))}
    degree = draw(st.integers(0, 5))
    seed = draw(st.integers(0, 2**16))
    basis = apc_basis(np.random.default_rng(seed).uniform(-1, 1, 40), degree)
    coeffs = tuple(draw(st.lists(_finite(1.0), min_size=1, max_size=degree + 1)))
    return {"basis": "apc", "coeffs": coeffs, "apc_basis": tuple(map(tuple, basis.tolist()))}


MODULE_FIELDS = {
    SequenceModule: st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    ConnectivityModule: st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    NashModule: st.fixed_dictionaries({"a": nonneg, "b": nonneg, "row_payoffs": st.just(((3.0, 0.0), (5.0, 1.0))),
                                       "col_payoffs": st.just(((3.0, 5.0), (0.0, 1.0)))}),
    CompressionModule: st.fixed_dictionaries({"a": nonneg, "b": nonneg, "target": st.floats(0.0, 1.0)}),
    PolynomialModule: _polynomial(),
}

COUPLING_FIELDS = {
    AsymmetricHingeCoupling: st.fixed_dictionaries({"alpha": nonneg, "beta": nonneg}),
    DampedGateBenefitCoupling: st.fixed_dictionaries({
        "delta": _finite(2.0), "damping": nonneg, "eta_power": st.floats(1.0, 4.0),
        "positive_scale": nonneg, "negative_scale": nonneg}),
}


@pytest.mark.parametrize("cls", list(MODULE_FIELDS), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_module_derivatives_match_finite_differences(cls, data):
    fields = data.draw(st.lists(MODULE_FIELDS[cls], min_size=1, max_size=4))
    members = [cls(id=f"m{k}", **kw) for k, kw in enumerate(fields)]
    eta = np.asarray(data.draw(st.lists(eta_value, min_size=len(members), max_size=len(members))))
    p = _params(cls, members)
    f, df = cls.energy_grad(np, eta, p)
    assert f.shape == df.shape == eta.shape
    fd = (cls.energy_grad(np, eta + H, p)[0] - cls.energy_grad(np, eta - H, p)[0]) / (2 * H)
    np.testing.assert_allclose(df, fd, rtol=RTOL, atol=ATOL)
    d2 = cls.hessian_diagonal(np, eta, p)
    fd2 = (cls.energy_grad(np, eta + H, p)[1] - cls.energy_grad(np, eta - H, p)[1]) / (2 * H)
    np.testing.assert_allclose(d2, fd2, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls", list(COUPLING_FIELDS), ids=lambda c: c.__name__)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_coupling_derivatives_match_finite_differences(cls, data):
    fields = data.draw(st.lists(COUPLING_FIELDS[cls], min_size=1, max_size=4))
    members = [cls(id=f"c{k}", i="a", j="b", **kw) for k, kw in enumerate(fields)]
    n = len(members)
    ei = np.asarray(data.draw(st.lists(eta_value, min_size=n, max_size=n)))
    ej = np.asarray(data.draw(st.lists(eta_value, min_size=n, max_size=n)))
    p = _params(cls, members)
    if cls is AsymmetricHingeCoupling:  # stay off the kink of the hinge
        gap = p["beta"] * ej - p["alpha"] * ei
        ok = np.abs(gap) > 1e-4 + 10 * H * (p["alpha"] + p["beta"])
        ei, ej, p = ei[ok], ej[ok], {k: v[ok] for k, v in p.items()}
    phi, di, dj = cls.energy_grad(np, ei, ej, p)
    hi, hj = cls.hessian_diagonal(np, ei, ej, p)
    fdi = (cls.energy_grad(np, ei + H, ej, p)[0] - cls.energy_grad(np, ei - H, ej, p)[0]) / (2 * H)
    fdj = (cls.energy_grad(np, ei, ej + H, p)[0] - cls.energy_grad(np, ei, ej - H, p)[0]) / (2 * H)
    np.testing.assert_allclose(di, fdi, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dj, fdj, rtol=RTOL, atol=ATOL)
    fhi = (cls.energy_grad(np, ei + H, ej, p)[1] - cls.energy_grad(np, ei - H, ej, p)[1]) / (2 * H)
    fhj = (cls.energy_grad(np, ei, ej + H, p)[2] - cls.energy_grad(np, ei, ej - H, p)[2]) / (2 * H)
    np.testing.assert_allclose(hi, fhi, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(hj, fhj, rtol=RTOL, atol=ATOL)


def test_asymmetric_hinge_is_zero_off_its_active_set():
    p = {"alpha": np.array([2.0, 1.0]), "beta": np.array([1.0, 0.0])}
    ei, ej = np.array([0.5, 0.2]), np.array([0.9, 0.9])  # β η_j − α η_i = −0.1 and −0.2
    assert all(np.all(x == 0) for x in AsymmetricHingeCoupling.energy_grad(np, ei, ej, p))
    assert all(np.all(x == 0) for x in AsymmetricHingeCoupling.hessian_diagonal(np, ei, ej, p))


@pytest.mark.parametrize("power", [1.0, 1.5, 2.0, 3.0])
def test_damped_gate_benefit_is_finite_at_a_closed_gate(power):
    p = {k: np.array([v]) for k, v in dict(delta=0.7, damping=1.0, eta_power=power,
                                           positive_scale=2.0, negative_scale=0.5).items()}
    zero = np.array([0.0])
    phi, di, dj = DampedGateBenefitCoupling.energy_grad(np, zero, zero, p)
    hi, hj = DampedGateBenefitCoupling.hessian_diagonal(np, zero, zero, p)
    assert np.all(np.isfinite([phi, di, dj, hi, hj]))
    assert di[0] == (-1.4 if power == 1.0 else 0.0)  # the "redemption" pull survives only for p = 1
    assert hi[0] == (-1.4 * 2.0 if power == 2.0 else 0.0)


def test_damped_gate_benefit_scales_by_the_sign_of_delta():
    base = dict(damping=1.0, eta_power=1.0, positive_scale=2.0, negative_scale=0.5)
    eta = np.array([0.5])
    for delta, scale in ((0.4, 2.0), (-0.4, 0.5)):
        p = {k: np.array([v]) for k, v in dict(base, delta=delta).items()}
        phi, di, _ = DampedGateBenefitCoupling.energy_grad(np, eta, eta, p)
        assert phi[0] == pytest.approx(-scale * delta * 0.5) and di[0] == pytest.approx(-scale * delta)


def _landau(mid, eta0, a=0.2):
    return LandauModule(id=mid, a=a, b=1.0, eta0=eta0)


SMOKE = {
    "sequence": ([SequenceModule(id="x", observation=(3.0, 1.0, 2.0, 0.0))], []),
    "connectivity": ([ConnectivityModule(id="x", grid_n=6, bond_p=0.3, seed=1)], []),
    "nash": ([NashModule.prisoners_dilemma("x", p_row=0.0, p_col=0.2)], []),
    "compression": ([CompressionModule(id="x", a=1.0, b=1.0, target=0.8, eta0=0.1)], []),
    "polynomial": ([PolynomialModule(id="x", coeffs=(0.0, 1.0, 0.5), eta0=0.9),
                    PolynomialModule(id="y", basis="apc", coeffs=(0.0, 1.0), eta0=0.8,
                                     apc_basis=tuple(map(tuple, apc_basis(np.linspace(-1, 1, 9), 2).tolist())))], []),
    "logistic_gate": ([GateModule(id="x", gain=0.3, a=1.0, measurement="logistic")], []),
    "straight_through_gate": ([GateModule(id="x", gain=0.3, a=1.0, measurement="straight_through")], []),
    "asymmetric_hinge": ([_landau("x", 0.1), _landau("y", 0.9)],
                         [AsymmetricHingeCoupling(id="e", i="x", j="y", alpha=1.0, beta=2.0, weight=5.0)]),
    "damped_gate_benefit": ([GateModule(id="g"), _landau("y", 0.5)],
                            [DampedGateBenefitCoupling(id="e", i="g", j="y", delta=2.0, eta_power=2.0)]),
}


@pytest.mark.parametrize("kind", list(SMOKE))
def test_each_kind_relaxes_inside_a_system(kind):
    modules, couplings = SMOKE[kind]
    system = System(id="s", modules=modules, couplings=couplings)
    cs = compile_system(system)
    eta0 = np.array([m.initial_eta() for m in system.modules])
    e0 = energy(cs, eta0)
    result = relax(system, RelaxConfig(steps=50))
    assert np.all((result.eta >= 0) & (result.eta <= 1))
    assert result.energy < e0 - 1e-6
    assert result.energy == pytest.approx(energy(cs, result.eta))
    assert System.model_validate_json(system.model_dump_json()) == system


def test_relaxation_moves_each_kind_the_right_way():
    r = relax(System(id="s", modules=SMOKE["sequence"][0]), RelaxConfig(steps=200, step_size=0.1))
    assert r.eta_of("x") > SequenceModule(id="x", observation=(3.0, 1.0, 2.0, 0.0)).initial_eta()
    modules, couplings = SMOKE["damped_gate_benefit"]
    r = relax(System(id="s", modules=modules, couplings=couplings), RelaxConfig(steps=200, step_size=0.1))
    assert r.eta_of("g") > 0.5 > GateModule(id="g").initial_eta()  # the benefit opens the closed gate


BAD = [
    (SequenceModule, {"alpha": -1}, "alpha", "-1"),
    (SequenceModule, {"observation": (1.0,)}, "observation", "(1.0,)"),
    (SequenceModule, {"samples": 0}, "samples", "0"),
    (SequenceModule, {"mode": "guess"}, "mode", "'guess'"),
    (ConnectivityModule, {"bond_p": 1.5}, "bond_p", "1.5"),
    (ConnectivityModule, {"grid_n": 0}, "grid_n", "0"),
    (NashModule, {"a": -2.0, "row_payoffs": ((1, 0), (0, 1)), "col_payoffs": ((1, 0), (0, 1))}, "a", "-2.0"),
    (NashModule, {"p_row": 1.5, "row_payoffs": ((1, 0), (0, 1)), "col_payoffs": ((1, 0), (0, 1))}, "p_row", "1.5"),
    (NashModule, {"row_payoffs": ((1, float("nan")), (0, 1)), "col_payoffs": ((1, 0), (0, 1))},
     "row_payoffs.0.1", "nan"),
    (CompressionModule, {"target": 1.5}, "target", "1.5"),
    (CompressionModule, {"b": -0.1}, "b", "-0.1"),
    (PolynomialModule, {"coeffs": ()}, "coeffs", "()"),
    (PolynomialModule, {"coeffs": (1.0,) * 14}, "coeffs", "1.0"),
    (PolynomialModule, {"coeffs": (1.0,), "basis": "apc"}, "apc_basis", "None"),
    (PolynomialModule, {"coeffs": (1.0, 2.0), "basis": "apc", "apc_basis": ((1.0,),)}, "apc_basis", "1 rows"),
    (GateModule, {"k": 0.0, "measurement": "logistic"}, "k", "0.0"),
    (GateModule, {"st_threshold": 2.0, "measurement": "straight_through"}, "st_threshold", "2.0"),
    (GateModule, {"measurement": "psychic"}, "measurement", "psychic"),
    (AsymmetricHingeCoupling, {"i": "a", "j": "b", "alpha": -1}, "alpha", "-1"),
    (DampedGateBenefitCoupling, {"i": "a", "j": "b", "eta_power": 0.5}, "eta_power", "0.5"),
    (DampedGateBenefitCoupling, {"i": "a", "j": "b", "negative_scale": -3}, "negative_scale", "-3"),
]


@pytest.mark.parametrize("cls, fields, field, value", BAD, ids=[f"{c.__name__}-{f}" for c, _, f, _ in BAD])
def test_invalid_parameters_name_entity_field_and_value(cls, fields, field, value):
    with pytest.raises(InvalidEntityError) as info:
        cls(id="s", **fields)
    message = str(info.value)
    assert "'s'" in message and field in message and value in message
    assert info.value.entity_id == "s" and info.value.field == field


def test_invalid_parameters_from_dicts_are_named_too():
    with pytest.raises(InvalidEntityError, match=r"'bad'.*alpha.*-1"):
        System.model_validate({"id": "s", "modules": [{"kind": "sequence", "id": "bad", "alpha": -1}]})


def test_damped_gate_benefit_needs_a_gate_at_i():
    with pytest.raises(InvalidEntityError, match=r"'e'.*'i'"):
        System(id="s", modules=[_landau("x", 0.5), _landau("y", 0.5)],
               couplings=[DampedGateBenefitCoupling(id="e", i="x", j="y", delta=1.0)])


def test_prisoners_dilemma_needs_the_pd_ordering():
    with pytest.raises(InvalidEntityError, match=r"'n'.*T, R, P, S"):
        NashModule.prisoners_dilemma("n", T=1.0, R=3.0)


def test_gate_variants_measure_like_their_names():
    logistic = GateModule(id="g", gain=0.1, cost=0.05, k=10.0, measurement="logistic")
    assert logistic.initial_eta() == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert GateModule(id="g", gain=-1e6, measurement="logistic").initial_eta() == 0.0  # no overflow
    hard = GateModule(id="g", gain=0.0, cost=0.1, k=10.0, st_threshold=0.25, measurement="straight_through")
    assert hard.initial_eta() == 1.0  # soft hazard η = 0.2689 ≥ 0.25
    assert hard.evolve(st_threshold=0.3).initial_eta() == 0.0
