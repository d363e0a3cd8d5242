"""Shared by the reliability suite: one healthy store, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # corpus.py, shared with bench/reliability.py


@pytest.fixture(scope="session")
def healthy_store(tmp_path_factory) -> Path:
    from corpus import make_store

    return make_store(tmp_path_factory.mktemp("base") / "runs.duckdb")
