"""The closed union of event types, their schema versions and upcasters.

Events are past-tense facts. Each has a ``type`` tag and a class-level
``schema_version``; a stored payload of an older version is brought up to date
by the upcasters registered for its type, one function per version step, and a
payload from a future version fails loudly.

η updates are the bulk of a run, so :class:`EtaRecorded` is columnar: one
read-only float64 array holding every module's η at one step, not one object
per η. It is still an event of the union, with its own type and version.
"""

from __future__ import annotations

import json
import math
import weakref
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from complexity_from_constraints.entities import RelaxConfig, SchemaVersionError, System


class AbstractEvent(BaseModel):
    """A small frozen fact; subclasses set ``type`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: ClassVar[int] = 1


class RunStarted(AbstractEvent):
    """A run began: everything needed to re-run it bit for bit."""

    type: Literal["RunStarted"] = "RunStarted"
    system: System
    config: RelaxConfig
    seed: int
    package_version: str
    system_digest: str
    parent_run_id: str | None = None
    parent_step: int | None = None

    schema_version: ClassVar[int] = 6  # v2: parent_run_id, parent_step (forks); v3: config.adapter is config.weighting;
    # v4: config.expansion.local_tol (older runs spent every local step: local_tol = 0); v5: config.snapshots;
    # v6: config.snapshots.previous (older snapshot runs embedded the previous iterate: previous = False)


StepReason = Literal[
    "initial", "decrease", "armijo", "energy_increase", "armijo_failed", "not_finite", "stalled",
    "accelerated", "restart", "coordinate", "no_coordinate_decrease", "prox", "admm", "above_best", "lbfgsb",
]


class StepCommitted(AbstractEvent):
    """One step of the coordinator, accepted or not.

    ``energy`` and ``pg_norm`` describe the state after the step (the previous
    state when the proposal was rejected); ``trial_energy`` is the proposal's
    energy (``None`` for step 0 or when it was not finite).
    """

    type: Literal["StepCommitted"] = "StepCommitted"
    step: int
    energy: float
    pg_norm: float
    step_size: float
    backtracks: int
    accepted: bool
    reason: StepReason
    trial_energy: float | None = None
    diagnostics: dict[str, float] = {}

    schema_version: ClassVar[int] = 2  # v2: diagnostics


class GateOpened(AbstractEvent):
    """A gate's η reached its threshold at ``step``."""

    type: Literal["GateOpened"] = "GateOpened"
    gate_id: str
    step: int
    eta: float


class GateClosed(AbstractEvent):
    """A gate's η fell below its threshold at ``step``."""

    type: Literal["GateClosed"] = "GateClosed"
    gate_id: str
    step: int
    eta: float


class EntityRevised(AbstractEvent):
    """An entity's fields changed at the start of ``step``; ``entity`` is the new version, whole."""

    type: Literal["EntityRevised"] = "EntityRevised"
    step: int
    entity_id: str
    version: int
    changes: dict[str, Any]
    entity: dict[str, Any]


class ModuleAdded(AbstractEvent):
    """Expansion admitted ``module`` (with ``couplings``) at ``step``: it lowered 𝓕 by more than τ.

    ``eta`` is the new module's η after its local relaxation; ``parent_id`` the
    existing module whose coupling to it contributed the largest benefit
    (most negative coupling energy), if any.
    """

    type: Literal["ModuleAdded"] = "ModuleAdded"
    step: int
    module: dict[str, Any]
    couplings: list[dict[str, Any]]
    delta_f: float
    tau: float
    eta: float
    parent_id: str | None


class ExpansionRejected(AbstractEvent):
    """Expansion refused a candidate at ``step``: ΔF_new ≥ −τ."""

    type: Literal["ExpansionRejected"] = "ExpansionRejected"
    step: int
    module_id: str
    delta_f: float
    tau: float


class WarmStartProposed(AbstractEvent):
    """An amortizer proposed the starting state and an active set (recorded in the config's ``warm_start``)."""

    type: Literal["WarmStartProposed"] = "WarmStartProposed"
    source: str
    signature: str | None
    active: list[str]
    active_steps: int
    confidence: float | None


