"""Kill -9 trials: drive ``crash_child.py``, kill its children at seeded random moments, check the file after each.

Shared by ``test_crash.py`` and ``bench/reliability.py``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import relax, replay

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import crash_child  # noqa: E402  (after the path is set)


class Zygote:
    """A warm ``crash_child.py serve`` process that forks one child per trial."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", str(HERE / "crash_child.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self._expect("ready", timeout=120)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill is not an acknowledgement we can read
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _expect(self, word: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("the crash server ended")
            if line.split()[0] == word:
                return line

    def trial(self, path: Path, runs: int, kill_after: float | None) -> "Trial":
        """Run one child; SIGKILL it ``kill_after`` seconds after the fork (``None``: let it finish)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {path} {runs}\n")
        self.proc.stdin.flush()
        pid = int(self._expect("pid", timeout=60).split()[1])
        started = time.monotonic()
        result = Trial()
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.kill(pid, signal.SIGKILL)
                result.killed = True
            except ProcessLookupError:
                pass
        deadline = started + 300
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("the crash server ended")
            word, *rest = line.split()
            if word == "ack":
                if result.first_ack is None:
                    result.first_ack = time.monotonic() - started
                run_id, seq = rest[0], int(rest[1])
                result.acked[run_id] = max(result.acked.get(run_id, -1), seq)
            elif word == "error":
                result.error = line
            elif word == "done":
                result.done = True
            elif word == "exit" and int(rest[0]) == pid:
                result.seconds = time.monotonic() - started
                return result

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.pump.join(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Trial:
    acked: dict[str, int] = field(default_factory=dict)  # run → last acknowledged seq
    killed: bool = False
    done: bool = False
    error: str | None = None
    seconds: float = 0.0
    first_ack: float | None = None  # seconds from the fork to the first acknowledgement


@dataclass
class Reference:
    """The run every child computes, relaxed once in memory: its events and its replayed state at every step."""

    events: list
    states: dict

    @classmethod
    def build(cls) -> "Reference":
        store = InMemoryStore()
        r = relax(crash_child.system(), crash_child.CONFIG, seed=crash_child.SEED, store=store,
                  flush_every=crash_child.FLUSH_EVERY)
        events = [rec.event for rec in store.read(r.run_id)]
        states = {k: replay(store, r.run_id, k) for k in range(r.steps + 1)}
        return cls(events, states)


@dataclass
class Findings:
    lost: int = 0  # acknowledged events missing from the file
    torn_batches: int = 0  # a gap, or a log that is not a prefix of the computation
    torn_steps: int = 0  # a log that ends inside a step
    bad_replays: int = 0
    reopen_failures: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.torn_batches or self.torn_steps or self.bad_replays or self.reopen_failures)


def check_file(path: Path, trial: Trial, reference: Reference, verified: set[str], findings: Findings) -> None:
    """Open ``path`` read-only and read-write after a kill, and check every run not yet verified complete."""
    if not path.exists() or path.stat().st_size == 0:  # killed before the store was created: nothing to keep
        if trial.acked:
            findings.lost += sum(s + 1 for s in trial.acked.values())
            findings.problems.append(f"{path.name}: acknowledged events, but no file")
        return
    try:
        with DuckDBStore(path, read_only=True) as store:
            for info in store.runs():
                if info.run_id not in verified:
                    _check_run(store, info.run_id, trial.acked.get(info.run_id, -1), reference, verified, findings)
            missing = set(trial.acked) - {info.run_id for info in store.runs()}
            if missing:
                findings.lost += len(missing)
                findings.problems.append(f"acknowledged runs missing: {sorted(missing)}")
        with DuckDBStore(path) as store:  # read-write: recovers the WAL; the next trial appends new runs
            store.runs()
    except Exception as exc:  # noqa: BLE001 - every failure to reopen is a finding
        findings.reopen_failures += 1
        findings.problems.append(f"reopen failed: {type(exc).__name__}: {exc}")


def _check_run(store, run_id, acked, reference, verified, findings) -> None:
    log = store.read(run_id)
    n = len(log)
    if [r.seq for r in log] != list(range(n)):
        findings.torn_batches += 1
        findings.problems.append(f"{run_id}: seq gap")
        return
    if acked >= n:
        findings.lost += acked - n + 1
        findings.problems.append(f"{run_id}: acknowledged up to seq {acked}, the file holds {n} events")
    if [r.event for r in log] != reference.events[:n]:
        findings.torn_batches += 1
        findings.problems.append(f"{run_id}: the log is not a prefix of the run's computation")
        return
    steps = [r.step for r in log if r.step is not None]
    if n < len(reference.events) and steps:
        following = getattr(reference.events[n], "step", None)
        if following == steps[-1]:
            findings.torn_steps += 1
            findings.problems.append(f"{run_id}: ends inside step {steps[-1]} (seq {n - 1})")
            return
    for k in sorted(set(steps)):
        state, want = replay(store, run_id, k), reference.states[k]
        if (state.open_gates != want.open_gates or state.energy != want.energy
                or not np.array_equal(state.eta, want.eta)):
            findings.bad_replays += 1
            findings.problems.append(f"{run_id}: replay of step {k} disagrees with the computation")
            return
    if n == len(reference.events):
        verified.add(run_id)


def run_trials(folder: Path, kills: int, seed: int, runs_per_child: int = 3,
               per_file: int = 10) -> tuple[Findings, list[Trial]]:
    """One calibration child, then ``kills`` children killed at seeded random moments.

    The moments are uniform over the calibration child's lifetime (a child relaxes
    ``runs_per_child`` runs, so kills land while it opens, relaxes, writes and
    closes), every other one over the part after its first acknowledgement (so
    some kills land after committed batches however long the child takes to
    start); ``per_file`` trials share one file, which then takes one more run
    and is set aside (so a file's size, and the time to check it, stays bounded).
    """
    import random

    rng = random.Random(seed)
    reference = Reference.build()
    findings, trials = Findings(), []
    zygote = Zygote()
    try:
        calibration = zygote.trial(folder / "calibration.duckdb", runs_per_child, None)
        if calibration.error or not calibration.done:
            findings.problems.append(f"calibration run failed: {calibration.error}")
        check_file(folder / "calibration.duckdb", calibration, reference, set(), findings)
        span = 0.95 * calibration.seconds
        acked = min(calibration.first_ack or 0.0, span)
        for start in range(0, kills, per_file):
            path, verified = folder / f"crash-{start // per_file}.duckdb", set()
            for k in range(start, min(start + per_file, kills)):
                trial = zygote.trial(path, runs_per_child, rng.uniform(0.0 if k % 2 == 0 else acked, span))
                if trial.error:
                    findings.problems.append(f"child failed: {trial.error}")
                trials.append(trial)
                check_file(path, trial, reference, verified, findings)
            with DuckDBStore(path) as store:  # after the kills, a new run still appends
                before = len(store.runs())
                relax(crash_child.system(), crash_child.CONFIG, seed=crash_child.SEED, store=store)
                if len(store.runs()) != before + 1:
                    findings.reopen_failures += 1
                    findings.problems.append(f"{path.name}: a new run did not append")
    finally:
        zygote.close()
    return findings, trials
