"""The coordinator's controls, as frozen configs: each piece of the loop is one small model.

A field left at ``None`` switches its piece off. Everything here is data: the
behaviour lives in :mod:`projectors`, and every piece that acts during a run
records an event that says so.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, JsonValue, model_validator

from ._base import AbstractFrozen
from ._errors import InvalidEntityError

Fraction = Annotated[float, Field(ge=0, le=1)]


class DirectionConfig(AbstractFrozen):
    r"""How a gradient becomes a step direction (gradient solvers only).

    Applied in this order: diagonal preconditioning
    :math:`g_i ← g_i / \max(|D_{ii}|, \text{floor})` with :math:`D` the Hessian
    diagonal of every term (local and coupling) at η; norm clipping
    :math:`g ← g \min(1, \text{max\_norm}/‖g‖)`; normalisation :math:`g ← g/‖g‖`.

    ``update="mirror"`` takes a true mirror step for the binary-entropy mirror
    map: :math:`η' = σ(\operatorname{logit}(η) - α g)`, with η first clipped to
    :math:`[ε, 1-ε]`. Armijo backtracking then searches along that curve and
    measures the predicted decrease as :math:`⟨g, η - η'⟩` exactly as for
    Euclidean steps.

    >>> DirectionConfig(normalize=True).normalize
    True
    """

    normalize: bool = False
    max_norm: float | None = Field(None, gt=0)
    precondition: bool = False
    precondition_floor: float = Field(1e-3, gt=0)
    update: Literal["euclidean", "mirror"] = "euclidean"
    mirror_epsilon: float = Field(1e-9, gt=0, lt=0.5)


class StabilityConfig(AbstractFrozen):
    r"""Step-size cap from a Lipschitz bound that holds on the whole box :math:`[0,1]^N`.

    Gershgorin: :math:`L = \max_i \big(D_i + O_i\big)` with
    :math:`D_i = w_i \max_{[0,1]}|f_i''| + Σ_{e∋i} w_e \max|∂_i^2φ_e|` and
    :math:`O_i = Σ_{e∋i} w_e \max|∂_i∂_jφ_e|` (each kind supplies its largest
    curvature on the box). The step is capped at ``cap_fraction · 2/L``; the
    contraction margin :math:`2/L - α` is recorded on every step, and a
    ``MarginWarning`` is emitted when it falls below ``warn_margin``.

    ``coupling_target`` scales every coupling weight by the largest
    :math:`s ≤ 1` with :math:`L(s) ≤` target (a ``CouplingsCapped`` event).

    >>> StabilityConfig(coupling_target=4.0).cap_fraction
    0.9
    """

    cap_fraction: float = Field(0.9, gt=0, le=1)
    warn_margin: float | None = Field(None, ge=0)
    coupling_target: float | None = Field(None, gt=0)


class HomotopyConfig(AbstractFrozen):
    r"""Continuation: ramp term scales from a start to 1 over ``steps`` steps.

    :math:`s(t) = s_0 + (1 - s_0)\min(1, t/T)` multiplies the weight of every
    entity of a kind in ``kind_starts``, of every coupling when
    ``coupling_start`` is set, and of every entity in ``entity_starts``
    (scales multiply). It scales the energy itself, whether or not any weight
    was configured. Each change is an ``ObjectiveScaled`` event, and the
    reference energy is re-evaluated under the new objective before the step's
    acceptance test. After ``patience`` rejected steps during the ramp, every
    start backs off: :math:`s_0 ← \max(\text{min\_start}, s_0 · \text{backoff})`
    (a ``HomotopyBackedOff`` event).

    >>> HomotopyConfig(steps=10, coupling_start=0.1).coupling_start
    0.1
    """

    steps: int = Field(ge=1)
    coupling_start: Fraction | None = None
    kind_starts: dict[str, Fraction] = {}
    entity_starts: dict[str, Fraction] = {}
    backoff_factor: float = Field(0.5, gt=0, lt=1)
    min_start: Fraction = 0.05
    patience: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check_any(self) -> HomotopyConfig:
        if self.coupling_start is None and not self.kind_starts and not self.entity_starts:
            raise InvalidEntityError("HomotopyConfig", None, "coupling_start", None,
                                     "set coupling_start, kind_starts or entity_starts")
        return self


class NoiseControllerConfig(AbstractFrozen):
    r"""Automatic noise scale: :math:`s = \mathrm{clamp}(w_r r + w_b b + w_θ θ, s_{min}, s_{max})`.

    r = max(0, 1 − 10·drop ratio), b = 1 if the last step backtracked, θ =
    ½(1 − cos(g_t, g_{t−1})) (gradient rotation).
    """

    w_rate: float = Field(0.5, ge=0)
    w_backtrack: float = Field(0.2, ge=0)
    w_rotation: float = Field(0.3, ge=0)
    min_scale: float = Field(0.0, ge=0)
    max_scale: float = Field(1.0, gt=0)


class NoiseConfig(AbstractFrozen):
    r"""Exploration noise orthogonal to the gradient, from the run's seeded generator.

    :math:`z \sim N(0, I)`; ``mode="tangent"``:
    :math:`z_⊥ = z - \frac{⟨z, g⟩}{‖g‖^2} g`; ``mode="metric"``: orthogonal in
    the metric :math:`M = \mathrm{diag}(\max(|D_{ii}|, \text{floor}))`,
    :math:`z_⊥ = z - \frac{⟨z, g⟩_M}{⟨g, g⟩_M} g`. The added vector is
    :math:`m_t z_⊥ / ‖z_⊥‖` with :math:`m_t = m_0 · \text{decay}^t`
    (times the controller's scale when set).

    Acceptance under noise: noise is added to the step the solver proposed;
    the noisy point is kept only if its objective does not exceed the current
    state's, otherwise the noiseless proposal is kept (recorded as
    ``noise = 0`` in the step's diagnostics). Noise never makes a run worse.
    """

    magnitude: float = Field(gt=0)
    decay: float = Field(0.99, gt=0, le=1)
    mode: Literal["tangent", "metric"] = "tangent"
    controller: NoiseControllerConfig | None = None


class FreeEnergyConfig(AbstractFrozen):
    r"""Relax the free energy :math:`U - T·S` instead of U.

    :math:`S = Σ_i H(η_i)`, :math:`H(p) = -p\ln p - (1-p)\ln(1-p)` with η
    clipped to :math:`[10^{-9}, 1 - 10^{-9}]`. Directions and acceptance both
    use :math:`U - TS` (a step is accepted when it lowers it by at least
    ``epsilon``; a rejected step is retried smaller, never ends the run).
    ``StepCommitted.energy`` stays U; the free energy is in the diagnostics.
    """

    temperature: float = Field(1.0, gt=0)
    epsilon: float = Field(0.0, ge=0)


class EarlyStopConfig(AbstractFrozen):
    """Stop (status ``early_stopped``) after ``patience`` consecutive accepted steps with |ΔE| < ``delta``."""

    patience: int = Field(5, ge=1)
    delta: float = Field(1e-6, ge=0)


class DiagnosticsConfig(AbstractFrozen):
    r"""Recorded diagnostics (no effect on the trajectory).

    - dispersion: :math:`\frac1N Σ_i \mathrm{std}_t(η_i)` over the last ``window`` accepted states;
    - confidence: :math:`σ\big(a(ρ_{max} - r) - b·\text{dispersion}\big)` with
      :math:`r = (E_{t-W} - E_t)/\max(E_0 - E_t, 10^{-12})`, the share of the run's
      total energy drop made within the window (1 while the run moves, → 0 as it settles);
    - escape: an ``EscapeDetected`` event when noise ≥ ``escape_noise_min``,
      ‖Δη‖ ≥ ``escape_displacement_min``, cos(Δη, −g) ≤ ``escape_cosine_max``
      and the energy drop ≥ ``escape_drop_min``.
    """

    window: int = Field(10, ge=2)
    confidence_a: float = 1.0
    confidence_b: float = 1.0
    confidence_rho_max: float = 1.0
    escape_noise_min: float = Field(1e-6, ge=0)
    escape_displacement_min: float = Field(1e-3, ge=0)
    escape_cosine_max: float = Field(0.2, ge=-1, le=1)
    escape_drop_min: float = Field(1e-6, ge=0)


class CoordinateConfig(AbstractFrozen):
    r"""Gauss–Southwell coordinate descent (``solver="coordinate"``, and the stall fallback of ``"adaptive"``).

    One step is ``updates`` single-coordinate updates (``None``: N). Each picks
    :math:`i = \arg\max_i |η_i - \mathrm{clip}(η_i - g_i)|`, takes the 1-D
    Newton step :math:`η_i ← \mathrm{clip}(η_i - g_i/\max(D_{ii}, \text{floor}))`,
    checks the local energy change of the terms touching i (halving the step
    up to ``max_backtracks`` times; a coordinate that cannot decrease is left
    as it was) and updates the gradient of i and its neighbours incrementally.

    ``switch_delta``/``switch_patience`` (adaptive only): run one coordinate
    step after ``switch_patience`` consecutive gradient steps that lowered the
    energy by less than ``switch_delta`` (a ``SolverSwitched`` event).
    """

    updates: int | None = Field(None, ge=1)
    curvature_floor: float = Field(1e-3, gt=0)
    max_backtracks: int = Field(10, ge=0)
    switch_delta: float = Field(1e-5, gt=0)
    switch_patience: int = Field(5, ge=1)


class ProximalConfig(AbstractFrozen):
    r"""Operator splitting (``solver="proximal"``): forward step on local terms, closed-form proxes on edges.

    One sweep (``block="pair"``): an explicit step :math:`x = η - τ∇𝓕(η)` on the
    whole objective, then, Gauss–Seidel over a colouring of the quadratic and
    hinge edges into matchings, each edge's exact prox on the box, taken at
    the anchor :math:`x + τw_e∇φ_e(η)` (its explicit step swapped for its
    implicit one, so a fixed point of the sweep is exactly a box-KKT point);
    gate benefits are linear, so their explicit step is already their prox;
    kinds without a prox keep their gradient step (never skipped).
    ``block="star"``: over a colouring of the nodes, each centre moves to the
    exact minimiser on [0, 1] of its incident prox-able terms (neighbours
    fixed) plus :math:`\frac1{2τ}(η_c - u_c)^2` at the forward point
    :math:`u = η - τ∇r` of the remaining terms r. O(edges) per sweep. A sweep
    that raises the energy is
    rejected and τ halves.
    """

    tau: float = Field(0.05, gt=0)
    block: Literal["pair", "star"] = "pair"


class AdmmConfig(AbstractFrozen):
    r"""ADMM on quadratic and hinge edges (``solver="admm"``).

    Quadratic edge k: :math:`s_k ≈ d_k = η_i - η_j` with
    s-update :math:`s = ρ(d - u)/(ρ + 2w)`; hinge edge: :math:`s_k ≈ g_k = βη_j - αη_i`
    (directed: α = β = 1), minimising :math:`w\max(0, s)^2 + \frac ρ2(s - g + u)^2`:
    :math:`s = ρx/(ρ + 2w)` for :math:`x = g - u > 0`, else :math:`s = x`. Per iteration: the s-update,
    one projected-gradient η-step of size ``step_size`` on the local terms,
    the other couplings and the augmented terms :math:`\frac ρ2‖s - d + u‖^2`,
    then :math:`u ← u + s - d`. Primal :math:`‖s - d‖` and dual
    :math:`ρ‖d - d_{prev}‖` residuals are recorded each step. An iterate whose
    energy exceeds the best accepted one is recorded as not accepted; ADMM
    continues from its own iterate while the run keeps the best state.
    """

    rho: float = Field(1.0, gt=0)
    step_size: float = Field(0.05, gt=0)


class AcceleratedConfig(AbstractFrozen):
    r"""FISTA-style accelerated projected gradient (``solver="accelerated"``).

    :math:`y = x_k + \frac{t_{k-1} - 1}{t_k}(x_k - x_{k-1})`,
    :math:`x_{k+1} = \mathrm{clip}(y - α∇𝓕(y))` with backtracking on the
    quadratic upper bound, and a restart (momentum reset, then a plain
    projected-gradient step from :math:`x_k`) whenever :math:`𝓕(x_{k+1}) > 𝓕(x_k)`
    (``restart="function"``) or :math:`⟨∇𝓕(y), x_{k+1} - x_k⟩ > 0` (``"gradient"``).
    """

    restart: Literal["function", "gradient"] = "function"


class _WeightingBase(AbstractFrozen):
    """Shared weighting settings: act after every ``every`` accepted steps; keep each kind's weight within
    ``[floor, ceiling]`` × its configured weight (so a configured 2.5 with ceiling 2 may reach 5)."""

    every: int = Field(1, ge=1)
    floor: float = Field(0.0, ge=0)
    ceiling: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_bounds(self):
        if self.ceiling is not None and self.ceiling < self.floor:
            raise InvalidEntityError(type(self).__name__, None, "ceiling", self.ceiling, f"must be ≥ floor ({self.floor})")
        return self


class AutoBalanceWeighting(_WeightingBase):
    r"""Per-term balance: when :math:`‖∇_k‖/\text{target} > \text{max\_ratio}`, :math:`w_k ← w_k · \text{target}/‖∇_k‖`."""

    kind: Literal["auto_balance"] = "auto_balance"
    target: float = Field(1.0, gt=0)
    max_ratio: float = Field(10.0, ge=1)


class GradNormWeighting(_WeightingBase):
    r"""GradNorm: :math:`r_k = ‖∇_k‖/\text{target}`, :math:`w_k ← \mathrm{clamp}(w_k(1 + λα(1 - r_k)))`."""

    kind: Literal["gradnorm"] = "gradnorm"
    target: float = Field(1.0, gt=0)
    alpha: float = Field(1.5, ge=0)
    rate: float = Field(0.1, gt=0)
    floor: float = Field(0.1, ge=0)
    ceiling: float | None = Field(2.0, gt=0)


class AgmPhaseWeighting(_WeightingBase):
    r"""Phase weighting on the relative-change statistics of the energy history.

    rate = mean of :math:`r_t = \mathrm{clip}(1 - |E_t - E_{t+1}|/(|E_t| + |E_{t+1}| + 10^{-8}))`,
    trend = slope over the last 5 rates, oscillation = Var(|Δr|). When rate >
    0.7, trend > 0 and oscillation < 0.05, every coupling kind's weight is
    multiplied by ``increase`` and the gate kind's by ``decrease``; when rate <
    0.3 or oscillation > 0.1, the opposite; otherwise nothing changes.
    """

    kind: Literal["agm_phase"] = "agm_phase"
    increase: float = Field(1.05, gt=1)
    decrease: float = Field(0.97, gt=0, lt=1)
    history: int = Field(20, ge=3)


class SmallGainWeighting(_WeightingBase):
    r"""Spend a fraction ρ of the stability margin on the most useful coupling families.

    Each coupling kind k has a value :math:`v_k = ‖∇_k‖^2` (EMA score
    :math:`v_k / c_k`) and a cost :math:`c_k = \max_i R_{k,i}`, its largest
    row contribution to the Gershgorin bound L. With the step α, the margin is
    :math:`L_{max} - L` where :math:`L_{max} = 2·\text{cap}/α` and the budget
    is :math:`B = ρ(L_{max} - L)`. Kinds are visited by score; each proposes
    :math:`w_k(1 + Δw)` (clamped), and the change is committed only if the
    exact new bound :math:`L' = \max_i Σ_k (w'_k/w_k) R_{k,i}` keeps the spend
    :math:`L' - L ≤ B`. Kinds with zero curvature cost (gate benefits) are
    never adapted: their weight is not a stability question.
    """

    kind: Literal["small_gain"] = "small_gain"
    rho: float = Field(0.7, gt=0, le=1)
    max_step_change: float = Field(0.10, gt=0)
    cap_fraction: float = Field(0.9, gt=0, le=1)
    ema: float = Field(0.3, gt=0, le=1)
    floor: float = Field(0.1, ge=0)
    ceiling: float | None = Field(3.0, gt=0)


class GspoTokenWeighting(_WeightingBase):
    r"""Term weights learned by a small GSPO-trained token policy (needs torch; found through its entry point).

    Prompt: each kind's ratio :math:`\min(‖∇_k‖/\text{target}, \text{max\_ratio})`
    bucketised into ``buckets`` tokens (kinds in sorted order). A GRU policy
    answers one token per kind; a token t decodes to the weight
    :math:`\text{floor} + t/(B-1)·(\text{ceiling} - \text{floor})`. Reward:
    :math:`-\text{mean}_k|w_k(t) - w_k^*|` with
    :math:`w_k^* = \mathrm{clamp}(w_k·\text{target}/‖∇_k‖)`, the weight that
    would bring the kind's gradient norm to the target. Each adaptation
    samples ``group`` answers from a reference copy of the policy, takes
    group-normalised advantages :math:`A = (r - \bar r)/(σ_r + 10^{-8})` and
    one Adam step on the GSPO loss
    :math:`-\text{mean}\,\min(sA, \mathrm{clip}(s, 1±ε)A)` with the
    length-normalised ratio :math:`s = \exp((\log π - \log π_{ref})/|y|)`;
    the reference syncs every ``ref_sync`` updates. The greedy answer is
    blended into the weights at ``apply_rate``. Seeded by ``seed``.
    """

    kind: Literal["gspo_token"] = "gspo_token"
    target: float = Field(1.0, gt=0)
    floor: float = Field(0.05, ge=0)
    ceiling: float | None = Field(4.0, gt=0)
    buckets: int = Field(16, ge=2, le=256)
    max_ratio: float = Field(4.0, gt=0)
    group: int = Field(4, ge=2)
    epsilon: float = Field(0.2, gt=0, lt=1)
    lr: float = Field(5e-3, gt=0)
    hidden: int = Field(64, ge=1)
    apply_rate: float = Field(0.35, gt=0, le=1)
    ref_sync: int = Field(10, ge=1)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check_ceiling(self) -> GspoTokenWeighting:
        if self.ceiling is None:
            raise InvalidEntityError("GspoTokenWeighting", None, "ceiling", None, "needs a finite ceiling to decode tokens")
        return self


class CustomWeighting(_WeightingBase):
    """A weighting of your own, found by ``name`` when the run starts (and again when it is re-run).

    ``projectors.register_weighting(name, factory)`` makes ``factory(config)``
    build it in this process; an installed package can offer ``name`` as an
    entry point of ``complexity_from_constraints.weightings`` instead.
    ``options`` are yours, recorded with the run (JSON values).

    >>> CustomWeighting(name="halve", options={"factor": 0.5}).options
    {'factor': 0.5}
    """

    kind: Literal["custom"] = "custom"
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)
    options: dict[str, JsonValue] = {}


WeightingConfig = Annotated[
    Union[AutoBalanceWeighting, GradNormWeighting, AgmPhaseWeighting, SmallGainWeighting, GspoTokenWeighting, CustomWeighting],
    Field(discriminator="kind"),
]


class WarmStart(AbstractFrozen):
    """An amortizer's proposal, recorded in the run's config (and a ``WarmStartProposed`` event).

    ``eta0`` replaces the config's starting state; for the first
    ``active_steps`` steps only the modules in ``active`` move.
    """

    source: str
    signature: str | None = None
    eta0: tuple[Fraction, ...]
    active: tuple[str, ...] = ()
    active_steps: int = Field(0, ge=0)
    confidence: Fraction | None = None


SNAPSHOT_MIN_MODULES = 100_000
"""``snapshots="auto"`` records η every step below this many modules, every ``SnapshotConfig().every`` steps from it on."""


class SnapshotConfig(AbstractFrozen):
    r"""Snapshot mode: record η every ``every`` steps (and at the last step), every step's scalars as always.

    At steps 0, ``every``, 2·``every``, … the run records the full η (an
    ``EtaRecorded``, accepted step or not) and the loop's whole state there (a
    ``LoopSnapshotted``: the solver's inner state, the weights, the homotopy
    and noise state, the pieces' counters); between them only η is left out:
    ``StepCommitted``, gate events and every other event are recorded as in
    "every step" mode. ``replay`` of an unrecorded step re-runs the loop from
    the nearest snapshot at or before it and checks every regenerated event
    against the log, bit for bit (see ``projectors.replay``).

    ``RelaxConfig.snapshots`` defaults to ``"auto"``: ``relax`` writes the
    choice into the recorded config, so a re-run repeats it. It keeps "every
    step" (``None``) below :data:`SNAPSHOT_MIN_MODULES` modules, where a frame
    is under 0.8 MB and recording every η costs little next to the step,
    and every view can read η at any step; from 10⁵ modules on the frames
    are most of the run's time and storage (8 bytes per module per step), so
    it records one every 10 steps, which bounds a replay to fewer than 10
    re-run steps.

    With ``previous`` (the default) η is also recorded at the step before
    each snapshot, and an array of the loop's state equal to it bit for bit
    (the accelerated solver's previous iterate) is kept as a reference to that
    frame rather than as its bytes: at 10⁵ modules a snapshot of the
    accelerated solver shrinks from about 1 MB of text to a few hundred bytes
    beside a frame of about 0.6 MB compressed. Runs recorded before this
    field embed the array (``previous=False``).

    >>> SnapshotConfig(every=3).every
    3
    """

    every: int = Field(10, ge=1)
    previous: bool = True
