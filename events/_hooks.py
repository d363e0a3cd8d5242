"""Named hook signals, fired after events are committed.

Each event type has a blinker signal named after it in snake case
(``RunStarted`` → ``run_started``, ``GateOpened`` → ``gate_opened``, ...).
Receivers are called as ``receiver(run_id, event=..., seq=...)``.

Unlike plain blinker, receivers are held strongly (a lambda keeps working)
and each one is isolated: a receiver that raises is reported (logged and
returned as a :class:`HookFailure`) and the others still run, in the order
they were connected.

Only blinker's public surface is used (``connect``, ``disconnect``,
``receivers``, ``connected_to``). A receiver for one run only is wrapped by
:func:`for_run`, which passes on that run's events and no others.

>>> from complexity_from_constraints.events import hooks
>>> seen = []
>>> def note(run_id, event, seq):
...     seen.append(event.gate_id)
>>> with hooks.gate_opened.connected_to(note):
...     note in hooks.gate_opened.ordered_receivers()
True
>>> note in hooks.gate_opened.ordered_receivers()
False
"""

from __future__ import annotations

import functools
import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from blinker import ANY, Signal

from ._store import Recorded
from ._types import EVENT_TYPES

log = logging.getLogger("cfc.hooks")


class HookSignal(Signal):
    """A blinker signal that holds receivers strongly and calls them in isolation, in the order connected."""

    def connect(self, receiver: Callable[..., Any], sender: Any = ANY, weak: bool = False):  # type: ignore[override]
        """Connect ``receiver``, held strongly unless ``weak=True`` (blinker's default is weak)."""
        return super().connect(receiver, sender=sender, weak=weak)

    def ordered_receivers(self) -> list[Callable[..., Any]]:
        """The connected receivers in the order they were connected (weakly held ones that died are left out)."""
        out = []
        for receiver in list(self.receivers.values()):
            strong = receiver() if isinstance(receiver, weakref.ref) else receiver
            if strong is not None:
                out.append(strong)
        return out


class for_run:
    """A receiver that passes on only the events of run ``run_id`` to ``fn`` (``relax(..., hooks=...)`` uses it).

    >>> calls = []
    >>> only = for_run("r-1", lambda run_id, event, seq: calls.append(seq))
    >>> only("r-2", event=None, seq=0); only("r-1", event=None, seq=1); calls
    [1]
    """

    def __init__(self, run_id: str, fn: Callable[..., Any]):
        self.run_id, self.fn = run_id, fn

    def __call__(self, run_id: str, *, event: Any, seq: int) -> Any:
        if run_id == self.run_id:
            return self.fn(run_id, event=event, seq=seq)
        return None

    def __repr__(self) -> str:
        return f"{self.fn!r} (run {self.run_id})"


@dataclass(frozen=True)
class HookFailure:
    """A receiver raised while handling an event."""

    signal: str
    receiver: str
    event_id: str
    error: BaseException


@functools.cache  # called for every committed event; the types are few
def signal_name(event_type: str) -> str:
    """``GateOpened`` → ``gate_opened``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


SIGNALS: dict[str, HookSignal] = {signal_name(t): HookSignal(f"fired after a {t} event is committed") for t in EVENT_TYPES}
run_started = SIGNALS["run_started"]
step_committed = SIGNALS["step_committed"]
eta_recorded = SIGNALS["eta_recorded"]
gate_opened = SIGNALS["gate_opened"]
gate_closed = SIGNALS["gate_closed"]
run_finished = SIGNALS["run_finished"]
entity_revised = SIGNALS["entity_revised"]
module_added = SIGNALS["module_added"]
expansion_rejected = SIGNALS["expansion_rejected"]


def get(name: str) -> HookSignal:
    """The signal called ``name`` (a KeyError lists the known names)."""
    try:
        return SIGNALS[name]
    except KeyError:
        raise KeyError(f"unknown hook {name!r}; known hooks: {', '.join(sorted(SIGNALS))}") from None


def dispatch(committed: Iterable[Recorded]) -> list[HookFailure]:
    """Call every receiver for every committed event, in order, each isolated.

    An ``Exception`` in a receiver is logged and returned as a :class:`HookFailure`.
    An interrupt (``KeyboardInterrupt``, ``SystemExit``: any ``BaseException``
    that is not an ``Exception``) stops the dispatch cleanly: the event being
    delivered still reaches the receivers after the interrupted one, then the
    interrupt is re-raised with a note naming the first committed event that no
    receiver was given (the events are in the log either way; only their
    hooks were skipped) and the count. Its ``undelivered`` attribute holds
    those event ids.
    """
    failures: list[HookFailure] = []
    records = list(committed)
    for k, rec in enumerate(records):
        name = signal_name(rec.event.type)
        sig = SIGNALS[name]
        if not sig.receivers:
            continue
        interrupt: BaseException | None = None
        for receiver in sig.ordered_receivers():
            try:
                receiver(rec.run_id, event=rec.event, seq=rec.seq)
            except Exception as exc:  # a hook must never break the run
                log.error("hook %s receiver %r raised on %s: %r", name, receiver, rec.event_id, exc, exc_info=exc)
                failures.append(HookFailure(name, repr(receiver), rec.event_id, exc))
            except BaseException as exc:  # an interrupt: finish this event's receivers, then stop
                if interrupt is None:
                    interrupt = exc
        if interrupt is not None:
            undelivered = [r.event_id for r in records[k + 1:]]
            interrupt.undelivered = undelivered  # type: ignore[attr-defined]
            if undelivered:
                interrupt.add_note(f"hooks: interrupted after {rec.event_id}; {len(undelivered)} committed events "
                                   f"were not delivered, from {undelivered[0]}")
            raise interrupt
    return failures
