"""The import direction of DESIGN.md: entities ← events ← projectors ← adapters; experiments are leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RANK = {"entities": 0, "events": 1, "projectors": 2, "adapters": 3}
HEAVY = {"duckdb", "torch"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations() -> list[str]:
    bad = []
    for layer, rank in RANK.items():
        for path in (ROOT / layer).rglob("*.py"):
            for line, name in _imports(path):
                head = name.split(".")[0]
                where = f"{path.relative_to(ROOT)}:{line}"
                if head in RANK and RANK[head] > rank:
                    bad.append(f"{where} imports {name} (a higher layer)")
                if head == "experiments":
                    bad.append(f"{where} imports experiments (a leaf)")
                if head in HEAVY and layer != "adapters":
                    bad.append(f"{where} imports {head} outside adapters/")
    return bad


def test_layers_import_only_downwards():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "entities"
    fake.mkdir()
    (fake / "bad.py").write_text("import projectors\nimport duckdb\n")
    for layer in ("events", "projectors", "adapters"):
        (tmp_path / layer).mkdir()
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations()
    assert any("imports projectors" in v for v in found)
    assert any("imports duckdb outside adapters" in v for v in found)


@pytest.mark.parametrize("layer", list(RANK))
def test_every_layer_is_a_package(layer):
    assert (ROOT / layer / "__init__.py").exists()
