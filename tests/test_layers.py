"""The import direction of DESIGN.md: entities ← events ← projectors ← adapters; experiments are leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "complexity_from_constraints"
RANK = {"entities": 0, "events": 1, "projectors": 2, "adapters": 3}
HEAVY = {"duckdb", "torch"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE and node.level == 0:
            for alias in node.names:  # `from complexity_from_constraints import adapters`
                yield node.lineno, f"{PACKAGE}.{alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def violations() -> list[str]:
    bad = []
    for layer, rank in RANK.items():
        for path in (ROOT / layer).rglob("*.py"):
            for line, name in _imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                head = name.split(".")[0]
                if head in RANK or head == "experiments":
                    bad.append(f"{where} imports {name} by a bare name (use {PACKAGE}.{name})")
                    continue
                if head == PACKAGE:
                    head = (name.split(".") + [""])[1]
                    if head not in RANK and head != "experiments":
                        bad.append(f"{where} imports the root package (it re-exports every layer)")
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
    (fake / "bad.py").write_text(
        f"import {PACKAGE}.projectors\nimport duckdb\nfrom events import hooks\nimport {PACKAGE}\n"
        f"from {PACKAGE} import adapters\n"
    )
    for layer in ("events", "projectors", "adapters"):
        (tmp_path / layer).mkdir()
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    found = violations()
    assert any(f"imports {PACKAGE}.projectors (a higher layer)" in v for v in found)
    assert any("imports duckdb outside adapters" in v for v in found)
    assert any("imports events by a bare name" in v for v in found)
    assert any("imports the root package" in v for v in found)
    assert any("bad.py:5 imports complexity_from_constraints.adapters (a higher layer)" in v for v in found)
    assert len(found) == 5


def test_nothing_imports_a_bare_layer_name():
    """Tests, benchmarks and studies use the import root too; a bare `entities` would be someone else's."""
    bad = []
    for folder in ("tests", "bench", "experiments", PACKAGE):
        for path in (ROOT / folder).rglob("*.py"):
            for line, name in _imports(path):
                if name.split(".")[0] in (*RANK, "experiments"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


@pytest.mark.parametrize("layer", list(RANK))
def test_every_layer_is_a_package(layer):
    assert (ROOT / layer / "__init__.py").exists()


def test_no_copy_skips_validation():
    """Changed entities and configs come from evolve(), which validates; pydantic's model_copy does not."""
    needle = "model_copy(update" + "="
    offenders = [f"{path.relative_to(ROOT)}:{n}" for folder in (*RANK, "experiments", "tests", "bench")
                 for path in (ROOT / folder).rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if needle in line and "would skip validation" not in line]
    assert offenders == []


def test_nothing_refers_to_documents_outside_the_repository():
    """Code and docs explain a problem in a sentence, not by a code ("W23") or a section of an outside document."""
    import re

    pattern = re.compile(r"\bW\d{1,2}\b|feature map|§")
    files = [p for folder in (*RANK, "experiments", "tests", "bench", PACKAGE) for p in (ROOT / folder).rglob("*")
             if p.suffix in (".py", ".md", ".sql") and "corpus" not in p.parts]
    files += [ROOT / "README.md", ROOT / "ARCHITECTURE.md"]
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line) and p.name != "test_layers.py"]
    assert offenders == []
