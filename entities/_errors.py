"""The project's errors: one tree rooted at :class:`CfcError`.

::

    CfcError
    ├── InvalidEntityError      an entity, a System or a config failed validation
    ├── UnknownRunError         a run id the store does not hold
    ├── UnknownStepError        a step a run never reached
    ├── SchemaVersionError      a stored event payload from an unknown (future) schema
    ├── LogIntegrityError       a batch would break the append-only, gap-free log
    │   ├── NonFiniteValueError     an event holds NaN or ±inf (refused before anything is written)
    │   ├── UnreadableEventError    a stored event does not decode (names run, seq and type)
    │   └── ReplayMismatchError     re-running a step from a snapshot gave other events than the log holds
    ├── MissingDependencyError  an optional dependency is not installed
    ├── StoreError              a store file cannot be used as asked (names the file and the cause)
    │   ├── StoreBusyError          another process, or another store of this process, holds the file
    │   ├── StoreCorruptError       truncated or damaged file, header, block or WAL
    │   ├── StoreVersionError       written by a store schema this code cannot open (newer, or unupgradable)
    │   ├── ForeignFileError        not one of our stores: another program's database, SQLite, an image
    │   ├── StoreWriteError         cannot write: disk full, read-only folder, read-only store, a write query
    │   └── StoreTransactionError   relax inside an open ``store.transaction()``
    ├── OverwriteRefusedError   an output path holds a file of another kind (``force=True`` overwrites)
    ├── MonotonicityError       an accepted step raised the energy (``monotone="strict"``)
    └── DivergedError           a run's energy, gradient or η stopped being finite

None of them derives from ``ValueError`` on purpose: Pydantic re-wraps a
``ValueError`` raised inside a validator, and we want the error that names the
entity, the field and the value to reach the caller unchanged.
"""

from __future__ import annotations

from typing import Any


class CfcError(Exception):
    """Base class of every error this project raises on purpose."""


class InvalidEntityError(CfcError):
    """An entity failed validation.

    Attributes:
        kind: the entity's class name (``"LandauModule"``, ``"System"``, ...).
        entity_id: the entity's ``id`` where it has one, else ``None``.
        field: the offending field (a dotted path for nested fields).
        value: the value that was rejected.
        reason: a short human explanation.
    """

    def __init__(self, kind: str, entity_id: str | None, field: str, value: Any, reason: str):
        self.kind, self.entity_id, self.field, self.value, self.reason = kind, entity_id, field, value, reason
        who = f"{kind} {entity_id!r}" if entity_id is not None else kind
        super().__init__(f"{who}: field {field!r} = {_short(value)}: {reason}")

    @classmethod
    def from_validation(cls, kind: str, data: Any, exc: Exception) -> InvalidEntityError:
        """The error for a pydantic ``ValidationError`` raised while validating ``data`` as ``kind``."""
        from ._base import _to_entity_error

        return _to_entity_error(kind, data, exc)  # type: ignore[arg-type]


class UnknownRunError(CfcError):
    """The store holds no run with this id."""


class UnknownStepError(CfcError):
    """The run has no such step."""


class SchemaVersionError(CfcError):
    """A stored payload was written by a schema version this code does not know."""


class LogIntegrityError(CfcError):
    """A batch would leave a gap, a duplicate or a rewrite in the append-only log."""


class MissingDependencyError(CfcError, ImportError):
    """An optional dependency is missing; the message says what to install."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MonotonicityError(CfcError):
    """``RelaxConfig(monotone="strict")``: an accepted step raised the energy U."""


class DivergedError(CfcError):
    """A run's energy, gradient or η stopped being finite; it was recorded as ``diverged``.

    Raised by ``relax`` after the run is committed, so the log keeps it (its
    ``RunFinished`` has status ``"diverged"`` and the last finite state).

    Attributes:
        run_id: the recorded run.
        step: the step at which it diverged.
        energy: the energy of the last finite state.
    """

    def __init__(self, run_id: str, step: int, energy: float):
        self.run_id, self.step, self.energy = run_id, step, energy
        super().__init__(f"run {run_id!r} diverged at step {step}: its energy, gradient or η stopped being finite "
                         f"(recorded with status 'diverged'; the last finite state has energy {energy!r})")


# -- the store's errors: every failure to open, read or write a store file is one of these --------


class NonFiniteValueError(LogIntegrityError):
    """An event holds NaN or ±inf in ``field``; the store refuses the batch before writing any of it."""


class UnreadableEventError(LogIntegrityError):
    """A stored event does not decode; ``run_id``, ``seq`` and ``event_type`` say which."""

    def __init__(self, run_id: str, seq: int, event_type: str, cause: str):
        self.run_id, self.seq, self.event_type = run_id, seq, event_type
        super().__init__(f"run {run_id!r}, seq {seq} ({event_type}): stored payload does not decode: {cause}")


class ReplayMismatchError(LogIntegrityError):
    """Replaying an unrecorded step re-ran the loop from a snapshot and got an event the log does not hold.

    Attributes:
        run_id: the run replayed.
        step: the step whose events differ.
        recorded, regenerated: the two events (``None`` where one side has none).
    """

    def __init__(self, run_id: str, step: int, recorded: Any, regenerated: Any):
        self.run_id, self.step, self.recorded, self.regenerated = run_id, step, recorded, regenerated
        super().__init__(f"run {run_id!r}, step {step}: re-running the loop from its snapshot (or its start) gave {_short(regenerated)} "
                         f"where the log holds {_short(recorded)}; the log and this code disagree (another "
                         f"version, or a plug-in that is not deterministic), so η at this step cannot be replayed")


class StoreError(CfcError):
    """A store file cannot be used as asked; ``path`` is the file, the message says why."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(message)


class StoreBusyError(StoreError):
    """Another process holds the database file, or this process already has a store open on it."""


class StoreCorruptError(StoreError):
    """The file is damaged (truncated, a bad header, block or WAL); it was left as it was."""


class StoreVersionError(StoreError):
    """The file was written by a store schema this code cannot open (newer, or an old layout it cannot upgrade)."""


class ForeignFileError(StoreError):
    """The file is not one of our stores (another program's DuckDB database, SQLite, anything else)."""


class StoreWriteError(StoreError):
    """The store cannot write: disk full, a read-only folder or store, or a query that would write."""


class StoreTransactionError(StoreError):
    """``relax`` was called inside this thread's open ``store.transaction()`` (its writer would wait for ever)."""


class OverwriteRefusedError(CfcError):
    """An output path already holds a file of another kind; pass ``force=True`` to overwrite it."""
