"""Shared fixtures: one canonical toy system and every store implementation."""

from __future__ import annotations

import importlib
import os

import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters.cli import main as cfc_main
from complexity_from_constraints.entities import (
    DirectedHingeCoupling,
    GateBenefitCoupling,
    GateModule,
    LandauModule,
    QuadraticCoupling,
    System,
)
from complexity_from_constraints.events import InMemoryStore


@pytest.fixture
def toy_system() -> System:
    """Three Landau modules, a closed gate with a predicted benefit, every core coupling kind."""
    return System(
        id="toy",
        modules=[
            LandauModule(id="a", a=-1.0, b=1.0, h=0.05, eta0=0.2),
            LandauModule(id="b", a=-0.5, b=1.5, eta0=0.9),
            LandauModule(id="c", a=0.4, b=0.8, h=-0.1, eta0=0.5),
            GateModule(id="gate", gain=0.0, cost=0.1, k=10.0, a=0.1, b=0.1),
        ],
        couplings=[
            QuadraticCoupling(id="ab", i="a", j="b", weight=0.7),
            DirectedHingeCoupling(id="bc", i="c", j="b", weight=0.4),
            GateBenefitCoupling(id="benefit", i="gate", j="c", delta=0.35),
        ],
    )


@pytest.fixture(params=["memory", "duckdb-memory", "duckdb-file"])
def store(request, tmp_path):
    """Every event-store implementation, so contract tests run against each."""
    if request.param == "memory":
        s = InMemoryStore()
    elif request.param == "duckdb-memory":
        s = DuckDBStore(":memory:")
    else:
        s = DuckDBStore(tmp_path / "runs.duckdb")
    yield s
    s.close()


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` of one in-process ``cfc`` invocation."""

    def run(*args):
        code = cfc_main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run



def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing in CI: {exc}")
        pytest.skip(f"{module} is not installed (python -m pip install -e '.[dev,torch]')")


@pytest.fixture(scope="session")
def require():
    """``require("torch")`` imports a module; without it the test skips on a developer's machine but fails in
    CI (where the variable CI is set): the dev install brings it, so CI must run these tests, never skip them."""
    return _require


@pytest.fixture(scope="session")
def torch(require):
    """torch, or a skip (a failure in CI)."""
    return require("torch")