class StabilityBounded(AbstractEvent):
    """A Lipschitz bound L on the box was computed (at the start and whenever the objective changed)."""

    type: Literal["StabilityBounded"] = "StabilityBounded"
    step: int
    lipschitz: float
    step_cap: float


class CouplingsCapped(AbstractEvent):
    """Every coupling weight was scaled by ``scale`` so that L falls to ``target``."""

    type: Literal["CouplingsCapped"] = "CouplingsCapped"
    step: int
    scale: float
    target: float
    lipschitz_before: float
    lipschitz_after: float


class MarginWarning(AbstractEvent):
    """The contraction margin 2/L − α fell below the configured threshold."""

    type: Literal["MarginWarning"] = "MarginWarning"
    step: int
    margin: float
    threshold: float
    lipschitz: float
    step_size: float


class ObjectiveScaled(AbstractEvent):
    """Homotopy changed the term scales (keys: ``kind:<kind>`` or ``entity:<id>``); the objective changed."""

    type: Literal["ObjectiveScaled"] = "ObjectiveScaled"
    step: int
    scales: dict[str, float]


class HomotopyBackedOff(AbstractEvent):
    """Rejected steps during the ramp: every homotopy start was lowered."""

    type: Literal["HomotopyBackedOff"] = "HomotopyBackedOff"
    step: int
    starts: dict[str, float]


class WeightsAdapted(AbstractEvent):
    """A weighting changed the per-kind term weights; ``weights`` are the new ones, in full."""

    type: Literal["WeightsAdapted"] = "WeightsAdapted"
    step: int
    weighting: str
    weights: dict[str, float]
    previous: dict[str, float]
    details: dict[str, float] = {}

    schema_version: ClassVar[int] = 2  # v2: the field "adapter" is "weighting"


class SolverSwitched(AbstractEvent):
    """The adaptive solver ran a step with ``solver`` instead of its default."""

    type: Literal["SolverSwitched"] = "SolverSwitched"
    step: int
    solver: str
    reason: str


class EscapeDetected(AbstractEvent):
    """A noisy step moved far, against the gradient's direction, and still lowered the energy."""

    type: Literal["EscapeDetected"] = "EscapeDetected"
    step: int
    noise: float
    displacement: float
    cosine: float
    drop: float


class TermsRecorded(AbstractEvent):
    """Per-kind weighted energy and gradient norm at ``step`` (see ``RelaxConfig.record_terms_every``)."""

    type: Literal["TermsRecorded"] = "TermsRecorded"
    step: int
    energy: dict[str, float]
    grad_norm: dict[str, float]


class RunFinished(AbstractEvent):
    """The run ended; ``final_digest`` identifies the returned state."""

    type: Literal["RunFinished"] = "RunFinished"
    status: Literal["converged", "max_steps", "stalled", "early_stopped", "diverged"]
    steps: int
    final_energy: float
    best_step: int
    final_digest: str


class LoopSnapshotted(AbstractEvent):
    """Snapshot mode: the relaxation loop's whole state after ``step``, to go on from there bit for bit.

    ``state`` is the loop's state as JSON (exact: floats round-trip, ±inf and
    NaN are written as such, arrays as base64 of their bytes); η itself is the
    ``EtaRecorded`` of the same step unless the state holds it (a float32
    run). ``blocked_by`` names the piece or solver that cannot resume mid-run
    (``state`` is then empty and replay re-runs from the start).
    """

    type: Literal["LoopSnapshotted"] = "LoopSnapshotted"
    step: int
    state: str = ""
    blocked_by: str | None = None


@dataclass(frozen=True, eq=False)
class EtaRecorded:
    """Every module's η after ``step`` (columnar; module order of the System)."""

    step: int
    eta: np.ndarray = field(repr=False)
    type: ClassVar[str] = "EtaRecorded"
    schema_version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        arr = np.asarray(self.eta, dtype=np.float64)
        if arr.flags.writeable:  # the coordinator hands over read-only arrays; copy anything else
            arr = arr.copy()
            arr.setflags(write=False)
        object.__setattr__(self, "eta", arr)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EtaRecorded) and self.step == other.step
                and self.eta.shape == other.eta.shape and self.eta.tobytes() == other.eta.tobytes())

    __hash__ = None  # type: ignore[assignment]


