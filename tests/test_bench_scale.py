"""bench/scale.py at a small size, in both recording modes: its figures are what the 10^6 targets are read from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _scale(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--sizes", "100000", "--repeats", "1",
                          "--steps", "40", *args], capture_output=True, text=True, check=True, timeout=300)
    return out.stdout.splitlines()


def _file_mib(lines: list[str]) -> float:
    row = next(line for line in lines if line.split() and line.split()[0] == "100000")
    return float(row.split()[-3])  # ... RSS GiB, file MiB, unrecorded relax, "wall"


def test_scale_records_every_eta_or_every_kth_and_says_which():
    every = _scale()
    snapshots = _scale("--snapshots", "10")
    assert "every η recorded" in every[0] and "every 10 steps (snapshot mode)" in snapshots[0]
    # every η: 41 frames of 10^5 values; snapshot mode: 5 (steps 0, 10, ..., 40). Both files hold the System's
    # arrays (~10 MiB) and DuckDB's fixed blocks; the 36 frames more take at least 4 B per η value.
    assert _file_mib(every) - _file_mib(snapshots) >= 36 * 100_000 * 4 / 2**20, (every, snapshots)
    assert any("no target at these sizes" in line for line in every)
