"""Coupling kinds: pairwise energies φ(η_i, η_j) on the edges of the System.

Each kind's formulas are static methods vectorised over all edges of the kind:
``energy_grad(xp, eta_i, eta_j, p) -> (φ, ∂φ/∂η_i, ∂φ/∂η_j)`` and
``hessian_diagonal(xp, eta_i, eta_j, p) -> (∂²φ/∂η_i², ∂²φ/∂η_j²)``. The edge's
weight multiplies φ outside the formula.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from pydantic import Field

from ._base import AbstractEntity, KindRegistry

coupling_kinds = KindRegistry("coupling")


class AbstractCoupling(AbstractEntity):
    """An edge between module ``i`` and module ``j`` with energy ``weight · φ(η_i, η_j)``.

    ``source_kinds``, when set, lists the module kinds allowed at endpoint ``i``
    (the System checks it).
    """

    params: ClassVar[tuple[str, ...]] = ()
    source_kinds: ClassVar[frozenset[str] | None] = None
    i: str
    j: str
    weight: float = Field(1.0, ge=0)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        coupling_kinds.register(cls)

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p: Mapping[str, Any]):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p: Mapping[str, Any]):  # pragma: no cover - abstract
        raise NotImplementedError


class QuadraticCoupling(AbstractCoupling):
    r"""Agreement: :math:`φ = (η_i - η_j)^2`.

    .. math::
        ∂_iφ = 2(η_i - η_j) = -∂_jφ, \qquad ∂^2_iφ = ∂^2_jφ = 2

    >>> import numpy as np
    >>> QuadraticCoupling.energy_grad(np, np.array([0.75]), np.array([0.25]), {})
    (array([0.25]), array([1.]), array([-1.]))
    """

    kind: Literal["quadratic"] = "quadratic"

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        d = eta_i - eta_j
        return d * d, 2 * d, -2 * d

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        two = 2.0 + 0 * eta_i
        return two, two


class DirectedHingeCoupling(AbstractCoupling):
    r"""η_i should not fall below η_j: :math:`φ = \max(0, η_j - η_i)^2`.

    With :math:`g = \max(0, η_j - η_i)`: :math:`∂_iφ = -2g`, :math:`∂_jφ = 2g`,
    and the Hessian diagonal is 2 on the active set (g > 0), else 0.

    >>> import numpy as np
    >>> DirectedHingeCoupling.energy_grad(np, np.array([0.2, 0.9]), np.array([0.5, 0.1]), {})[0]
    array([0.09, 0.  ])
    """

    kind: Literal["directed_hinge"] = "directed_hinge"

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        gap = eta_j - eta_i
        g = xp.where(gap > 0, gap, 0 * gap)
        return g * g, -2 * g, 2 * g

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        h = xp.where(eta_j > eta_i, 2.0 + 0 * eta_i, 0 * eta_i)
        return h, h


class GateBenefitCoupling(AbstractCoupling):
    r"""A predicted benefit that pulls the gate ``i`` open: :math:`φ = -η_i Δ`.

    ``delta`` (Δ) is this edge's own predicted benefit of opening the gate for
    domain module ``j``. The force on the gate, :math:`-∂_iφ = Δ`, does not
    depend on η_i, so a closed gate feels it in full ("redemption").
    :math:`∂_jφ = 0` and the Hessian diagonal is 0.

    >>> import numpy as np
    >>> GateBenefitCoupling.energy_grad(np, np.array([0.5]), np.array([0.1]), {"delta": np.array([0.4])})
    (array([-0.2]), array([-0.4]), array([0.]))
    """

    kind: Literal["gate_benefit"] = "gate_benefit"
    params: ClassVar[tuple[str, ...]] = ("delta",)
    source_kinds: ClassVar[frozenset[str] | None] = frozenset({"gate"})
    delta: float = 0.0

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        delta = p["delta"]
        return -eta_i * delta, -delta + 0 * eta_i, 0 * eta_j

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        return 0 * eta_i, 0 * eta_j
