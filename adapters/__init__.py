"""Adapters: the DuckDB event store and its SQL views, Parquet export, plots, HTML reports, progress mirroring, the torch backend, the CLI."""

from complexity_from_constraints.entities import GspoTokenAdapter
from complexity_from_constraints.projectors import register_adapter, register_backend

from ._duckdb_store import DuckDBStore, StoreBusyError, view_sql
from ._export import ExportError, export_runs, import_runs
from ._plots import plot_energy, plot_eta_heatmap, plot_gate_timeline
from ._progress import ProgressMirror, follow_lines
from ._report import report
from ._torch_backend import TorchBackend, torch_backend
from ._attention import EnergyRegularizedAttention, attention_ablation
from ._gspo import GspoTokenWeightAdapter

register_backend("torch", torch_backend)  # lazy: torch is imported when a torch backend is built
register_adapter(GspoTokenAdapter, GspoTokenWeightAdapter)  # lazy too: torch is imported when it is built

__all__ = [
    "DuckDBStore",
    "EnergyRegularizedAttention",
    "ExportError",
    "GspoTokenWeightAdapter",
    "ProgressMirror",
    "StoreBusyError",
    "TorchBackend",
    "attention_ablation",
    "export_runs",
    "follow_lines",
    "import_runs",
    "plot_energy",
    "plot_eta_heatmap",
    "plot_gate_timeline",
    "report",
    "view_sql",
]
