"""Coupling kinds: pairwise energies φ(η_i, η_j) on the edges of the System.

Each kind's formulas are static methods vectorised over all edges of the kind:
``energy_grad(xp, eta_i, eta_j, p) -> (φ, ∂φ/∂η_i, ∂φ/∂η_j)`` and
``hessian_diagonal(xp, eta_i, eta_j, p) -> (∂²φ/∂η_i², ∂²φ/∂η_j²)``. The edge's
weight multiplies φ outside the formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Sequence, Union

import numpy as np
from pydantic import Field

from ._base import AbstractEntity, KindRegistry

coupling_kinds = KindRegistry("coupling")


@dataclass(frozen=True)
class SquaredDifference:
    r"""A closed form for the proximal solvers: :math:`φ = (η_i - η_j)^2`."""


@dataclass(frozen=True)
class SquaredHinge:
    r"""A closed form for the proximal solvers: :math:`φ = \max(0, βη_j - αη_i)^2`, α, β ≥ 0 per edge."""

    alpha: Any
    beta: Any


@dataclass(frozen=True)
class LinearPull:
    r"""A closed form for the proximal solvers: :math:`φ = -η_i Δ`, one Δ per edge (a pull on η_i alone)."""

    delta: Any


ProxForm = Union[SquaredDifference, SquaredHinge, LinearPull]
"""The coupling energies whose proximal operators the proximal solvers know exactly (``projectors._prox``)."""


class AbstractCoupling(AbstractEntity):
    """An edge between module ``i`` and module ``j`` with energy ``weight · φ(η_i, η_j)``.

    ``source_kinds``, when set, lists the module kinds allowed at endpoint ``i``
    (the System checks it). A subclass declares ``kind``, ``params`` and
    implements ``energy_grad(xp, eta_i, eta_j, p) -> (φ, ∂φ/∂η_i, ∂φ/∂η_j)``
    and ``hessian_diagonal``; ``curvature_bound`` (for the stability guard) and
    ``prox_form`` (for the proximal solvers) are optional capabilities.

    A coupling that pulls η_j towards a fixed fraction r of η_i, φ = (η_j − r η_i)²:

    >>> from typing import ClassVar, Literal
    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System, coupling_kinds
    >>> from complexity_from_constraints.projectors import relax
    >>> class FractionExample(AbstractCoupling):
    ...     kind: Literal["fraction_example"] = "fraction_example"
    ...     params: ClassVar[tuple[str, ...]] = ("r",)
    ...     r: float = 0.5
    ...     @staticmethod
    ...     def energy_grad(xp, eta_i, eta_j, p):
    ...         d = eta_j - p["r"] * eta_i
    ...         return d * d, -2 * p["r"] * d, 2 * d
    ...     @staticmethod
    ...     def hessian_diagonal(xp, eta_i, eta_j, p):
    ...         return 2 * p["r"] * p["r"] + 0 * eta_i, 2 + 0 * eta_j
    >>> system = System(id="f", modules=[LandauModule(id="x", a=-1.0, b=1.0), LandauModule(id="y", a=0.0, b=1.0)],
    ...                 couplings=[FractionExample(id="xy", i="x", j="y", weight=10.0)])
    >>> r = relax(system, RelaxConfig(steps=2000, step_size=0.02))
    >>> round(r.eta_of("y") / r.eta_of("x"), 1)
    0.5
    >>> coupling_kinds.unregister("fraction_example")
    """

    params: ClassVar[tuple[str, ...]] = ()
    source_kinds: ClassVar[frozenset[str] | None] = None
    gate_benefit: ClassVar[bool] = False
    """True for a predicted benefit of opening gate ``i``: ``v_gate_redemption`` sums these edges' energies."""
    antisymmetric: ClassVar[bool] = False
    """True when :math:`∂_jφ = -∂_iφ` on every edge (φ depends on a difference of the ends). The kind then
    implements ``energy_grad_i(xp, eta_i, eta_j, p) -> (φ, ∂φ/∂η_i)`` and inherits ``energy_grad``; the
    compiled evaluation computes and weights ∂_iφ once and scatters it to ``j`` with the sign flipped."""
    i: str
    j: str
    weight: float = Field(1.0, ge=0)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        coupling_kinds.register(cls)

    @classmethod
    def energy_grad(cls, xp, eta_i, eta_j, p: Mapping[str, Any]):
        """``(φ, ∂φ/∂η_i, ∂φ/∂η_j)`` element-wise; an ``antisymmetric`` kind gets it from ``energy_grad_i``."""
        if not cls.antisymmetric:  # pragma: no cover - abstract
            raise NotImplementedError(f"{cls.__name__} defines no energy_grad(xp, eta_i, eta_j, p)")
        phi, di = cls.energy_grad_i(xp, eta_i, eta_j, p)
        return phi, di, -di

    @staticmethod
    def energy_grad_i(xp, eta_i, eta_j, p: Mapping[str, Any]):  # pragma: no cover - abstract
        """``(φ, ∂φ/∂η_i)`` element-wise, for an ``antisymmetric`` kind (∂_jφ is −∂_iφ)."""
        raise NotImplementedError

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p: Mapping[str, Any]):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def curvature_bound(xp, one, p: Mapping[str, Any]):
        r"""Upper bounds on :math:`|∂_i^2φ|, |∂_j^2φ|, |∂_i∂_jφ|` over the box, element-wise.

        Returns ``None`` where no finite bound is known (the default, or a kind
        whose curvature is unbounded on the box for these parameters), so no
        global Lipschitz constant holds and the stability guard refuses it.
        """
        return None

    @classmethod
    def curvature_unbounded(cls, p: Mapping[str, Any]) -> tuple[str, Any, str]:
        """``(field, value, reason)`` for the stability guard's refusal when :meth:`curvature_bound` gives ``None``."""
        return ("curvature_bound", None,
                f"the coupling kind {cls.model_fields['kind'].default!r} defines no curvature_bound(xp, one, p) "
                f"(an upper bound on |∂²φ| over [0, 1]); define it on {cls.__name__}")

    @classmethod
    def prox_form(cls, p: Mapping[str, Any]) -> ProxForm | None:
        """The closed form the proximal solvers treat exactly, for parameter arrays ``p``.

        ``None`` (the default): no closed-form prox; the proximal solvers step
        on the kind explicitly with its gradient, like every module term.
        """
        return None

    @classmethod
    def parameter_arrays(cls, members: Sequence[AbstractCoupling]) -> dict[str, np.ndarray]:
        """The ``p`` that the formulas read, for ``members`` (edges of this kind) on numpy, one row per edge.

        >>> p = GateBenefitCoupling.parameter_arrays([GateBenefitCoupling(id="e", i="g", j="m", delta=0.5)])
        >>> GateBenefitCoupling.energy_grad(np, np.array([1.0]), np.array([0.3]), p)[0]
        array([-0.5])
        """
        return {p: np.asarray([getattr(c, p) for c in members], np.float64) for p in cls.params}


