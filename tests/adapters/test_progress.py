"""Watching a run from elsewhere: a ProgressMirror writes JSON lines that `cfc follow` reads as they come."""

from __future__ import annotations

import json
import threading

import pytest

from complexity_from_constraints.adapters import ProgressMirror, follow_lines
from complexity_from_constraints.adapters.cli import main
from complexity_from_constraints.entities import CfcError, RelaxConfig
from complexity_from_constraints.events import hooks
from complexity_from_constraints.projectors import relax


def test_the_mirror_writes_every_committed_event_it_listens_to(tmp_path, toy_system):
    path = tmp_path / "progress.jsonl"
    with ProgressMirror(path) as mirror:
        r = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), hooks=mirror, flush_every=4)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["type"] for e in lines[:2]] == ["RunStarted", "StepCommitted"] and lines[-1]["type"] == "RunFinished"
    assert lines[0] | {"time": 0} == {"type": "RunStarted", "run_id": r.run_id, "seq": 0, "time": 0, "system_id": "toy",
                                      "n_modules": 4, "steps": 30, "seed": 0}
    assert [e["step"] for e in lines if e["type"] == "StepCommitted"] == list(range(r.steps + 1))
    assert [e["gate_id"] for e in lines if e["type"] == "GateOpened"] == ["gate"]
    assert lines[-1]["status"] == r.status and lines[-1]["final_energy"] == r.energy
    assert all(e["run_id"] == r.run_id for e in lines) and [e["seq"] for e in lines] == sorted(e["seq"] for e in lines)
    assert not any(mirror._write in sig.receivers.values() for sig in hooks.SIGNALS.values())  # relax let it go


def test_every_thins_steps_and_connect_mirrors_every_run(tmp_path, toy_system):
    path = tmp_path / "p.jsonl"
    mirror = ProgressMirror(path, every=10).connect()
    try:
        relax(toy_system, RelaxConfig(steps=30, step_size=0.3))
    finally:
        mirror.close()
    steps = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["step"] for e in steps if e["type"] == "StepCommitted"] == [0, 10, 20, 30]
    assert not any(mirror._write in sig.receivers.values() for sig in hooks.SIGNALS.values())
    failures = relax(toy_system, RelaxConfig(steps=2), hooks=mirror).hook_failures  # closed: reported, not fatal
    assert failures and isinstance(failures[0].error, CfcError)


def test_cfc_follow_prints_steps_gates_and_the_final_status(tmp_path, toy_system, capsys):
    path = tmp_path / "progress.jsonl"
    with ProgressMirror(path) as mirror:
        r = relax(toy_system, RelaxConfig(steps=30, step_size=0.3), hooks=mirror)
    assert main(["follow", str(path), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"run {r.run_id}  system toy (4 modules)" in out
    assert "step      0  energy" in out and "gate 'gate' opened" in out
    assert f"run {r.run_id} finished: {r.status} after {r.steps} steps" in out


def test_cfc_follow_tails_a_run_in_flight(tmp_path, toy_system, capsys):
    path = tmp_path / "live.jsonl"
    mirror = ProgressMirror(path)
    started = threading.Event()
    result = {}

    def run():
        started.wait(5)
        result["r"] = relax(toy_system, RelaxConfig(steps=200, step_size=0.05), hooks=mirror, flush_every=5)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        started.set()
        code = main(["follow", str(path), "--timeout", "30", "--every", "50"])
    finally:
        worker.join(30)
        mirror.close()
    out = capsys.readouterr().out
    assert code == 0 and f"finished: {result['r'].status}" in out
    assert "step     50  energy" in out and "step     51  energy" not in out


def test_follow_gives_up_after_the_timeout(tmp_path, capsys):
    path = tmp_path / "never.jsonl"
    assert list(follow_lines(path, timeout=0.05)) == []
    path.write_text(json.dumps({"type": "StepCommitted", "run_id": "x-1", "step": 0, "energy": 1.0, "pg_norm": 1.0,
                                "step_size": 0.1, "accepted": True, "reason": "initial"}) + "\n")
    assert main(["follow", str(path), "--timeout", "0.2"]) == 1
    out = capsys.readouterr().out
    assert "step      0" in out and "no end of run" in out


@pytest.fixture(autouse=True)
def no_stray_receivers():
    before = {name: set(sig.receivers) for name, sig in hooks.SIGNALS.items()}
    yield
    for name, sig in hooks.SIGNALS.items():  # a failed test must not leave its receivers to the next
        for rid, receiver in list(sig.receivers.items()):
            if rid not in before[name]:
                sig.disconnect(receiver)


def test_a_mirror_never_truncates_a_file_of_another_kind(tmp_path, toy_system):
    from complexity_from_constraints.adapters import DuckDBStore, ProgressMirror
    from complexity_from_constraints.entities import OverwriteRefusedError

    store_path = tmp_path / "runs.duckdb"
    with DuckDBStore(store_path) as store:
        relax(toy_system, RelaxConfig(steps=3), store=store)
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    for victim in (store_path, png):
        before = victim.read_bytes()
        for append in (False, True):
            with pytest.raises(OverwriteRefusedError, match="force=True"):
                ProgressMirror(victim, append=append)
        assert victim.read_bytes() == before
    with DuckDBStore(store_path, read_only=True) as store:  # still a store
        assert len(store.runs()) == 1
    lines = tmp_path / "p.jsonl"
    with ProgressMirror(lines) as mirror:  # JSON lines may be replaced by JSON lines
        relax(toy_system, RelaxConfig(steps=3), hooks=mirror)
    with ProgressMirror(lines) as mirror:
        relax(toy_system, RelaxConfig(steps=3), hooks=mirror)
    assert lines.read_text().count("RunFinished") == 1
    ProgressMirror(png, force=True).close()
    assert png.read_bytes() == b""
