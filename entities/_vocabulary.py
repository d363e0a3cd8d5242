"""More module kinds: sequences, graphs, games, compression, polynomials.

Each kind follows the contract of :mod:`entities._modules` and
:mod:`entities._couplings`: frozen fields with constraints, a ``kind`` tag,
``params`` and element-wise formulas written with ``xp`` only. The
measurements themselves live in :mod:`entities._measures`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ._errors import InvalidEntityError
from ._measures import (
    MAX_DEGREE,
    grid_bond_percolation,
    largest_component_fraction,
    legendre_monomials,
    monotonicity,
    nash_eta,
)
from ._modules import AbstractModule, quartic_curvature_bound

if TYPE_CHECKING:
    import networkx as nx


def _well_at_one(eta, a, b):
    """f = a(1−η)² + b(1−η)⁴ and f' = −2a(1−η) − 4b(1−η)³."""
    u = 1 - eta
    u2 = u * u
    return u2 * (a + b * u2), -u * (2 * a + 4 * b * u2)


def _well_at_one_curvature(eta, a, b):
    """f'' = 2a + 12b(1−η)²."""
    u = 1 - eta
    return 2 * a + 12 * b * u * u


class AbstractWellAtOneModule(AbstractModule):
    r"""Modules whose energy is a Landau well at η = 1: :math:`f = α(1-η)^2 + β(1-η)^4` (α, β ≥ 0).

    .. math::
        f'(η) = -2α(1-η) - 4β(1-η)^3, \qquad f''(η) = 2α + 12β(1-η)^2
    """

    params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    alpha: float = Field(1.0, ge=0)
    beta: float = Field(1.0, ge=0)

    @staticmethod
    def energy_grad(xp, eta, p):
        return _well_at_one(eta, p["alpha"], p["beta"])

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return _well_at_one_curvature(eta, p["alpha"], p["beta"])

    @staticmethod
    def curvature_bound(xp, one, p):
        return quartic_curvature_bound(xp, p["alpha"] * one, p["beta"] * one, 1.0)


class SequenceModule(AbstractWellAtOneModule):
    r"""Monotonicity of a sequence, a Landau well at η = 1: :math:`f = α(1-η)^2 + β(1-η)^4`.

    .. math::
        f'(η) = -2α(1-η) - 4β(1-η)^3, \qquad f''(η) = 2α + 12β(1-η)^2

    η is the fraction of pairs i < j with :math:`v_i \le v_j`
    (:func:`~entities.monotonicity`, exact or sampled). ``observation``, when
    given, is measured with ``mode``/``samples``/``seed`` to give the starting
    η; otherwise the run starts from ``eta0``.

    >>> SequenceModule(id="s", observation=(1.0, 3.0, 2.0, 4.0)).initial_eta()
    0.8333333333333334
    >>> import numpy as np
    >>> SequenceModule.energy_grad(np, np.array([0.5]), {"alpha": np.array([1.0]), "beta": np.array([1.0])})
    (array([0.3125]), array([-1.5]))
    """

    kind: Literal["sequence"] = "sequence"
    observation: tuple[float, ...] | None = None
    mode: Literal["exact", "sampled"] = "exact"
    samples: int = Field(512, ge=1, le=10_000_000)  # sampled pairs are drawn as arrays: 10⁷ is ~160 MB
    seed: int = Field(0, ge=0)
    eta0: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _check_observation(self) -> SequenceModule:
        if self.observation is not None and len(self.observation) < 2:
            raise InvalidEntityError(type(self).__name__, self.id, "observation", self.observation,
                                     "needs at least 2 values")
        return self


    def measure(self, values: Any, *, mode: Literal["exact", "sampled"] | None = None,
                samples: int | None = None, seed: int | None = None) -> float:
        """η of ``values``; ``mode``, ``samples`` and ``seed`` default to this module's fields."""
        if len(values) < 2:
            raise InvalidEntityError(type(self).__name__, self.id, "values", values, "needs at least 2 values")
        return monotonicity(values, mode=mode or self.mode, samples=self.samples if samples is None else samples,
                            seed=self.seed if seed is None else seed)

    def initial_eta(self) -> float:
        return self.eta0 if self.observation is None else self.measure(self.observation)


