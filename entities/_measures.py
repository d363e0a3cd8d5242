"""Measurements that turn an observation into an order parameter η ∈ [0, 1].

Plain functions, used by the module kinds of :mod:`entities._vocabulary`:
monotonicity of a sequence, connectivity of a graph, regret in a 2×2 game,
and the polynomial bases of :class:`~entities.PolynomialModule`. Anything
random takes a ``seed`` and draws from ``numpy.random.default_rng(seed)``.
Bad inputs raise :class:`InvalidEntityError` naming the function, the
argument and the value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from ._errors import InvalidEntityError

if TYPE_CHECKING:  # networkx costs a quarter of the package's import time: imported only to build a graph
    import networkx as nx

MAX_DEGREE = 12
"""Highest polynomial degree a :class:`~entities.PolynomialModule` accepts."""


def _values(values: Any, who: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise InvalidEntityError(who, None, "values", values, "needs a flat sequence of at least 2 values")
    if not np.all(np.isfinite(v)):
        raise InvalidEntityError(who, None, "values", values, "values must be finite")
    return v


def count_inversions(values: Sequence[float]) -> int:
    r"""Number of pairs :math:`i < j` with :math:`v_i > v_j` (ties are not inversions).

    A bottom-up merge sort done with numpy, level by level: at each level the
    blocks of width ``w`` are already sorted, and every element of a right
    block counts the elements of its left neighbour that exceed it with one
    ``searchsorted``. :math:`\lceil\log_2 n\rceil` levels of O(n) merges
    (a stable sort of two runs) plus O(n log n) searches: O(n log² n)
    worst case, with no Python loop over elements.

    >>> count_inversions([3, 1, 2, 2])
    3
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n < 2:
        return 0
    cur = np.unique(v, return_inverse=True)[1].reshape(-1).astype(np.int64)  # ranks; ties share one
    span = int(cur.max()) + 1
    idx = np.arange(n, dtype=np.int64)
    total, width = 0, 1
    while width < n:
        block = idx // width
        base = (block // 2) * span  # one key range per pair of blocks, so pairs never mix
        key = base + cur
        right = (block % 2) == 1
        left_keys = key[~right]  # sorted: pairs ascend and each left block is sorted
        kr, br = key[right], base[right]
        greater = np.searchsorted(left_keys, br + span, "left") - np.searchsorted(left_keys, kr, "right")
        total += int(greater.sum())
        cur = np.sort(key, kind="stable") - base  # merge each pair (blocks are contiguous)
        width *= 2
    return total


def monotonicity(values: Sequence[float], *, mode: Literal["exact", "sampled"] = "exact",
                 samples: int = 512, seed: int = 0) -> float:
    r"""Fraction of ordered pairs: :math:`η = \#\{i<j : v_i \le v_j\} / \binom{n}{2}`.

    ``mode="exact"`` counts inversions in O(n log n)-ish time
    (:func:`count_inversions`). ``mode="sampled"`` draws ``samples`` pairs
    with replacement, uniformly over all :math:`\binom{n}{2}` pairs (two
    distinct indices uniform, then sorted), from ``default_rng(seed)``: the
    estimate is unbiased with standard error ≤ :math:`\sqrt{0.25/samples}`.

    >>> monotonicity([1, 2, 2, 3])
    1.0
    >>> monotonicity([3, 2, 1])
    0.0
    >>> monotonicity([1, 3, 2, 4])
    0.8333333333333334
    """
    v = _values(values, "monotonicity")
    n = v.size
    if mode == "exact":
        pairs = n * (n - 1) // 2
        return 1.0 - count_inversions(v) / pairs
    if mode != "sampled":
        raise InvalidEntityError("monotonicity", None, "mode", mode, "must be 'exact' or 'sampled'")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InvalidEntityError("monotonicity", None, "samples", samples, "must be a positive integer")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, samples)
    b = rng.integers(0, n - 1, samples)
    b = b + (b >= a)  # uniform over the n - 1 indices other than a
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return float(np.mean(v[lo] <= v[hi]))


