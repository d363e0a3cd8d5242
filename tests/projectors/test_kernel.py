"""The fused evaluation gives the bits of the plain formula, whatever shortcut it takes.

The reference below is the evaluation written plainly (every term weighted,
``∂_jφ`` from ``energy_grad``, one concatenate and one scatter-add). The
kernel skips multiplying by unit weights, scatters an antisymmetric kind's
``w∂_iφ`` negated, writes into a reused array and builds the
projected-gradient residual in place; each shortcut must leave every bit as
it was.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    AbstractModule,
    AsymmetricHingeCoupling,
    DampedGateBenefitCoupling,
    DirectedHingeCoupling,
    GateBenefitCoupling,
    GateModule,
    LandauModule,
    QuadraticCoupling,
    System,
    module_kinds,
    standard_system,
)
from complexity_from_constraints.projectors import NumpyBackend, compile_system, energy_and_gradient
from complexity_from_constraints.projectors._compile import _plan
from complexity_from_constraints.projectors._coordinator import projected_gradient_norm, unchanged
from complexity_from_constraints.projectors._solvers import box_step


def plain(cs, eta):
    """``energy_and_gradient`` as the formula reads, no pass saved."""
    xp = np
    energy, grad = cs.constant, np.zeros_like(eta)
    for g in cs.modules:
        f, df = g.cls.energy_grad(xp, eta[g.index], g.params)
        energy += float(np.sum(g.weight * f))
        grad[g.index] = g.weight * df
    if cs.couplings:
        firsts, seconds = [], []
        for c in cs.couplings:
            phi, di, dj = c.cls.energy_grad(xp, eta[c.i], eta[c.j], c.params)
            energy += float(np.sum(c.weight * phi))
            firsts.append(c.weight * di)
            seconds.append(c.weight * dj)
        grad = grad + cs.backend.scatter_add(cs.edge_index, np.concatenate(firsts + seconds), cs.n)
    return energy, grad


def mixed_system(n: int, seed: int, unit: bool) -> System:
    rng = np.random.default_rng(seed)
    weight = (lambda: 1.0) if unit else (lambda: float(rng.uniform(0.1, 2.0)))
    modules = [LandauModule(id=f"m{k}", a=float(rng.uniform(-1, 1)), h=float(rng.uniform(-0.2, 0.2)), weight=weight())
               for k in range(n)]
    modules += [GateModule(id=f"g{k}", cost=float(rng.uniform(0, 0.3)), weight=weight()) for k in range(3)]
    couplings = []
    for e in range(3 * n):
        i, j = (int(x) for x in rng.choice(n, 2, replace=False))
        kind = e % 3
        if kind == 0:
            couplings.append(QuadraticCoupling(id=f"q{e}", i=f"m{i}", j=f"m{j}", weight=weight()))
        elif kind == 1:
            couplings.append(DirectedHingeCoupling(id=f"h{e}", i=f"m{i}", j=f"m{j}", weight=weight()))
        else:
            couplings.append(AsymmetricHingeCoupling(id=f"a{e}", i=f"m{i}", j=f"m{j}", alpha=float(rng.uniform(0, 2)),
                                                     beta=float(rng.uniform(0, 2)), weight=weight()))
    couplings += [GateBenefitCoupling(id=f"b{k}", i=f"g{k}", j=f"m{k}", delta=0.3, weight=weight()) for k in range(3)]
    couplings += [DampedGateBenefitCoupling(id="d0", i="g0", j="m5", delta=-0.4, eta_power=2.0)]
    return System(id="mixed", modules=modules, couplings=couplings)


def bits(energy, grad) -> tuple:
    return float(energy).hex(), np.asarray(grad).tobytes()


@pytest.mark.parametrize("unit", [True, False])
def test_the_kernel_gives_the_bits_of_the_plain_formula(unit):
    cs = compile_system(mixed_system(40, seed=3, unit=unit))
    rng = np.random.default_rng(4)
    points = [rng.uniform(0, 1, cs.n), np.zeros(cs.n), np.ones(cs.n), rng.integers(0, 2, cs.n).astype(float)]
    for eta in points * 2:  # twice: the reused value array must not carry anything over
        assert bits(*energy_and_gradient(cs, eta)) == bits(*plain(cs, eta))


@pytest.mark.parametrize("family", [{}, {"landau": 0.75, "quadratic": 1.5, "directed_hinge": 0.3}])
def test_the_built_in_kinds_in_place_formulas_give_the_bits_of_their_own(family):
    """The standard family (one Landau group holding every module) takes the in-place formulas, weighted or not."""
    system = standard_system(300, seed=12).evolve(family_weights=family)
    cs = compile_system(system)
    energy_and_gradient(cs, np.zeros(cs.n))
    plan = _plan(cs)
    assert all(k is not None for k in plan.module_kernels) and all(k is not None for k in plan.coupling_kernels)
    rng = np.random.default_rng(13)
    eta = rng.uniform(0, 1, cs.n)
    ties = eta.copy()
    ties[cs.couplings[1].j] = ties[cs.couplings[1].i]  # hinge gaps of exactly zero
    for point in (eta, ties, np.zeros(cs.n), np.ones(cs.n), rng.integers(0, 2, cs.n).astype(float)):
        assert bits(*energy_and_gradient(cs, point)) == bits(*plain(cs, point))


def test_a_kind_that_overrides_a_built_in_formula_keeps_its_own():
    class ShiftedLandauExample(LandauModule):
        kind: Literal["shifted_landau_example"] = "shifted_landau_example"

        @staticmethod
        def energy_grad(xp, eta, p):
            f, df = LandauModule.energy_grad(xp, eta, p)
            return f + 1.0, df

    try:
        system = System(id="shift", modules=[ShiftedLandauExample(id="a", a=-1.0), LandauModule(id="b")],
                        couplings=[QuadraticCoupling(id="ab", i="a", j="b")])
        cs = compile_system(system)
        eta = np.array([0.5, 0.25])
        assert bits(*energy_and_gradient(cs, eta)) == bits(*plain(cs, eta))
        assert [k is None for k in _plan(cs).module_kernels] == [True, False]
    finally:
        module_kinds.unregister("shifted_landau_example")


def test_the_returned_gradient_is_the_callers_own():
    cs = compile_system(mixed_system(20, seed=5, unit=True))
    eta = np.random.default_rng(6).uniform(0, 1, cs.n)
    _, first = energy_and_gradient(cs, eta)
    kept = first.copy()
    first += 1.0  # a solver may change what it got
    energy_and_gradient(cs, eta + 0.0)
    _, again = energy_and_gradient(cs, eta)
    assert again.tobytes() == kept.tobytes()


def test_a_unit_weight_kind_that_returns_a_parameter_is_not_written_through():
    """The kind is defined inside the test: a kind defined at import would be registered for every test."""

    class SlopeExample(AbstractModule):
        """f = s·η, whose derivative is the parameter array itself."""

        kind: Literal["slope_example"] = "slope_example"
        params: ClassVar[tuple[str, ...]] = ("s",)
        s: float = 0.0

        @staticmethod
        def energy_grad(xp, eta, p):
            return p["s"] * eta, p["s"]

        @staticmethod
        def hessian_diagonal(xp, eta, p):
            return 0 * eta

    try:
        system = System(id="lin", modules=[SlopeExample(id="a", s=0.5), SlopeExample(id="b", s=0.25)],
                        couplings=[QuadraticCoupling(id="ab", i="a", j="b")])
        cs = compile_system(system)
        params = cs.modules[0].params["s"]
        before = params.copy()
        for _ in range(2):
            energy, grad = energy_and_gradient(cs, np.array([0.5, 0.0]))
            assert energy == 0.25 + 0.25 and grad.tolist() == [0.5 + 1.0, 0.25 - 1.0]
        assert params.tobytes() == before.tobytes()
    finally:
        module_kinds.unregister("slope_example")


@pytest.mark.parametrize("cls", [QuadraticCoupling, DirectedHingeCoupling])
def test_an_antisymmetric_kind_has_the_negated_derivative_at_j(cls):
    rng = np.random.default_rng(7)
    ei, ej = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    phi, di, dj = cls.energy_grad(np, ei, ej, {})
    assert cls.antisymmetric and dj.tobytes() == (-di).tobytes()
    phi_i, di_i = cls.energy_grad_i(np, ei, ej, {})
    assert phi.tobytes() == phi_i.tobytes() and di.tobytes() == di_i.tobytes()


def test_float32_takes_the_general_path_and_agrees():
    cs = compile_system(mixed_system(15, seed=8, unit=False), NumpyBackend("float32"))
    eta = np.random.default_rng(9).uniform(0, 1, cs.n).astype(np.float32)
    energy, grad = energy_and_gradient(cs, eta)
    assert grad.dtype == np.float32
    assert bits(energy, grad) == bits(*plain(cs, eta))


def test_the_in_place_residual_and_step_give_the_plain_bits():
    be = NumpyBackend()
    rng = np.random.default_rng(10)
    eta, grad = rng.uniform(0, 1, 3000), rng.normal(0, 2, 3000)
    r = eta - np.clip(eta - grad, 0.0, 1.0)
    assert projected_gradient_norm(be, eta, grad).hex() == float(np.sqrt(np.sum(r * r))).hex()
    assert box_step(be, eta, 0.3, grad).tobytes() == np.clip(eta - 0.3 * grad, 0.0, 1.0).tobytes()


def test_unchanged_looks_at_every_element():
    be = NumpyBackend()
    eta = np.random.default_rng(11).uniform(0, 1, 5000)
    assert unchanged(be, eta.copy(), eta)
    for k in (0, 1023, 1024, 4999):
        moved = eta.copy()
        moved[k] = np.nextafter(moved[k], 2.0)
        assert not unchanged(be, moved, eta)


def test_a_cached_compile_keeps_its_index_arrays_read_only_and_the_evaluation_gathers_through_writable_ones():
    """numpy's take and bincount copy a read-only index array at every call: the evaluation reads the writable
    array under each read-only view the cache hands out, and nothing a caller sees can be written."""
    from complexity_from_constraints.entities import standard_array_system

    cs = compile_system(standard_array_system(500, seed=4))
    energy_and_gradient(cs, np.full(cs.n, 0.5))
    plan = _plan(cs)
    assert not cs.edge_index.flags.writeable and plan.edge_index.flags.writeable
    assert np.shares_memory(plan.edge_index, cs.edge_index)
    for c, (i, j) in zip(cs.couplings, plan.ends):
        assert not c.i.flags.writeable and not c.j.flags.writeable
        assert i.flags.writeable and j.flags.writeable
        assert np.array_equal(i, c.i) and np.array_equal(j, c.j) and np.shares_memory(i, c.i)
    with pytest.raises(ValueError, match="read-only"):
        cs.edge_index[0] = 1