class QuadraticCoupling(AbstractCoupling):
    r"""Agreement: :math:`φ = (η_i - η_j)^2`.

    .. math::
        ∂_iφ = 2(η_i - η_j) = -∂_jφ, \qquad ∂^2_iφ = ∂^2_jφ = 2

    >>> import numpy as np
    >>> QuadraticCoupling.energy_grad(np, np.array([0.75]), np.array([0.25]), {})
    (array([0.25]), array([1.]), array([-1.]))
    """

    kind: Literal["quadratic"] = "quadratic"
    antisymmetric: ClassVar[bool] = True

    @staticmethod
    def energy_grad_i(xp, eta_i, eta_j, p):
        d = eta_i - eta_j
        return d * d, 2 * d

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        two = 2.0 + 0 * eta_i
        return two, two

    @staticmethod
    def curvature_bound(xp, one, p):
        return 2 * one, 2 * one, 2 * one

    @classmethod
    def prox_form(cls, p):
        return SquaredDifference()


class DirectedHingeCoupling(AbstractCoupling):
    r"""η_i should not fall below η_j: :math:`φ = \max(0, η_j - η_i)^2`.

    With :math:`g = \max(0, η_j - η_i)`: :math:`∂_iφ = -2g`, :math:`∂_jφ = 2g`,
    and the Hessian diagonal is 2 on the active set (g > 0), else 0.

    >>> import numpy as np
    >>> DirectedHingeCoupling.energy_grad(np, np.array([0.2, 0.9]), np.array([0.5, 0.1]), {})[0]
    array([0.09, 0.  ])
    """

    kind: Literal["directed_hinge"] = "directed_hinge"
    antisymmetric: ClassVar[bool] = True

    @staticmethod
    def energy_grad_i(xp, eta_i, eta_j, p):
        g = xp.clip(eta_j - eta_i, 0, None)  # max(0, gap): one pass (a where builds a mask and a zero array)
        return g * g, -2 * g

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        h = xp.where(eta_j > eta_i, 2.0 + 0 * eta_i, 0 * eta_i)
        return h, h

    @staticmethod
    def curvature_bound(xp, one, p):
        return 2 * one, 2 * one, 2 * one

    @classmethod
    def prox_form(cls, p):
        return SquaredHinge(alpha=1.0, beta=1.0)


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
    gate_benefit: ClassVar[bool] = True
    delta: float = 0.0

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        delta = p["delta"]
        return -eta_i * delta, -delta + 0 * eta_i, 0 * eta_j

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        return 0 * eta_i, 0 * eta_j

    @staticmethod
    def curvature_bound(xp, one, p):
        return 0 * one, 0 * one, 0 * one

    @classmethod
    def prox_form(cls, p):
        return LinearPull(delta=p["delta"])


