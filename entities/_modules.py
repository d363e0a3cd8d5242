"""Module kinds: each is its parameters plus one vectorised energy formula.

A kind's formulas are static methods that receive an array namespace ``xp``
(numpy or torch), the η of every module of that kind, and a mapping of the
kind's parameter arrays (one entry per name in ``params``). They never loop.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field

from ._base import AbstractEntity, KindRegistry

module_kinds = KindRegistry("module")


class AbstractModule(AbstractEntity):
    r"""A module: an order parameter η ∈ [0, 1] with a local energy f(η).

    Subclasses declare ``kind`` (a ``Literal`` tag), ``params`` (the numeric
    fields the formulas read) and implement :meth:`energy_grad`,
    :meth:`hessian_diagonal` and :meth:`initial_eta`; :meth:`curvature_bound`
    lets the stability guard accept the kind. The module contributes
    ``weight · family_weight[kind] · f(η)`` to the total energy. Defining the
    class is all it takes: the System parses ``{"kind": ...}`` through the registry.

    A double well :math:`f(η) = c\,(η - ½)^2 (η + ½)^2` with its minimum at η = ½:

    >>> from typing import ClassVar, Literal
    >>> from complexity_from_constraints.entities import RelaxConfig, System, module_kinds
    >>> from complexity_from_constraints.projectors import relax
    >>> class DoubleWellExample(AbstractModule):
    ...     kind: Literal["double_well_example"] = "double_well_example"
    ...     params: ClassVar[tuple[str, ...]] = ("c",)
    ...     c: float = 1.0
    ...     @staticmethod
    ...     def energy_grad(xp, eta, p):
    ...         u = eta * eta - 0.25
    ...         return p["c"] * u * u, 4 * p["c"] * eta * u
    ...     @staticmethod
    ...     def hessian_diagonal(xp, eta, p):
    ...         return p["c"] * (12 * eta * eta - 1)
    ...     @staticmethod
    ...     def curvature_bound(xp, one, p):
    ...         return 11 * p["c"] * one
    ...     def initial_eta(self):
    ...         return 0.9
    >>> system = System.model_validate({"id": "w", "modules": [{"kind": "double_well_example", "id": "m", "c": 2.0}]})
    >>> round(relax(system, RelaxConfig(steps=300, step_size=0.05)).eta_of("m"), 4)
    0.5
    >>> module_kinds.unregister("double_well_example")  # a doctest cleans up after itself
    """

    params: ClassVar[tuple[str, ...]] = ()
    weight: float = Field(1.0, ge=0)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        module_kinds.register(cls)

    @staticmethod
    def energy_grad(xp, eta, p: Mapping[str, Any]):  # pragma: no cover - abstract
        """Return ``(f(η), f'(η))`` element-wise."""
        raise NotImplementedError

    @staticmethod
    def hessian_diagonal(xp, eta, p: Mapping[str, Any]):  # pragma: no cover - abstract
        """Return ``f''(η)`` element-wise."""
        raise NotImplementedError

    @staticmethod
    def curvature_bound(xp, one, p: Mapping[str, Any]):
        r"""An upper bound on :math:`\max_{η∈[0,1]} |f''(η)|`, element-wise (``one``: ones, one per module).

        ``None`` (the default) when the kind knows no bound: the stability
        guard then refuses a System holding it, naming the kind.
        """
        return None

    @classmethod
    def curvature_unbounded(cls, p: Mapping[str, Any]) -> tuple[str, Any, str]:
        """``(field, value, reason)`` for the stability guard's refusal when :meth:`curvature_bound` gives ``None``."""
        return ("curvature_bound", None,
                f"the module kind {cls.model_fields['kind'].default!r} defines no curvature_bound(xp, one, p) "
                f"(an upper bound on |f''| over [0, 1]); define it on {cls.__name__}")

    @classmethod
    def parameter_arrays(cls, members: Sequence[AbstractModule]) -> dict[str, np.ndarray]:
        """The ``p`` that the formulas read, for ``members`` (modules of this kind) on numpy, one row per member.

        >>> p = LandauModule.parameter_arrays([LandauModule(id="m", a=-1.0)])
        >>> LandauModule.energy_grad(np, np.array([0.5]), p)[0]
        array([-0.1875])
        """
        return {p: np.asarray([getattr(m, p) for m in members], np.float64) for p in cls.params}

    def initial_eta(self) -> float:  # pragma: no cover - abstract
        """η at which relaxation starts when the run does not prescribe one."""
        raise NotImplementedError


def quartic_curvature_bound(xp, c2, c4, d2_max):
    """max |2·c2 + 12·c4·d²| over d² ∈ [0, d2_max]: the quartic well's f'' is monotone in d², so an endpoint."""
    return xp.maximum(xp.abs(2 * c2), xp.abs(2 * c2 + 12 * c4 * d2_max))


class LandauModule(AbstractModule):
    r"""A Landau well: :math:`f(η) = a η^2 + b η^4 - h η`.

    .. math::
        f'(η) = 2aη + 4bη^3 - h, \qquad f''(η) = 2a + 12bη^2

    For ``a < 0`` (and ``h = 0``) the minimum sits at :math:`η^* = \sqrt{-a/2b}`.

    Args:
        a: quadratic coefficient, any real.
        b: quartic coefficient, > 0 (keeps f bounded below).
        h: linear field.
        eta0: the starting η when a run prescribes none.

    >>> import numpy as np
    >>> f, g = LandauModule.energy_grad(np, np.array([0.5]), {"a": np.array([-1.0]), "b": np.array([1.0]), "h": np.array([0.0])})
    >>> float(f[0]), float(g[0])
    (-0.1875, -0.5)
    """

    kind: Literal["landau"] = "landau"
    params: ClassVar[tuple[str, ...]] = ("a", "b", "h")
    a: float = 0.0
    b: float = Field(1.0, gt=0)
    h: float = 0.0
    eta0: float = Field(0.5, ge=0, le=1)

    @staticmethod
    def energy_grad(xp, eta, p):
        a, b, h = p["a"], p["b"], p["h"]
        eta2 = eta * eta
        return eta2 * (a + b * eta2) - h * eta, eta * (2 * a + 4 * b * eta2) - h

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return 2 * p["a"] + 12 * p["b"] * eta * eta

    @staticmethod
    def curvature_bound(xp, one, p):
        return quartic_curvature_bound(xp, p["a"] * one, p["b"] * one, 1.0)

    def initial_eta(self) -> float:
        return self.eta0


def softplus(x: float) -> float:
    """Numerically stable ``log(1 + e^x)``."""
    return x if x > 30 else math.log1p(math.exp(x)) if x > -30 else math.exp(x)


class GateModule(AbstractModule):
    r"""A gate: η is the probability that the gate opens in one unit of time.

    Measurement of the net gain :math:`x = k\,(gain - cost)`, by ``measurement``:

    - ``"hazard"`` (default): :math:`λ = \mathrm{softplus}(x)`, :math:`η_0 = 1 - e^{-λ}`;
    - ``"logistic"``: :math:`η_0 = σ(x)`;
    - ``"straight_through"``: the hard decision :math:`η_0 = 1` if the hazard
      probability reaches ``st_threshold``, else 0.

    Energy: :math:`f(η) = aη^2 + bη^4` (minimum at 0, so opening is expensive
    unless a coupling pays for it).

    .. math::
        f'(η) = 2aη + 4bη^3, \qquad f''(η) = 2a + 12bη^2

    The gate counts as open while ``η >= threshold``.

    >>> g = GateModule(id="g", gain=0.0, cost=0.1, k=10.0)
    >>> round(g.initial_eta(), 6), round(g.evolve(measurement="logistic").initial_eta(), 6)
    (0.268941, 0.268941)
    >>> GateModule(id="g", gain=0.2, measurement="straight_through").initial_eta()
    1.0
    """

    kind: Literal["gate"] = "gate"
    params: ClassVar[tuple[str, ...]] = ("a", "b")
    gain: float = 0.0
    cost: float = 0.1
    k: float = Field(10.0, gt=0)
    a: float = Field(0.1, ge=0)
    b: float = Field(0.1, ge=0)
    threshold: float = Field(0.5, gt=0, le=1)
    measurement: Literal["hazard", "logistic", "straight_through"] = "hazard"
    st_threshold: float = Field(0.5, ge=0, le=1)

    @staticmethod
    def energy_grad(xp, eta, p):
        a, b = p["a"], p["b"]
        eta2 = eta * eta
        return eta2 * (a + b * eta2), eta * (2 * a + 4 * b * eta2)

    @staticmethod
    def hessian_diagonal(xp, eta, p):
        return 2 * p["a"] + 12 * p["b"] * eta * eta

    @staticmethod
    def curvature_bound(xp, one, p):
        return quartic_curvature_bound(xp, p["a"] * one, p["b"] * one, 1.0)

    def hazard(self, gain: float) -> float:
        """λ = softplus(k · (gain − cost)) ≥ 0."""
        return softplus(self.k * (gain - self.cost))

    def measure(self, gain: float) -> float:
        """η₀ for an observed ``gain``, by this gate's ``measurement`` (see the class)."""
        x = self.k * (gain - self.cost)
        if self.measurement == "logistic":
            return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        soft = -math.expm1(-softplus(x))
        if self.measurement == "straight_through":
            return 1.0 if soft >= self.st_threshold else 0.0
        return soft

    def initial_eta(self) -> float:
        return self.measure(self.gain)
