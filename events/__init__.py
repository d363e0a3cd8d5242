"""Events: the closed union of past-tense facts, the event-log interface, the hook signals."""

from . import _hooks as hooks
from ._hooks import HookFailure, HookSignal
from ._store import AbstractEventStore, InMemoryStore, NullStore, Recorded, RunInfo
from ._types import (
    EVENT_TYPES,
    AbstractEvent,
    EntityRevised,
    Event,
    EtaRecorded,
    ExpansionRejected,
    GateClosed,
    GateOpened,
    ModelEvent,
    ModuleAdded,
    RunFinished,
    RunStarted,
    StepCommitted,
    current_version,
    decode,
    encode,
    register_upcaster,
    upcast,
)

__all__ = [
    "EVENT_TYPES",
    "AbstractEvent",
    "AbstractEventStore",
    "EntityRevised",
    "Event",
    "EtaRecorded",
    "ExpansionRejected",
    "GateClosed",
    "GateOpened",
    "HookFailure",
    "HookSignal",
    "InMemoryStore",
    "ModelEvent",
    "ModuleAdded",
    "NullStore",
    "Recorded",
    "RunFinished",
    "RunInfo",
    "RunStarted",
    "StepCommitted",
    "current_version",
    "decode",
    "encode",
    "hooks",
    "register_upcaster",
    "upcast",
]
