"""Measurements against brute force: monotonicity, connectivity, regret, polynomial bases."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.entities import (
    MAX_DEGREE,
    ConnectivityModule,
    InvalidEntityError,
    NashModule,
    PolynomialModule,
    SequenceModule,
    System,
    apc_basis,
    count_inversions,
    grid_bond_percolation,
    largest_component_fraction,
    monotonicity,
    nash_eta,
    regret,
    replicator_step,
)
from complexity_from_constraints.projectors import compile_system, energy_and_gradient

PD_A = ((3.0, 0.0), (5.0, 1.0))  # row player: [[R, S], [T, P]]
PD_B = ((3.0, 5.0), (0.0, 1.0))  # column player: B[r][c], row plays r, column plays c


def _ordered_fraction(values):
    n = len(values)
    ordered = sum(values[i] <= values[j] for i in range(n) for j in range(i + 1, n))
    return ordered / (n * (n - 1) // 2)


sequences = st.lists(st.integers(-5, 5), min_size=2, max_size=70)  # small range: many ties


@settings(max_examples=200, deadline=None)
@given(values=sequences)
def test_exact_monotonicity_matches_the_double_loop(values):
    assert monotonicity(values) == pytest.approx(_ordered_fraction(values), abs=1e-12)
    n = len(values)
    assert count_inversions(values) == sum(values[i] > values[j] for i in range(n) for j in range(i + 1, n))


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_exact_monotonicity_on_floats(values):
    assert monotonicity(values) == pytest.approx(_ordered_fraction(values), abs=1e-12)


def test_exact_monotonicity_scales():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 1000, 200_000)
    eta = monotonicity(v)
    assert 0.49 < eta < 0.51
    assert monotonicity(np.sort(v)) == 1.0 and monotonicity(np.sort(v)[::-1]) < 1e-2


@pytest.mark.parametrize("seed", range(20))
def test_sampled_monotonicity_is_within_its_confidence_bound(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 300))
    values = np.cumsum(rng.normal(0.2, 1.0, n)).round(1)  # a noisy trend, with ties
    samples = 512
    est = monotonicity(values, mode="sampled", samples=samples, seed=seed)
    assert abs(est - monotonicity(values)) <= 4 * math.sqrt(0.25 / samples)  # 4 standard errors
    assert monotonicity(values, mode="sampled", samples=samples, seed=seed) == est  # deterministic


def test_sampled_pairs_are_uniform_over_all_pairs():
    # Only pairs that end at the last index are unordered: 9 of 45, so η = 0.8. The
    # original sampler (i uniform, then j uniform above i) hits them far too often (η ≈ 0.69).
    values = [0.0] * 9 + [-1.0]
    est = monotonicity(values, mode="sampled", samples=40_000, seed=3)
    assert abs(est - 0.8) < 4 * math.sqrt(0.16 / 40_000)


def test_sequence_module_measures_its_observation():
    obs = (0.0, 2.0, 1.0, 3.0, 3.0, -1.0)
    exact = SequenceModule(id="s", observation=obs)
    assert exact.initial_eta() == pytest.approx(_ordered_fraction(obs))
    sampled = SequenceModule(id="s", observation=obs, mode="sampled", samples=64, seed=7)
    assert sampled.initial_eta() == monotonicity(obs, mode="sampled", samples=64, seed=7)
    assert SequenceModule(id="s", eta0=0.25).initial_eta() == 0.25
    assert exact.measure([2.0, 1.0]) == 0.0


@pytest.mark.parametrize("values", [[], [1.0]])
def test_monotonicity_needs_two_values(values):
    with pytest.raises(InvalidEntityError, match="at least 2"):
        monotonicity(values)
    with pytest.raises(InvalidEntityError, match=r"'s'.*values.*at least 2"):
        SequenceModule(id="s").measure(values)


def test_monotonicity_rejects_bad_arguments():
    with pytest.raises(InvalidEntityError, match="samples"):
        monotonicity([1, 2], mode="sampled", samples=0)
    with pytest.raises(InvalidEntityError, match="mode"):
        monotonicity([1, 2], mode="fast")  # type: ignore[arg-type]
    with pytest.raises(InvalidEntityError, match="finite"):
        monotonicity([1.0, float("nan")])


def _union_find_fraction(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    sizes: dict[int, int] = {}
    for x in range(n):
        sizes[find(x)] = sizes.get(find(x), 0) + 1
    return max(sizes.values()) / n


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_largest_component_fraction_matches_union_find(data, n):
    edges = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    expected = _union_find_fraction(n, edges)
    assert largest_component_fraction(graph) == pytest.approx(expected)
    assert ConnectivityModule(id="c").measure(graph) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_percolation_grid_matches_union_find_and_is_seeded(seed):
    g = grid_bond_percolation(12, 0.5, shortcut_fraction=0.1, seed=seed)
    assert g.number_of_nodes() == 144 and nx.number_of_selfloops(g) == 0
    assert largest_component_fraction(g) == pytest.approx(_union_find_fraction(144, list(g.edges)))
    again = grid_bond_percolation(12, 0.5, shortcut_fraction=0.1, seed=seed)
    assert sorted(g.edges) == sorted(again.edges)


def test_percolation_extremes_and_shortcuts():
    n = 7
    full = grid_bond_percolation(n, 1.0)
    assert full.number_of_edges() == 2 * n * (n - 1) and largest_component_fraction(full) == 1.0
    empty = grid_bond_percolation(n, 0.0, shortcut_fraction=3.0)
    assert empty.number_of_edges() == 0 and largest_component_fraction(empty) == 1 / n**2
    kept = 2 * n * (n - 1)
    extra = grid_bond_percolation(n, 1.0, shortcut_fraction=0.5, seed=2)
    assert kept < extra.number_of_edges() <= kept + kept // 2
    assert grid_bond_percolation(1, 1.0, shortcut_fraction=1.0).number_of_nodes() == 1


def test_connectivity_module_regenerates_its_observation():
    m = ConnectivityModule(id="c", grid_n=10, bond_p=0.55, shortcut_fraction=0.05, seed=4)
    assert m.initial_eta() == largest_component_fraction(grid_bond_percolation(10, 0.55, 0.05, seed=4))
    assert ConnectivityModule(id="c", eta0=0.3).initial_eta() == 0.3
    with pytest.raises(InvalidEntityError, match=r"'c'.*graph"):
        m.measure(nx.Graph())
    with pytest.raises(InvalidEntityError, match="p"):
        grid_bond_percolation(3, 1.5)


def _brute_regret(A, B, p_row, p_col):
    x, y = (1 - p_row, p_row), (1 - p_col, p_col)
    u = [sum(A[r][c] * y[c] for c in range(2)) for r in range(2)]
    v = [sum(B[r][c] * x[r] for r in range(2)) for c in range(2)]  # column action c against the row mix
    return max(u) - sum(x[r] * u[r] for r in range(2)), max(v) - sum(y[c] * v[c] for c in range(2))


payoff = st.floats(-10, 10)
matrix = st.tuples(st.tuples(payoff, payoff), st.tuples(payoff, payoff))
prob = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(A=matrix, B=matrix, p_row=prob, p_col=prob)
def test_regret_matches_brute_force_for_any_game(A, B, p_row, p_col):
    got = regret(A, B, p_row, p_col)
    want = _brute_regret(A, B, p_row, p_col)
    assert got == pytest.approx(want, abs=1e-9)
    assert min(got) >= 0
    assert 0.0 <= nash_eta(A, B, p_row, p_col) <= 1.0


def test_column_payoffs_are_not_transposed():
    # The column player gets 1 for Defect whatever the row does: its best response is Defect.
    A = ((0.0, 0.0), (0.0, 0.0))
    B = ((0.0, 1.0), (0.0, 1.0))
    assert regret(A, B, 0.0, 1.0) == (0.0, 0.0)
    assert regret(A, B, 0.0, 0.0)[1] == 1.0
    assert NashModule(id="n", row_payoffs=A, col_payoffs=B, p_row=0.3, p_col=1.0).initial_eta() == 1.0


@settings(max_examples=100, deadline=None)
@given(p_row=prob, p_col=prob)
def test_pd_regret_is_zero_only_at_mutual_defection(p_row, p_col):
    total = sum(regret(PD_A, PD_B, p_row, p_col))
    if p_row == 1.0 and p_col == 1.0:
        assert total == 0.0
    else:
        assert total > 0.0
    assert regret(PD_A, PD_B, 1.0, 1.0) == (0.0, 0.0)
    pd = NashModule.prisoners_dilemma("n", p_row=p_row, p_col=p_col)
    assert pd.row_payoffs == PD_A and pd.col_payoffs == PD_B
    assert pd.initial_eta() == pytest.approx(1 - total / 10.0)  # range A + range B = 5 + 5


@settings(max_examples=50, deadline=None)
@given(p_row=st.floats(0.01, 0.99), p_col=st.floats(0.01, 0.99))
def test_replicator_dynamics_converge_to_mutual_defection(p_row, p_col):
    for _ in range(2000):
        p_row, p_col = replicator_step(p_row, p_col, PD_A, PD_B, lr=0.1)
        assert 0.0 <= p_row <= 1.0 and 0.0 <= p_col <= 1.0
    assert p_row > 1 - 1e-6 and p_col > 1 - 1e-6
    assert sum(regret(PD_A, PD_B, p_row, p_col)) < 1e-5


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), degree=st.integers(0, 6), extra=st.integers(0, 50))
def test_apc_basis_is_orthonormal_on_its_samples(seed, degree, extra):
    xi = np.random.default_rng(seed).uniform(-1, 1, degree + 1 + extra)
    B = apc_basis(xi, degree)
    assert B.shape == (degree + 1, degree + 1) and np.allclose(B, np.tril(B))
    phi = np.vander(xi, degree + 1, increasing=True) @ B.T  # φ_n(ξ_k)
    np.testing.assert_allclose(phi.T @ phi / xi.size, np.eye(degree + 1), atol=1e-8)


def test_apc_basis_fails_clearly():
    with pytest.raises(InvalidEntityError, match=r"samples.*2 distinct.*degree 2 needs at least 3"):
        apc_basis([0.1, 0.1, 0.2, 0.2], 2)
    with pytest.raises(InvalidEntityError, match="singular"):
        apc_basis([0.0, 1e-9, 2e-9], 2)
    with pytest.raises(InvalidEntityError, match="degree"):
        apc_basis([0.0, 1.0], MAX_DEGREE + 1)


coefficients = st.lists(st.floats(-1, 1), min_size=1, max_size=MAX_DEGREE + 1)


@settings(max_examples=100, deadline=None)
@given(coeffs=coefficients, eta=st.floats(0.0, 1.0))
def test_legendre_energy_equals_legval(coeffs, eta):
    m = PolynomialModule(id="p", coeffs=tuple(coeffs))
    p = {"monomial": np.asarray([m.monomial])}
    f, df = PolynomialModule.energy_grad(np, np.array([eta]), p)
    leg = np.polynomial.legendre
    xi = 2 * eta - 1
    assert f[0] == pytest.approx(leg.legval(xi, coeffs), abs=1e-9)
    assert df[0] == pytest.approx(2 * leg.legval(xi, leg.legder(coeffs)), abs=1e-7)
    d2 = PolynomialModule.hessian_diagonal(np, np.array([eta]), p)
    assert d2[0] == pytest.approx(4 * leg.legval(xi, leg.legder(coeffs, 2)), rel=1e-9, abs=1e-5)


def test_apc_module_energy_is_its_basis_expansion():
    xi = np.random.default_rng(5).uniform(-1, 1, 30)
    B = apc_basis(xi, 3)
    coeffs = (0.5, -1.0, 0.25)
    m = PolynomialModule(id="p", basis="apc", coeffs=coeffs, apc_basis=tuple(map(tuple, B.tolist())))
    eta = np.array([0.1, 0.6, 0.95])
    f, _ = PolynomialModule.energy_grad(np, eta, {"monomial": np.asarray([m.monomial] * 3)})
    phi = np.vander(2 * eta - 1, 4, increasing=True) @ B.T
    np.testing.assert_allclose(f, phi[:, :3] @ np.asarray(coeffs), atol=1e-12)


def test_polynomials_of_different_degrees_compile_into_one_group():
    rng = np.random.default_rng(1)
    coeffs = [tuple(rng.uniform(-1, 1, d + 1)) for d in (0, 3, MAX_DEGREE, 5)]
    modules = [PolynomialModule(id=f"p{k}", coeffs=c) for k, c in enumerate(coeffs)]
    cs = compile_system(System(id="s", modules=modules))
    assert len(cs.modules) == 1 and cs.modules[0].params["monomial"].shape == (4, MAX_DEGREE + 1)
    eta = rng.uniform(0, 1, 4)
    total, grad = energy_and_gradient(cs, eta)
    leg = np.polynomial.legendre
    assert total == pytest.approx(sum(leg.legval(2 * e - 1, c) for e, c in zip(eta, coeffs)))
    np.testing.assert_allclose(grad, [2 * leg.legval(2 * e - 1, leg.legder(c)) for e, c in zip(eta, coeffs)])