def grid_bond_percolation(n: int, p: float, shortcut_fraction: float = 0.0, seed: int = 0) -> nx.Graph:
    r"""Bond percolation on an n×n grid, plus random shortcuts.

    Nodes are ``0 … n²−1`` (node ``r·n + c`` at row r, column c). Each of the
    :math:`2n(n-1)` grid bonds is kept with probability ``p``; then
    :math:`\lfloor shortcut\_fraction · kept \rfloor` shortcuts join two
    distinct nodes drawn uniformly (a shortcut may repeat an edge). All draws
    come from ``numpy.random.default_rng(seed)``.

    >>> g = grid_bond_percolation(4, 1.0)
    >>> (g.number_of_nodes(), g.number_of_edges())
    (16, 24)
    """
    who = "grid_bond_percolation"
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidEntityError(who, None, "n", n, "must be an integer >= 1")
    if not (0.0 <= p <= 1.0):
        raise InvalidEntityError(who, None, "p", p, "must lie in [0, 1]")
    if not (0.0 <= shortcut_fraction < math.inf):
        raise InvalidEntityError(who, None, "shortcut_fraction", shortcut_fraction, "must be finite and >= 0")
    import networkx as nx

    rng = np.random.default_rng(seed)
    node = np.arange(n * n, dtype=np.int64).reshape(n, n)
    src = np.concatenate([node[:, :-1].ravel(), node[:-1, :].ravel()])
    dst = np.concatenate([node[:, 1:].ravel(), node[1:, :].ravel()])
    keep = rng.random(src.size) < p
    graph = nx.Graph()
    graph.add_nodes_from(range(n * n))
    graph.add_edges_from(zip(src[keep].tolist(), dst[keep].tolist()))
    m = math.floor(shortcut_fraction * int(keep.sum()))
    if m and n * n >= 2:
        a = rng.integers(0, n * n, m)
        b = rng.integers(0, n * n - 1, m)
        b = b + (b >= a)
        graph.add_edges_from(zip(a.tolist(), b.tolist()))
    return graph


def largest_component_fraction(graph: nx.Graph) -> float:
    """|largest connected component| / |nodes| of an undirected networkx graph.

    >>> import networkx as nx
    >>> largest_component_fraction(nx.path_graph(3))
    1.0
    """
    n = graph.number_of_nodes()
    if n == 0:
        raise InvalidEntityError("largest_component_fraction", None, "graph", "empty graph", "needs at least one node")
    if graph.is_directed():
        raise InvalidEntityError("largest_component_fraction", None, "graph", type(graph).__name__,
                                 "needs an undirected graph")
    import networkx as nx

    return max(len(c) for c in nx.connected_components(graph)) / n