class ConnectivityModule(AbstractWellAtOneModule):
    r"""Connectivity of a graph, a Landau well at η = 1: :math:`f = α(1-η)^2 + β(1-η)^4`.

    .. math::
        f'(η) = -2α(1-η) - 4β(1-η)^3, \qquad f''(η) = 2α + 12β(1-η)^2

    η = |largest connected component| / |nodes|, computed by networkx (a
    dependency because its component algorithms are well kept and correct).
    The observation is the seeded generator :func:`~entities.grid_bond_percolation`
    (``grid_n``, ``bond_p``, ``shortcut_fraction``, ``seed``), so the entity
    stays plain JSON; with ``grid_n=None`` the run starts from ``eta0``.

    >>> ConnectivityModule(id="c", grid_n=5, bond_p=1.0).initial_eta()
    1.0
    >>> ConnectivityModule(id="c", grid_n=5, bond_p=0.0).initial_eta()
    0.04
    """

    kind: Literal["connectivity"] = "connectivity"
    # bounds that keep the measured graph within memory: 512² nodes and at most as many shortcuts as kept bonds
    # (networkx holds ~1 KB per node and edge, so the largest graph is a few hundred MB)
    grid_n: int | None = Field(None, ge=1, le=512)
    bond_p: float = Field(0.5, ge=0, le=1)
    shortcut_fraction: float = Field(0.0, ge=0, le=1)
    seed: int = Field(0, ge=0)
    eta0: float = Field(0.5, ge=0, le=1)


    def graph(self) -> nx.Graph | None:
        """The observed graph, regenerated from the seed (``None`` without ``grid_n``)."""
        if self.grid_n is None:
            return None
        return grid_bond_percolation(self.grid_n, self.bond_p, self.shortcut_fraction, self.seed)

    def measure(self, graph: nx.Graph) -> float:
        """η = largest-component fraction of ``graph``."""
        if graph.number_of_nodes() == 0:
            raise InvalidEntityError(type(self).__name__, self.id, "graph", "empty graph", "needs at least one node")
        return largest_component_fraction(graph)

    def initial_eta(self) -> float:
        graph = self.graph()
        return self.eta0 if graph is None else self.measure(graph)


Payoffs = tuple[tuple[float, float], tuple[float, float]]


class NashModule(AbstractModule):
    r"""Closeness to a Nash equilibrium of a 2×2 game: :math:`f = a(1-η)^2 + b(1-η)^4`.

    .. math::
        f'(η) = -2a(1-η) - 4b(1-η)^3, \qquad f''(η) = 2a + 12b(1-η)^2

    Actions 0 = Cooperate, 1 = Defect; ``row_payoffs[r][c]`` and
    ``col_payoffs[r][c]`` are the row and the column player's payoffs when
    row plays r and column plays c. ``p_row``/``p_col`` (probabilities of
    Defect) are the observed mixes; η = 1 − (total regret / total payoff
    range) (:func:`~entities.nash_eta`).

    >>> NashModule.prisoners_dilemma("n", p_row=1.0, p_col=1.0).initial_eta()
    1.0
    >>> NashModule.prisoners_dilemma("n", p_row=0.0, p_col=0.0).initial_eta()
    0.6
    """

    kind: Literal["nash"] = "nash"
    params: ClassVar[tuple[str, ...]] = ("a", "b")
    a: float = Field(1.0, ge=0)
    b: float = Field(1.0, ge=0)
    row_payoffs: Payoffs
    col_payoffs: Payoffs
    p_row: float = Field(0.5, ge=0, le=1)
    p_col: float = Field(0.5, ge=0, le=1)

    @classmethod
    def prisoners_dilemma(cls, id: str, T: float = 5.0, R: float = 3.0, P: float = 1.0, S: float = 0.0,
                          **fields: Any) -> NashModule:
        """The symmetric Prisoner's Dilemma: A = [[R, S], [T, P]], B = Aᵀ (needs T > R > P > S)."""
        if not T > R > P > S:
            raise InvalidEntityError(cls.__name__, id, "T, R, P, S", (T, R, P, S), "a Prisoner's Dilemma needs T > R > P > S")
        return cls(id=id, row_payoffs=((R, S), (T, P)), col_payoffs=((R, T), (S, P)), **fields)

    @staticmethod
    def energy_grad(xp, eta, p):
        return _well_at_one(eta, p["a"], p["b"])

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return _well_at_one_curvature(eta, p["a"], p["b"])

    @staticmethod
    def curvature_bound(xp, one, p):
        return quartic_curvature_bound(xp, p["a"] * one, p["b"] * one, 1.0)

    def measure(self, p_row: float, p_col: float) -> float:
        """η at the mixes ``(p_row, p_col)``."""
        return nash_eta(self.row_payoffs, self.col_payoffs, p_row, p_col)

    def initial_eta(self) -> float:
        return self.measure(self.p_row, self.p_col)


class CompressionModule(AbstractModule):
    r"""A compression ratio pulled to a target t: :math:`f = a(η-t)^2 + b(η-t)^4`.

    .. math::
        f'(η) = 2a(η-t) + 4b(η-t)^3, \qquad f''(η) = 2a + 12b(η-t)^2

    ``eta0`` is the observed compression ratio.

    >>> import numpy as np
    >>> p = {"a": np.array([1.0]), "b": np.array([2.0]), "target": np.array([0.5])}
    >>> CompressionModule.energy_grad(np, np.array([1.0]), p)
    (array([0.375]), array([2.]))
    """

    kind: Literal["compression"] = "compression"
    params: ClassVar[tuple[str, ...]] = ("a", "b", "target")
    a: float = Field(1.0, ge=0)
    b: float = Field(0.0, ge=0)
    target: float = Field(1.0, ge=0, le=1)
    eta0: float = Field(0.5, ge=0, le=1)

    @staticmethod
    def energy_grad(xp, eta, p):
        a, b = p["a"], p["b"]
        d = eta - p["target"]
        d2 = d * d
        return d2 * (a + b * d2), d * (2 * a + 4 * b * d2)

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        d = eta - p["target"]
        return 2 * p["a"] + 12 * p["b"] * d * d

    @staticmethod
    def curvature_bound(xp, one, p):
        t = p["target"] * one
        return quartic_curvature_bound(xp, p["a"] * one, p["b"] * one, xp.maximum(t * t, (1 - t) * (1 - t)))

    def initial_eta(self) -> float:
        return self.eta0