_MODEL_CLASSES = (RunStarted, StepCommitted, GateOpened, GateClosed, EntityRevised, ModuleAdded, ExpansionRejected,
                  WarmStartProposed, StabilityBounded, CouplingsCapped, MarginWarning, ObjectiveScaled,
                  HomotopyBackedOff, WeightsAdapted, SolverSwitched, EscapeDetected, TermsRecorded, LoopSnapshotted,
                  RunFinished)
ModelEvent = Annotated[Union[_MODEL_CLASSES], Field(discriminator="type")]  # type: ignore[valid-type]
Event = Union[RunStarted, StepCommitted, GateOpened, GateClosed, EntityRevised, ModuleAdded, ExpansionRejected,
              WarmStartProposed, StabilityBounded, CouplingsCapped, MarginWarning, ObjectiveScaled, HomotopyBackedOff,
              WeightsAdapted, SolverSwitched, EscapeDetected, TermsRecorded, LoopSnapshotted, RunFinished, EtaRecorded]

_MODEL_EVENTS: dict[str, type[AbstractEvent]] = {cls.model_fields["type"].default: cls for cls in _MODEL_CLASSES}
EVENT_TYPES: tuple[str, ...] = (*_MODEL_EVENTS, EtaRecorded.type)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ModelEvent)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``fn(payload) -> payload`` that lifts ``event_type`` from ``from_version`` to the next."""

    def decorate(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorate


def current_version(event_type: str) -> int:
    """The schema version this code writes for ``event_type``."""
    if event_type == EtaRecorded.type:
        return EtaRecorded.schema_version
    try:
        return _MODEL_EVENTS[event_type].schema_version
    except KeyError:
        raise SchemaVersionError(f"unknown event type {event_type!r}") from None


def upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored payload from ``version`` to the current schema version."""
    target = current_version(event_type)
    if version > target:
        raise SchemaVersionError(
            f"{event_type} payload has schema_version {version}, newer than this code's {target}; upgrade the package")
    while version < target:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise SchemaVersionError(f"no upcaster for {event_type} from schema_version {version}")
        payload = step(dict(payload))
        version += 1
    return payload


def encode(event: AbstractEvent) -> str:
    """The JSON payload stored for a model event.

    JSON has no NaN or ±inf (Pydantic would write ``null``, which no longer
    validates as a float), so a store refuses an event for which
    :func:`non_finite_field` names a field before it encodes it.
    """
    return event.model_dump_json()


def non_finite_field(event: Event) -> str | None:
    """The dotted path of the first NaN or ±inf float in ``event`` (``None`` when every number is finite).

    >>> non_finite_field(GateOpened(gate_id="g", step=3, eta=float("nan")))
    'eta'
    >>> non_finite_field(EtaRecorded(0, np.array([0.5, np.inf]))) , non_finite_field(EtaRecorded(0, np.zeros(2)))
    ('eta[1]', None)
    """
    if isinstance(event, EtaRecorded):
        if _FINITE_FRAMES.pop(id(event), None) is event:
            return None
        finite = np.isfinite(event.eta)
        if finite.all():
            return None
        return f"eta[{int(np.flatnonzero(~finite)[0])}]"
    if type(event) is StepCommitted and finite_step(event):
        return None  # the bulk of a log, checked field by field; the walk below names what is not finite
    where = _non_finite(event)
    if where is None:
        return None
    return "".join(k if k.startswith("[") else f".{k}" for k in reversed(where)).lstrip(".")


_isfinite = math.isfinite
_FINITE_FRAMES: weakref.WeakValueDictionary[int, EtaRecorded] = weakref.WeakValueDictionary()


def known_finite(event: EtaRecorded) -> EtaRecorded:
    """``event``, noted as holding finite η only, so that the next :func:`non_finite_field` of it does not scan it.

    For a producer that has established it already (the coordinator knows the
    η of an accepted state is finite); its η array is read-only. The note is
    used up by that check (the store's, as the event is appended), or goes
    with the event; a later check scans.

    >>> frame = known_finite(EtaRecorded(0, np.zeros(3)))
    >>> non_finite_field(frame) is None
    True
    """
    _FINITE_FRAMES[id(event)] = event
    return event


