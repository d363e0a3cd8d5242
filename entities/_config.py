"""Run configuration: how the coordinator relaxes a System."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from ._base import AbstractFrozen
from ._couplings import AbstractCoupling, coupling_kinds
from ._errors import InvalidEntityError
from ._modules import AbstractModule, module_kinds
from ._settings import (
    AcceleratedConfig,
    WeightingConfig,
    AdmmConfig,
    CoordinateConfig,
    DiagnosticsConfig,
    DirectionConfig,
    EarlyStopConfig,
    FreeEnergyConfig,
    HomotopyConfig,
    NoiseConfig,
    ProximalConfig,
    SNAPSHOT_MIN_MODULES,
    SnapshotConfig,
    StabilityConfig,
    WarmStart,
)

BUILT_IN_SOLVERS = ("projected_gradient", "accelerated", "coordinate", "adaptive", "proximal", "admm", "lbfgsb")
"""The solvers ``projectors`` provides; ``register_solver`` (or an entry point) adds more by name."""


class Revision(AbstractFrozen):
    """Change fields of one entity at the start of ``step`` (an ``EntityRevised`` event).

    The entity is re-validated through ``evolve`` (its version goes up by one);
    ``id`` and ``kind`` cannot change.

    >>> Revision(step=10, entity_id="q", changes={"weight": 2.0}).step
    10
    """

    step: int = Field(ge=1)
    entity_id: str
    changes: dict[str, Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_changes(self) -> Revision:
        for key in ("id", "kind", "version"):
            if key in self.changes:
                raise InvalidEntityError("Revision", None, f"changes.{key}", self.changes[key], "cannot be revised")
        return self


class Candidate(AbstractFrozen):
    """One module offered for expansion, with the couplings that tie it to the System."""

    module: SerializeAsAny[AbstractModule]
    couplings: tuple[SerializeAsAny[AbstractCoupling], ...] = ()

    @field_validator("module", mode="before")
    @classmethod
    def _parse_module(cls, item: Any) -> AbstractModule:
        return module_kinds.parse_many([item], "Candidate", "module")[0]  # type: ignore[return-value]

    @field_validator("couplings", mode="before")
    @classmethod
    def _parse_couplings(cls, items: Any) -> tuple[AbstractCoupling, ...]:
        return coupling_kinds.parse_many(items, "Candidate", "couplings")  # type: ignore[return-value]


class ExpansionConfig(AbstractFrozen):
    r"""Energy-gated expansion (equation 4 of the seed): admit a module only if it pays for itself.

    Every ``every`` steps the next candidate is evaluated: its η starts at
    its ``initial_eta()`` and is relaxed by projected-gradient steps of size
    ``local_step_size`` (halved after a step that does not lower 𝓕) with every
    existing η held fixed, until its projected gradient
    :math:`|\mathrm{clip}(η_{new} - ∂𝓕/∂η_{new}) - η_{new}|` is at most
    ``local_tol`` (converged) or ``local_steps`` steps (the cap) are spent;
    ``local_tol = 0`` always spends the cap (the behaviour before the stop
    existed); then

    .. math::
        ΔF_{new} = 𝓕(η, η_{new}) + γ - 𝓕(η)

    (γ the System's ``complexity_cost``). The candidate is admitted when
    :math:`ΔF_{new} < -τ` (``ModuleAdded``), else refused (``ExpansionRejected``).
    ``candidates`` are offered in order; a proposer passed to ``relax`` may
    offer them instead.
    """

    every: int = Field(10, ge=1)
    tau: float = Field(0.0, ge=0)
    local_steps: int = Field(2000, ge=0, description="cap on the candidate's local relaxation steps")
    local_tol: float = Field(1e-8, ge=0, description="the local relaxation stops once the new η's projected "
                                                     "gradient is at most this (0: never, spend the cap)")
    local_step_size: float = Field(0.1, gt=0)
    candidates: tuple[Candidate, ...] = ()


class RelaxConfig(AbstractFrozen):
    r"""How to relax a System on the box :math:`[0, 1]^N`: a solver and the pieces of its loop.

    ``solver`` picks how steps are proposed (every solver honours ``steps``,
    records step 0, commits one ``StepCommitted`` per step and returns the
    best accepted state):

    - ``"projected_gradient"`` (default), shaped by ``direction`` and ``line_search``;
    - ``"accelerated"``: FISTA-style with restart (``accelerated``);
    - ``"coordinate"``: Gauss–Southwell coordinate descent (``coordinate``);
    - ``"adaptive"``: projected gradient that switches to a coordinate step on stalls;
    - ``"proximal"``: operator splitting with closed-form edge proxes (``proximal``);
    - ``"admm"``: ADMM on quadratic and hinge edges (``admm``);
    - ``"lbfgsb"``: scipy's L-BFGS-B with bounds, as a reference (needs scipy).

    The other pieces, each off when ``None``: ``stability`` (step cap from a
    Lipschitz bound on the box), ``homotopy`` (term-scale ramps), ``noise``,
    ``free_energy`` (relax U − T·S), ``early_stop``, ``diagnostics``,
    ``weighting`` (term-weighting), ``warm_start`` (an amortizer's
    proposal); ``monotone="strict"`` raises if an accepted step ever raises U;
    ``record_terms_every`` records per-kind energies and gradient norms
    (``TermsRecorded``) every that many steps (0: never); ``snapshots``
    records η every step (``None``) or only every k steps with the loop's
    state (:class:`SnapshotConfig`); ``"auto"`` (the default) picks by the
    System's size when the run starts (:meth:`for_modules`).

    For the gradient solvers, each step proposes :math:`η' = \mathrm{clip}(η - α ∇𝓕(η), 0, 1)` and accepts
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
        revisions: entity changes applied at given steps (``EntityRevised``).
        expansion: energy-gated expansion (``ModuleAdded`` / ``ExpansionRejected``).
        backend: the array backend by name: ``"numpy"`` (built in) or
            ``"torch"`` (found through its entry point; needs the
            ``[torch]`` extra). ``relax`` builds it from these three fields
            unless it is handed a backend object, so the recorded config
            says what a run ran on and a re-run runs on the same.
        device: where the arrays live: ``"cpu"``, or for torch ``"cuda"`` /
            ``"cuda:1"`` (numpy accepts only ``"cpu"``).
        dtype: floating precision of η, parameters and energies,
            ``"float64"`` (default; numpy and torch runs agree step by step
            within 1e-10, in practice to rounding, with the same accept and
            reject decisions) or ``"float32"`` (half the memory, faster on
            GPUs; energies stay within 1e-4 relative of float64 over the
            first steps, and decisions near the floating-point floor can
            differ). Events always carry float64 copies.

    >>> RelaxConfig(steps=10).line_search
    'none'
    >>> RelaxConfig(backend="torch", device="cuda", dtype="float32").dtype
    'float32'
    """

    solver: str = Field("projected_gradient", pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    steps: int = Field(200, ge=0, le=10_000_000)
    step_size: float = Field(0.05, gt=0)
    line_search: Literal["none", "armijo"] = "none"
    armijo_c: float = Field(1e-4, gt=0, lt=1)
    backtrack_factor: float = Field(0.5, gt=0, lt=1)
    max_backtracks: int = Field(20, ge=0, le=200)
    tol: float = Field(1e-8, ge=0)
    min_step_size: float = Field(1e-12, ge=0)
    eta0: Literal["measured", "uniform"] | tuple[float, ...] = "measured"
    revisions: tuple[Revision, ...] = ()
    expansion: ExpansionConfig | None = None
    backend: str = Field("numpy", min_length=1)
    device: str = Field("cpu", min_length=1)
    dtype: Literal["float64", "float32"] = "float64"
    direction: DirectionConfig = DirectionConfig()
    accelerated: AcceleratedConfig = AcceleratedConfig()
    coordinate: CoordinateConfig = CoordinateConfig()
    proximal: ProximalConfig = ProximalConfig()
    admm: AdmmConfig = AdmmConfig()
    stability: StabilityConfig | None = None
    homotopy: HomotopyConfig | None = None
    noise: NoiseConfig | None = None
    free_energy: FreeEnergyConfig | None = None
    early_stop: EarlyStopConfig | None = None
    diagnostics: DiagnosticsConfig | None = None
    weighting: WeightingConfig | None = None
    warm_start: WarmStart | None = None
    monotone: Literal["off", "strict"] = "off"
    record_terms_every: int = Field(0, ge=0)
    snapshots: SnapshotConfig | Literal["auto"] | None = "auto"

    def for_modules(self, n: int) -> RelaxConfig:
        """This config with ``snapshots="auto"`` resolved for a System of ``n`` modules (itself when nothing is auto).

        >>> RelaxConfig().for_modules(10).snapshots is None
        True
        >>> RelaxConfig().for_modules(200_000).snapshots.every
        10
        """
        if self.snapshots != "auto":
            return self
        chosen = SnapshotConfig() if n >= SNAPSHOT_MIN_MODULES else None
        return type(self).model_validate({**dict(self), "snapshots": chosen})
