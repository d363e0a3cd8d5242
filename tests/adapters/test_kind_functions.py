"""The SQL functions through which the views evaluate each kind's own formula."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import (
    DampedGateBenefitCoupling,
    GateBenefitCoupling,
    LandauModule,
    PolynomialModule,
    QuadraticCoupling,
)


@pytest.fixture
def store():
    with DuckDBStore(":memory:") as s:
        yield s


def _json(entity) -> str:
    return entity.model_dump_json()


def test_module_energy_is_the_kinds_formula_for_each_row(store):
    landau, poly = LandauModule(id="l", a=-1.0, h=0.2), PolynomialModule(id="p", coeffs=(0.1, -0.3, 0.5, 0.2))
    eta = [0.0, 0.3, 1.0]
    rows = store.query("SELECT cfc_module_energy(k, e, x) AS f FROM (VALUES (1, 'landau', ?, ?), (2, 'polynomial', ?, ?),"
                       " (3, 'no_such_kind', '{}', [0.5]), (4, 'landau', ?, NULL)) AS t(n, k, e, x) ORDER BY n",
                       [_json(landau), eta, _json(poly), eta[:2], _json(landau)])["f"].to_list()
    for got, m, x in ((rows[0], landau, eta), (rows[1], poly, eta[:2])):
        want = type(m).energy_grad(np, np.array(x), type(m).parameter_arrays([m]))[0]
        assert got == pytest.approx(want.tolist(), abs=1e-15)
    assert rows[2] == [None] and rows[3] is None  # an unknown kind is NULL; so is a NULL list


def test_coupling_energy_and_the_gate_benefit_flag(store):
    edge = GateBenefitCoupling(id="e", i="g", j="m", delta=0.4)
    row = store.query("SELECT cfc_coupling_energy('gate_benefit', ?, [0.0, 0.5], [0.9, 0.9]) AS phi, "
                      "cfc_gate_benefit('gate_benefit') AS a, cfc_gate_benefit('damped_gate_benefit') AS b, "
                      "cfc_gate_benefit('quadratic') AS c, cfc_gate_benefit('no_such_kind') AS d", [_json(edge)]).row(0)
    assert row[0] == pytest.approx([0.0, -0.2]) and row[1:] == (True, True, False, None)
    assert DampedGateBenefitCoupling.gate_benefit and not QuadraticCoupling.gate_benefit