def _game(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    for name, m in (("A", a), ("B", b)):
        if m.shape != (2, 2) or not np.all(np.isfinite(m)):
            raise InvalidEntityError("regret", None, name, m.tolist(), "needs a finite 2×2 payoff matrix")
    return a, b


def action_payoffs(A: Any, B: Any, p_row: float, p_col: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Expected payoff of each pure action against the other player's mix.

    With x = (1−p_row, p_row) and y = (1−p_col, p_col) (probability of
    Defect = action 1): row action r earns :math:`u_r = Σ_c A[r][c] y_c`,
    column action c earns :math:`v_c = Σ_r x_r B[r][c]`.

    >>> action_payoffs([[3, 0], [5, 1]], [[3, 5], [0, 1]], 0.0, 0.0)
    (array([3., 5.]), array([3., 5.]))
    """
    a, b = _game(A, B)
    x = np.array([1.0 - p_row, p_row])
    y = np.array([1.0 - p_col, p_col])
    return a @ y, x @ b


def regret(A: Any, B: Any, p_row: float, p_col: float) -> tuple[float, float]:
    r"""Each player's regret: best pure payoff minus the payoff of its own mix.

    .. math::
        R_{row} = \max_r u_r - Σ_r x_r u_r, \qquad R_{col} = \max_c v_c - Σ_c y_c v_c

    (see :func:`action_payoffs`; ``B[r][c]`` is the column player's payoff).
    Both are ≥ 0 and 0 exactly when that player best-responds.

    >>> pd_a, pd_b = [[3, 0], [5, 1]], [[3, 5], [0, 1]]
    >>> regret(pd_a, pd_b, 1.0, 1.0)
    (0.0, 0.0)
    >>> regret(pd_a, pd_b, 0.0, 0.0)
    (2.0, 2.0)
    """
    u, v = action_payoffs(A, B, p_row, p_col)
    x = np.array([1.0 - p_row, p_row])
    y = np.array([1.0 - p_col, p_col])
    return max(0.0, float(u.max() - x @ u)), max(0.0, float(v.max() - y @ v))


def replicator_step(p_row: float, p_col: float, A: Any, B: Any, lr: float = 0.05) -> tuple[float, float]:
    r"""One explicit replicator step for both players, clipped to [0, 1].

    .. math::
        p_{row}' = p_{row} + lr\,p_{row}(1-p_{row})(u_1-u_0), \qquad
        p_{col}' = p_{col} + lr\,p_{col}(1-p_{col})(v_1-v_0)

    >>> replicator_step(0.5, 0.5, [[3, 0], [5, 1]], [[3, 5], [0, 1]], lr=0.1)
    (0.5375, 0.5375)
    """
    u, v = action_payoffs(A, B, p_row, p_col)
    r = p_row + lr * p_row * (1.0 - p_row) * (u[1] - u[0])
    c = p_col + lr * p_col * (1.0 - p_col) * (v[1] - v[0])
    return float(min(1.0, max(0.0, r))), float(min(1.0, max(0.0, c)))


def nash_eta(A: Any, B: Any, p_row: float, p_col: float) -> float:
    r""":math:`η = 1 - \min\!\big(1, (R_{row} + R_{col}) / (\mathrm{range}\,A + \mathrm{range}\,B)\big)`.

    Each regret is at most its player's payoff range, so η ∈ [0, 1]; a game
    with constant payoffs has no regret and η = 1.

    >>> nash_eta([[3, 0], [5, 1]], [[3, 5], [0, 1]], 0.0, 0.0)
    0.6
    """
    a, b = _game(A, B)
    span = float(np.ptp(a) + np.ptp(b))
    if span == 0.0:
        return 1.0
    return 1.0 - min(1.0, sum(regret(a, b, p_row, p_col)) / span)


def legendre_monomials(coeffs: Sequence[float]) -> np.ndarray:
    r"""Monomial coefficients m of :math:`Σ_k c_k P_k(ξ) = Σ_p m_p ξ^p` (numpy's ``leg2poly``).

    >>> legendre_monomials([0.0, 0.0, 1.0]).tolist()   # P2 = (3ξ² − 1)/2
    [-0.5, 0.0, 1.5]
    """
    return np.polynomial.legendre.leg2poly(np.asarray(coeffs, dtype=np.float64))


def apc_basis(samples: Sequence[float], degree: int) -> np.ndarray:
    r"""Arbitrary polynomial chaos: polynomials orthonormal under the samples' empirical measure.

    Returns B, (degree+1)×(degree+1) lower triangular, with
    :math:`φ_n(ξ) = Σ_p B[n,p] ξ^p` of exact degree n and
    :math:`\frac1N Σ_k φ_m(ξ_k) φ_n(ξ_k) = δ_{mn}`. Computed from the thin QR of
    the scaled Vandermonde matrix :math:`V/\sqrt N = QR` (so the Gram matrix
    :math:`V^TV/N = R^TR` is never formed): :math:`B = R^{-T}`, with the
    signs chosen so each leading coefficient is positive.

    Fails with :class:`InvalidEntityError` when there are fewer than
    degree + 1 distinct finite samples, or when the Gram matrix is
    numerically singular.

    >>> b = apc_basis([-1.0, 0.0, 1.0], 1)   # φ0 = 1, φ1 = sqrt(3/2) ξ
    >>> [round(float(x), 6) + 0.0 for x in b.ravel()]
    [1.0, 0.0, 0.0, 1.224745]
    """
    who = "apc_basis"
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or not 0 <= degree <= MAX_DEGREE:
        raise InvalidEntityError(who, None, "degree", degree, f"must be an integer in [0, {MAX_DEGREE}]")
    xi = np.asarray(samples, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(xi)):
        raise InvalidEntityError(who, None, "samples", samples, "samples must be finite")
    distinct = np.unique(xi).size
    if distinct < degree + 1:
        raise InvalidEntityError(who, None, "samples", f"{distinct} distinct of {xi.size}",
                                 f"degree {degree} needs at least {degree + 1} distinct samples")
    v = np.vander(xi, degree + 1, increasing=True) / math.sqrt(xi.size)
    r = np.linalg.qr(v, mode="r")
    diag = np.abs(np.diag(r))
    if not np.all(np.isfinite(r)) or diag.min() <= 1e-10 * max(1.0, diag.max()):
        raise InvalidEntityError(who, None, "samples", f"{distinct} distinct of {xi.size}",
                                 f"the Gram matrix of degree {degree} is numerically singular")
    r = r * np.sign(np.diag(r))[:, None]  # positive diagonal: unique R, positive leading coefficients
    return np.linalg.solve(r, np.eye(degree + 1)).T  # B = R^{-T}
