"""The distribution installs one import name, ``complexity_from_constraints``, and nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = "complexity-from-constraints"
PACKAGE = "complexity_from_constraints"
LAYERS = {"entities", "events", "projectors", "adapters", "experiments"}


def _top_level(path: str) -> str:
    return path.replace("\\", "/").split("/")[0]


def test_the_installed_distribution_declares_one_top_level_name():
    # the installed record (RECORD), not a source tree's egg-info that the working directory may put first
    (dist,) = [d for d in metadata.distributions(name=DIST) if d.read_text("RECORD") is not None]
    assert dist.read_text("top_level.txt").split() == [PACKAGE]
    heads = {_top_level(str(f)) for f in dist.files or []}
    # besides the package: its .dist-info, bin/cfc (as ../../../bin), and an editable install's finder and .pth
    heads = {h for h in heads if not h.endswith(".dist-info") and h != ".." and not h.startswith("__editable__")}
    heads.discard("__pycache__")  # the editable finder's compiled form
    assert heads <= {PACKAGE}, heads
    assert not any(h in LAYERS for h in heads)


def test_a_built_wheel_holds_only_the_import_root(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    heads = {_top_level(n) for n in names if ".dist-info/" not in n}
    assert heads == {PACKAGE}
    for layer in LAYERS:
        assert f"{PACKAGE}/{layer}/__init__.py" in names
    assert f"{PACKAGE}/adapters/sql/v_runs.sql" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert f"cfc = {PACKAGE}.adapters.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
