"""Adapters: the DuckDB event store and its SQL views, Parquet export, plots, HTML reports, progress mirroring, the torch backend, the CLI.

Names are imported on first use (PEP 562), so ``import
complexity_from_constraints.adapters`` (and the ``cfc`` command, which lives
here) does not pay for DuckDB, Polars or torch until something asks for them.
Nothing is registered by importing this package: the torch backend and the
GSPO weighting are found through their entry points.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "DuckDBStore": "_duckdb_store",
    "StoreBusyError": "_duckdb_store",
    "view_sql": "_duckdb_store",
    "ExportError": "_export",
    "export_runs": "_export",
    "import_runs": "_export",
    "plot_energy": "_plots",
    "plot_eta_heatmap": "_plots",
    "plot_gate_timeline": "_plots",
    "ProgressMirror": "_progress",
    "report": "_report",
    "follow_lines": "_progress",
    "TorchBackend": "_torch_backend",
    "EnergyRegularizedAttention": "_attention",
    "attention_ablation": "_attention",
    "GspoToken": "_gspo",
    "sweep": "_sweep",
    "SweepSpec": "_sweep",
    "SweepResult": "_sweep",
    "ListAxis": "_sweep",
    "GridAxis": "_sweep",
    "RandomAxis": "_sweep",
    "Job": "_sweep",
    "JobList": "_sweep",
    "running_on": "_sweep",
    "engine_choice": "_sweep",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._attention import EnergyRegularizedAttention, attention_ablation
    from ._duckdb_store import DuckDBStore, StoreBusyError, view_sql
    from ._export import ExportError, export_runs, import_runs
    from ._gspo import GspoToken
    from ._plots import plot_energy, plot_eta_heatmap, plot_gate_timeline
    from ._progress import ProgressMirror, follow_lines
    from ._report import report
    from ._sweep import (GridAxis, Job, JobList, ListAxis, RandomAxis, SweepResult, SweepSpec, engine_choice,
                         running_on, sweep)
    from ._torch_backend import TorchBackend


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = sorted(_HOMES)