def finite_step(event: StepCommitted) -> bool:
    """Whether every number of a :class:`StepCommitted` is finite: its float fields and diagnostics, read directly.

    >>> fields = dict(step=1, energy=0.5, pg_norm=0.1, step_size=0.05, backtracks=0, accepted=True, reason="decrease")
    >>> finite_step(StepCommitted(**fields)), finite_step(StepCommitted(**fields, diagnostics={"margin": float("inf")}))
    (True, False)
    """
    try:
        trial = event.trial_energy
        return (_isfinite(event.energy) and _isfinite(event.pg_norm) and _isfinite(event.step_size)
                and (trial is None or _isfinite(trial)) and all(map(_isfinite, event.diagnostics.values())))
    except TypeError:  # not a number where one belongs (a model built without validation): the walk decides
        return False


def _non_finite(value: Any) -> list[str] | None:
    """The path (innermost key first) to a NaN or ±inf inside ``value``; cheap when there is none."""
    if isinstance(value, float):  # numpy's float64 too
        return None if _isfinite(value) else []
    if isinstance(value, System):  # a System refuses NaN and ±inf in every parameter when it is built
        return None
    if isinstance(value, BaseModel):
        items: Any = value.__dict__.items()
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        bad = np.flatnonzero(~np.isfinite(value.ravel()))
        return [f"[{int(bad[0])}]"] if bad.size else None
    elif isinstance(value, np.floating):
        return None if np.isfinite(value) else []
    else:
        return None
    for key, item in items:
        if type(item) is float:
            if _isfinite(item):
                continue
            return [f"[{key}]" if isinstance(key, int) else str(key)]
        if isinstance(item, (int, str, bool)) or item is None:
            continue
        found = _non_finite(item)
        if found is not None:
            found.append(f"[{key}]" if isinstance(key, int) else str(key))
            return found
    return None


def decode(event_type: str, version: int, payload: str | dict[str, Any]) -> AbstractEvent:
    """Rebuild a model event from its stored JSON payload, upcasting as needed."""
    data = json.loads(payload) if isinstance(payload, str) else dict(payload)
    data = upcast(event_type, version, data)
    data["type"] = event_type
    return _ADAPTER.validate_python(data)


@register_upcaster("RunStarted", 1)
def _run_started_v1(payload: dict[str, Any]) -> dict[str, Any]:
    return payload | {"parent_run_id": None, "parent_step": None}


@register_upcaster("RunStarted", 2)
def _run_started_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """The config's term-weight scheme was called ``adapter``; it is ``weighting`` (``adapters`` is a layer)."""
    config = dict(payload.get("config", {}))
    if "adapter" in config:
        config["weighting"] = config.pop("adapter")
    return payload | {"config": config}


@register_upcaster("RunStarted", 3)
def _run_started_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Expansion candidates' local relaxations gained a convergence stop, ``local_tol``; a run recorded before it
    spent all ``local_steps``, which ``local_tol = 0`` reproduces."""
    config = dict(payload.get("config", {}))
    if config.get("expansion") is not None:
        config["expansion"] = {"local_tol": 0.0} | dict(config["expansion"])
    return payload | {"config": config}


@register_upcaster("RunStarted", 4)
def _run_started_v4(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs from before snapshot mode recorded η at every step: their config says so, whatever today's default."""
    return payload | {"config": {**payload.get("config", {}), "snapshots": None}}


@register_upcaster("RunStarted", 5)
def _run_started_v5(payload: dict[str, Any]) -> dict[str, Any]:
    """Snapshot runs from before ``SnapshotConfig.previous`` recorded no frame before a snapshot and embedded the
    solver's previous iterate in it: ``previous = False`` re-runs them as they were."""
    config = dict(payload.get("config", {}))
    if isinstance(config.get("snapshots"), dict):
        config["snapshots"] = {"previous": False} | dict(config["snapshots"])
    return payload | {"config": config}


@register_upcaster("WeightsAdapted", 1)
def _weights_adapted_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """The field ``adapter`` is ``weighting``."""
    payload = dict(payload)
    payload["weighting"] = payload.pop("adapter")
    return payload


@register_upcaster("StepCommitted", 1)
def _step_committed_v1(payload: dict[str, Any]) -> dict[str, Any]:
    return payload | {"diagnostics": {}}