class PolynomialModule(AbstractModule):
    r"""A polynomial energy in :math:`ξ = 2η - 1`: :math:`f = Σ_k c_k φ_k(ξ)`.

    ``basis="legendre"``: φ_k = P_k, the Legendre polynomials (any degree up to
    ``MAX_DEGREE`` = 12). ``basis="apc"``: φ_n(ξ) = Σ_p ``apc_basis[n][p]`` ξ^p,
    e.g. from :func:`~entities.apc_basis`. Either way the module exposes
    ``monomial``, the coefficients m of f = Σ_p m_p ξ^p padded to 13 entries,
    so every module of the kind is evaluated at once by Horner's rule on the
    (modules × 13) array (the loop runs over the degree, not the modules):

    .. math::
        f'(η) = 2 Σ_p p\,m_p ξ^{p-1}, \qquad f''(η) = 4 Σ_p p(p-1)\,m_p ξ^{p-2}

    >>> import numpy as np
    >>> m = PolynomialModule(id="p", coeffs=(0.0, 0.0, 1.0))   # P2(ξ) = (3ξ² − 1)/2
    >>> PolynomialModule.energy_grad(np, np.array([1.0]), {"monomial": np.array([m.monomial])})
    (array([1.]), array([6.]))
    """

    kind: Literal["polynomial"] = "polynomial"
    params: ClassVar[tuple[str, ...]] = ("monomial",)
    basis: Literal["legendre", "apc"] = "legendre"
    coeffs: tuple[float, ...] = Field(min_length=1, max_length=MAX_DEGREE + 1)
    apc_basis: tuple[tuple[float, ...], ...] | None = None
    eta0: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _check_basis(self) -> PolynomialModule:
        name, B = type(self).__name__, self.apc_basis
        if self.basis == "legendre":
            if B is not None:
                raise InvalidEntityError(name, self.id, "apc_basis", "a matrix", "only used with basis='apc'")
            return self
        if B is None:
            raise InvalidEntityError(name, self.id, "apc_basis", None, "basis='apc' needs the basis matrix")
        widths = {len(row) for row in B}
        if len(widths) != 1 or not 1 <= widths.pop() <= MAX_DEGREE + 1:
            raise InvalidEntityError(name, self.id, "apc_basis", f"row lengths {sorted({len(r) for r in B})}",
                                     f"rows must share one length in [1, {MAX_DEGREE + 1}]")
        if len(B) < len(self.coeffs):
            raise InvalidEntityError(name, self.id, "apc_basis", f"{len(B)} rows",
                                     f"needs a row per coefficient ({len(self.coeffs)})")
        return self

    @property
    def monomial(self) -> tuple[float, ...]:
        """Coefficients of f in powers of ξ, padded with zeros to MAX_DEGREE + 1 entries."""
        if self.basis == "legendre":
            m = legendre_monomials(self.coeffs)
        else:
            m = np.asarray(self.coeffs) @ np.asarray(self.apc_basis)[: len(self.coeffs)]
        out = np.zeros(MAX_DEGREE + 1)
        out[: m.size] = m
        return tuple(out.tolist())

    @staticmethod
    def _horner(eta, m):
        """f(ξ), f'(ξ), f''(ξ) of Σ_p m[:, p] ξ^p (m is modules × degree+1)."""
        xi = 2 * eta - 1
        f = m[:, -1] + 0 * xi
        d1, d2 = 0 * xi, 0 * xi
        for k in range(m.shape[-1] - 2, -1, -1):
            d2 = d2 * xi + d1
            d1 = d1 * xi + f
            f = f * xi + m[:, k]
        return f, d1, 2 * d2

    @staticmethod
    def energy_grad(xp, eta, p):
        f, d1, _ = PolynomialModule._horner(eta, p["monomial"])
        return f, 2 * d1

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return 4 * PolynomialModule._horner(eta, p["monomial"])[2]

    @staticmethod
    def curvature_bound(xp, one, p):
        r""":math:`4 Σ_p p(p-1)|m_p|` bounds :math:`|f''|` since :math:`|ξ| ≤ 1`."""
        m = p["monomial"]
        k = xp.arange(m.shape[-1], dtype=m.dtype)
        return 4 * xp.sum(xp.abs(m) * (k * (k - 1)), -1) * one

    def initial_eta(self) -> float:
        return self.eta0
