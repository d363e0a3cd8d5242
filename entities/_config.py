"""Run configuration: how the coordinator relaxes a System."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import AbstractFrozen


class RelaxConfig(AbstractFrozen):
    r"""Projected gradient descent on the box :math:`[0, 1]^N`.

    Each step proposes :math:`η' = \mathrm{clip}(η - α ∇𝓕(η), 0, 1)` and accepts
    it only if the energy does not increase (``line_search="none"``), or if it
    satisfies the projected Armijo condition
    :math:`𝓕(η') ≤ 𝓕(η) - c ⟨∇𝓕(η), η - η'⟩`, shrinking α by
    ``backtrack_factor`` up to ``max_backtracks`` times (``"armijo"``). A
    rejected proposal is never kept: η stays, α halves (or the Armijo search
    restarts from α) and the step is recorded as rejected.

    The run stops after ``steps`` proposals (status ``max_steps``), when the
    projected-gradient norm :math:`‖η - \mathrm{clip}(η - ∇𝓕(η))‖_2` falls
    below ``tol`` (``converged``), or at the floating-point floor, when a
    proposal leaves η bit-identical or α falls below ``min_step_size``
    (``stalled``; that last proposal is recorded as not accepted).

    Args:
        steps: number of proposals (step 0 is the initial state).
        step_size: α, the initial step.
        line_search: ``"none"`` or ``"armijo"``.
        armijo_c: sufficient-decrease constant c ∈ (0, 1).
        backtrack_factor: α shrink factor ∈ (0, 1).
        max_backtracks: trials per step before the step is rejected.
        tol: stop when the projected-gradient norm is below this.
        min_step_size: stop ("stalled") once α falls below this.
        eta0: ``"measured"`` (each module's ``initial_eta()``), ``"uniform"``
            (U[0, 1] from the run's seed) or an explicit list in module order.

    >>> RelaxConfig(steps=10).line_search
    'none'
    """

    solver: Literal["projected_gradient"] = "projected_gradient"
    steps: int = Field(200, ge=0, le=10_000_000)
    step_size: float = Field(0.05, gt=0)
    line_search: Literal["none", "armijo"] = "none"
    armijo_c: float = Field(1e-4, gt=0, lt=1)
    backtrack_factor: float = Field(0.5, gt=0, lt=1)
    max_backtracks: int = Field(20, ge=0, le=200)
    tol: float = Field(1e-8, ge=0)
    min_step_size: float = Field(1e-12, ge=0)
    eta0: Literal["measured", "uniform"] | tuple[float, ...] = "measured"
