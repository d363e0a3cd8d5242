"""Named hook signals, fired after events are committed.

Each event type has a blinker signal named after it in snake case
(``RunStarted`` → ``run_started``, ``GateOpened`` → ``gate_opened``, ...).
Receivers are called as ``receiver(run_id, event=..., seq=...)``.

Unlike plain blinker, receivers are held strongly (a lambda keeps working)
and each one is isolated: a receiver that raises is reported (logged and
returned as a :class:`HookFailure`) and the others still run, in the order
they were connected.

>>> from complexity_from_constraints.events import hooks
>>> seen = []
>>> _ = hooks.gate_opened.connect(lambda run_id, event, seq: seen.append(event.gate_id))
>>> hooks.gate_opened.receivers and True
True
>>> hooks.gate_opened.receivers.clear()
"""

from __future__ import annotations

import logging
import re
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from blinker import ANY, Signal
from blinker.base import ANY_ID
from blinker._utilities import make_id

from ._store import Recorded
from ._types import EVENT_TYPES

log = logging.getLogger("cfc.hooks")


class HookSignal(Signal):
    """A blinker signal that holds receivers strongly and calls them in isolation."""

    def connect(self, receiver: Callable[..., Any], sender: Any = ANY, weak: bool = False):  # type: ignore[override]
        return super().connect(receiver, sender=sender, weak=weak)

    def disconnect(self, receiver: Callable[..., Any], sender: Any = ANY) -> None:
        super().disconnect(receiver, sender)
        rid = make_id(receiver)
        if not self._by_receiver.get(rid):  # no sender left: forget the receiver entirely
            self.receivers.pop(rid, None)
            self._by_receiver.pop(rid, None)

    def ordered_receivers(self, sender: Any) -> list[Callable[..., Any]]:
        wanted = set(self._by_sender.get(ANY_ID, ())) | set(self._by_sender.get(make_id(sender), ()))
        out = []
        for rid, receiver in list(self.receivers.items()):
            if rid in wanted:
                strong = receiver() if isinstance(receiver, weakref.ref) else receiver
                if strong is not None:
                    out.append(strong)
        return out


@dataclass(frozen=True)
class HookFailure:
    """A receiver raised while handling an event."""

    signal: str
    receiver: str
    event_id: str
    error: BaseException


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
        for receiver in sig.ordered_receivers(rec.run_id):
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
