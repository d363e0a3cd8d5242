"""Every kind's gradient and Hessian diagonal against finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.entities import coupling_kinds, module_kinds

from .kind_cases import COUPLING_CASES, MODULE_CASES

etas = st.floats(0.01, 0.99, allow_nan=False)
H = 1e-6


def _arrays(cls, params):
    """Parameter arrays as the compiler builds them (some, like a polynomial's, are computed)."""
    entity = cls(id="e", i="a", j="b", **params) if "i" in cls.model_fields else cls(id="e", **params)
    return {name: np.array([getattr(entity, name)], dtype=np.float64) for name in cls.params}


def test_every_kind_has_a_case():
    assert set(module_kinds.kinds()) <= set(MODULE_CASES), "add a case to kind_cases.MODULE_CASES"
    assert set(coupling_kinds.kinds()) <= set(COUPLING_CASES), "add a case to kind_cases.COUPLING_CASES"


@settings(max_examples=60, deadline=None)
@given(data=st.data(), eta=etas)
def test_module_gradient_and_curvature_match_finite_differences(data, eta):
    kind = data.draw(st.sampled_from(sorted(MODULE_CASES)))
    cls = module_kinds[kind]
    params = data.draw(MODULE_CASES[kind])
    p = _arrays(cls, params)
    x = np.array([eta])
    f, g = cls.energy_grad(np, x, p)
    (fp, gp), (fm, gm) = cls.energy_grad(np, x + H, p), cls.energy_grad(np, x - H, p)
    assert np.allclose(g, (fp - fm) / (2 * H), rtol=1e-5, atol=1e-6), kind
    assert np.allclose(cls.hessian_diagonal(np, x, p), (gp - gm) / (2 * H), rtol=1e-5, atol=1e-5), kind


@settings(max_examples=60, deadline=None)
@given(data=st.data(), eta_i=etas, eta_j=etas)
def test_coupling_gradients_and_curvatures_match_finite_differences(data, eta_i, eta_j):
    kind = data.draw(st.sampled_from(sorted(COUPLING_CASES)))
    cls = coupling_kinds[kind]
    params = data.draw(COUPLING_CASES[kind])
    p = _arrays(cls, params)
    xi, xj = np.array([eta_i]), np.array([eta_j])
    if abs(params.get("beta", 1.0) * eta_j - params.get("alpha", 1.0) * eta_i) < 1e-4:  # off the hinges' kink
        return
    _, gi, gj = cls.energy_grad(np, xi, xj, p)
    fi = [cls.energy_grad(np, xi + s, xj, p) for s in (H, -H)]
    fj = [cls.energy_grad(np, xi, xj + s, p) for s in (H, -H)]
    assert np.allclose(gi, (fi[0][0] - fi[1][0]) / (2 * H), rtol=1e-5, atol=1e-6), kind
    assert np.allclose(gj, (fj[0][0] - fj[1][0]) / (2 * H), rtol=1e-5, atol=1e-6), kind
    hi, hj = cls.hessian_diagonal(np, xi, xj, p)
    assert np.allclose(hi, (fi[0][1] - fi[1][1]) / (2 * H), rtol=1e-5, atol=1e-5), kind
    assert np.allclose(hj, (fj[0][2] - fj[1][2]) / (2 * H), rtol=1e-5, atol=1e-5), kind


def test_formulas_are_vectorised_over_entities():
    cls = module_kinds["landau"]
    rng = np.random.default_rng(0)
    eta = rng.uniform(0, 1, 1000)
    p = {"a": rng.uniform(-1, 1, 1000), "b": rng.uniform(0.5, 1.5, 1000), "h": rng.uniform(-0.2, 0.2, 1000)}
    f, g = cls.energy_grad(np, eta, p)
    k = 123
    fk, gk = cls.energy_grad(np, eta[k:k + 1], {n: v[k:k + 1] for n, v in p.items()})
    assert f.shape == (1000,) and f[k] == fk[0] and g[k] == gk[0]