class AsymmetricHingeCoupling(AbstractCoupling):
    r"""A scaled one-sided bound: :math:`φ = \max(0, βη_j - αη_i)^2`.

    With :math:`g = \max(0, βη_j - αη_i)`: :math:`∂_iφ = -2αg`,
    :math:`∂_jφ = 2βg`; the Hessian diagonal is :math:`(2α^2, 2β^2)` on the
    active set (g > 0), else 0. α = β = 1 is the directed hinge.

    >>> import numpy as np
    >>> p = {"alpha": np.array([1.0]), "beta": np.array([2.0])}
    >>> AsymmetricHingeCoupling.energy_grad(np, np.array([0.5]), np.array([0.5]), p)
    (array([0.25]), array([-1.]), array([2.]))
    """

    kind: Literal["asymmetric_hinge"] = "asymmetric_hinge"
    params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    alpha: float = Field(1.0, ge=0)
    beta: float = Field(1.0, ge=0)

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        alpha, beta = p["alpha"], p["beta"]
        g = xp.clip(beta * eta_j - alpha * eta_i, 0, None)
        return g * g, -2 * alpha * g, 2 * beta * g

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        alpha, beta = p["alpha"], p["beta"]
        active = beta * eta_j - alpha * eta_i > 0
        zero = 0 * eta_i
        return xp.where(active, 2 * alpha * alpha + zero, zero), xp.where(active, 2 * beta * beta + zero, zero)

    @staticmethod
    def curvature_bound(xp, one, p):
        alpha, beta = p["alpha"] * one, p["beta"] * one
        return 2 * alpha * alpha, 2 * beta * beta, 2 * alpha * beta

    @classmethod
    def prox_form(cls, p):
        return SquaredHinge(alpha=p["alpha"], beta=p["beta"])


class DampedGateBenefitCoupling(AbstractCoupling):
    r"""A damped, sign-scaled benefit on gate ``i``: :math:`φ = -d\,η_i^p\,s(Δ)\,Δ`.

    :math:`s(Δ)` is ``positive_scale`` for Δ ≥ 0, else ``negative_scale``;
    d = ``damping``, p = ``eta_power`` ≥ 1. With :math:`c = d\,s(Δ)\,Δ`:

    .. math::
        ∂_iφ = -c\,p\,η_i^{p-1}, \qquad ∂_jφ = 0, \qquad
        ∂^2_iφ = -c\,p(p-1)\,η_i^{p-2}, \qquad ∂^2_jφ = 0

    At η_i = 0 the curvature is taken as 0 for p < 2 (it is 0 for p = 1 and
    unbounded for 1 < p < 2), so nothing is ever NaN or infinite.

    >>> import numpy as np
    >>> p = {k: np.array([v]) for k, v in dict(delta=-0.5, damping=1.0, eta_power=2.0,
    ...      positive_scale=1.0, negative_scale=0.5).items()}
    >>> DampedGateBenefitCoupling.energy_grad(np, np.array([0.5]), np.array([0.3]), p)
    (array([0.0625]), array([0.25]), array([0.]))
    """

    kind: Literal["damped_gate_benefit"] = "damped_gate_benefit"
    params: ClassVar[tuple[str, ...]] = ("delta", "damping", "eta_power", "positive_scale", "negative_scale")
    source_kinds: ClassVar[frozenset[str] | None] = frozenset({"gate"})
    gate_benefit: ClassVar[bool] = True
    delta: float = 0.0
    damping: float = Field(1.0, ge=0)
    eta_power: float = Field(1.0, ge=1)
    positive_scale: float = Field(1.0, ge=0)
    negative_scale: float = Field(1.0, ge=0)

    @staticmethod
    def _pull(xp, p):
        delta = p["delta"]
        return p["damping"] * xp.where(delta >= 0, p["positive_scale"], p["negative_scale"]) * delta

    @staticmethod
    def energy_grad(xp, eta_i, eta_j, p):
        c, power = DampedGateBenefitCoupling._pull(xp, p), p["eta_power"]
        e = xp.where(eta_i > 0, eta_i, 0 * eta_i)  # 0^p and 0^(p-1) are finite for p >= 1
        return -c * e ** power, -c * power * e ** (power - 1), 0 * eta_j

    @staticmethod
    def hessian_diagonal(xp, eta_i, eta_j, p):
        c, power = DampedGateBenefitCoupling._pull(xp, p), p["eta_power"]
        positive = eta_i > 0
        safe = xp.where(positive, xp.clip(eta_i, 1e-150, None), 1 + 0 * eta_i)  # no 0 or subnormal to a negative power
        at_zero = xp.where(power == 2, 1 + 0 * eta_i, 0 * eta_i)  # 0^(p-2): 1 for p = 2, else 0 (guarded)
        return -c * power * (power - 1) * xp.where(positive, safe ** (power - 2), at_zero), 0 * eta_j

    @staticmethod
    def curvature_bound(xp, one, p):
        r""":math:`|c|p(p-1)` for p = 1 or p ≥ 2 (largest at η = 1); unbounded near η = 0 for 1 < p < 2 (``None``)."""
        c, power = DampedGateBenefitCoupling._pull(xp, p) * one, p["eta_power"] * one
        if bool(xp.any((power > 1) & (power < 2))):
            return None
        return xp.abs(c) * power * (power - 1), 0 * one, 0 * one

    @classmethod
    def curvature_unbounded(cls, p):
        return "eta_power", "in (1, 2)", "curvature is unbounded near η = 0; use eta_power = 1 or ≥ 2"
