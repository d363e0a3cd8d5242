"""Watch a run from another terminal: hooks mirror its progress to a JSON-lines side file.

DuckDB lets one process write a database file and no other process open it,
even read-only, so a second terminal cannot query a run in flight. Instead the
run mirrors its committed events, through the hook signals, to a small text
file that any process may read while it grows (``cfc follow FILE.jsonl``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Callable

from complexity_from_constraints.entities import CfcError, OverwriteRefusedError
from complexity_from_constraints.events import hooks

MIRRORED = ("run_started", "step_committed", "gate_opened", "gate_closed", "run_finished")


class ProgressMirror(Mapping[str, Callable[..., Any]]):
    """A set of hook receivers that append one JSON line per committed event to ``path``.

    It is a mapping from signal name to receiver, so it plugs straight into
    ``relax(..., hooks=ProgressMirror(path))``; :meth:`connect` subscribes it to
    every run instead. Lines are written (and flushed) when the run's batches
    commit, so a smaller ``flush_every`` in ``relax`` makes progress finer.

    Each line is an object with ``type``, ``run_id``, ``seq``, ``time`` (Unix
    seconds) and the event's fields; ``RunStarted`` carries only the System id,
    its number of modules, the step budget and the seed.

    Args:
        path: the JSON-lines file; truncated on creation unless ``append``.
        every: write one ``StepCommitted`` line in ``every`` (gate events and the end are always written).
        append: keep what the file already holds.
        force: truncate (or append to) ``path`` even when it holds something that
            is not JSON lines; without it such a file (a store, a plot) is refused
            with :class:`OverwriteRefusedError` and left alone.

    >>> import tempfile, pathlib
    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> from complexity_from_constraints.projectors import relax
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "progress.jsonl"
    ...     with ProgressMirror(path) as mirror:
    ...         _ = relax(System(id="s", modules=[LandauModule(id="m")]), RelaxConfig(steps=3), hooks=mirror)
    ...     [json.loads(line)["type"] for line in path.read_text().splitlines()][-1]
    'RunFinished'
    """

    def __init__(self, path: str | Path, *, every: int = 1, append: bool = False, force: bool = False):
        self.path = Path(path)
        self.every = max(1, int(every))
        self._lock = threading.Lock()
        check_output(self.path, "jsonl", force=force)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a" if append else "w", encoding="utf-8")
        self._receivers: dict[str, Callable[..., Any]] = {name: self._write for name in MIRRORED}

    # -- the mapping ``relax(hooks=...)`` takes ---------------------------------------------------
    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._receivers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._receivers)

    def __len__(self) -> int:
        return len(self._receivers)

    # -- every run ----------------------------------------------------------------------------
    def connect(self) -> ProgressMirror:
        """Mirror every run of this process (until :meth:`disconnect`)."""
        for name in MIRRORED:
            hooks.get(name).connect(self._write)
        return self

    def disconnect(self) -> None:
        for name in MIRRORED:
            sig = hooks.get(name)
            if self._write in sig.receivers.values():
                sig.disconnect(self._write)

    def close(self) -> None:
        """Disconnect and close the file."""
        self.disconnect()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> ProgressMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, run_id: str, event: Any, seq: int) -> None:
        if event.type == "StepCommitted" and event.step % self.every:
            return
        if event.type == "RunStarted":
            fields = {"system_id": event.system.id, "n_modules": event.system.n_modules,
                      "steps": event.config.steps, "seed": event.seed}
        else:
            fields = event.model_dump(mode="json", exclude={"type"})
        line = json.dumps({"type": event.type, "run_id": run_id, "seq": seq, "time": time.time(), **fields})
        with self._lock:
            if self._file is None:
                raise CfcError(f"ProgressMirror({str(self.path)!r}) is closed")
            self._file.write(line + "\n")
            self._file.flush()


# What an output file of each kind starts with; anything else already at the path is not ours to replace.
_KINDS = {"png": "a PNG image", "jsonl": "JSON lines", "html": "an HTML report"}


def sniff(head: bytes) -> str:
    """What a file's first bytes say it is: ``"duckdb"``, ``"sqlite"``, ``"png"``, ``"jsonl"``, ``"parquet"``, ``"html"`` or ``"other"``."""
    if len(head) >= 12 and head[8:12] == b"DUCK":
        return "duckdb"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    first = head.split(b"\n", 1)[0].strip()
    if first.startswith(b"{"):
        try:
            if isinstance(json.loads(first), dict) or b"\n" not in head:
                return "jsonl"
        except ValueError:
            if b"\n" not in head:  # one long first line, cut by the sniff window
                return "jsonl"
    return "other"


def check_output(path: str | Path, kind: str, *, force: bool = False) -> None:
    """Refuse to replace an existing, non-empty file at ``path`` that is not of ``kind`` (unless ``force``).

    Raises:
        OverwriteRefusedError: naming the file, what it holds and what would have been written.
    """
    target = Path(path)
    if force or not target.exists():
        return
    if target.is_dir():
        raise OverwriteRefusedError(f"{target} is a folder; name a file to write {_KINDS[kind]} to")
    with open(target, "rb") as handle:
        head = handle.read(64 * 1024)
    if not head:
        return
    found = sniff(head)
    if found != kind:
        what = {"duckdb": "a DuckDB database (a run store?)", "sqlite": "a SQLite database", "png": "a PNG image",
                "jsonl": "JSON lines", "parquet": "a Parquet file", "html": "an HTML page"}.get(found, "data of another kind")
        raise OverwriteRefusedError(f"{target} holds {what}; refusing to replace it with {_KINDS[kind]} "
                                    f"(pass force=True to overwrite it)")


def follow_lines(path: str | Path, *, timeout: float | None = None, poll: float = 0.1) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a growing JSON-lines file, waiting for more, until ``timeout`` seconds.

    A line is yielded only once it is complete (ends with a newline); the file may not exist yet.
    The caller stops early by leaving the loop. A complete line that is not a JSON object raises
    :class:`~entities.CfcError` naming the file and the line.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "p.jsonl"
    ...     _ = path.write_text('{"type": "RunFinished"}\\n{"type": "half')
    ...     [e["type"] for e in follow_lines(path, timeout=0.2)]
    ['RunFinished']
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    handle: IO[str] | None = None
    pending, number = "", 0
    try:
        while True:
            if handle is None and Path(path).exists():
                handle = open(path, encoding="utf-8")
            chunk = handle.read() if handle is not None else ""
            if chunk:
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    number += 1
                    if line.strip():
                        yield _event(path, number, line)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _event(path: str | Path, number: int, line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CfcError(f"{path}, line {number}: not a progress line (JSON): {exc.msg}: {line[:80]!r}") from None
    if not isinstance(event, dict):
        raise CfcError(f"{path}, line {number}: not a progress line (a JSON object): {line[:80]!r}")
    return event
