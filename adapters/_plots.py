"""PNG plots of runs, drawn with matplotlib's Agg canvas (never a window), from the SQL views.

matplotlib is imported when a plot is drawn, so ``import adapters`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from complexity_from_constraints.entities import CfcError, MissingDependencyError, UnknownRunError

from ._duckdb_store import DuckDBStore
from ._progress import check_output

# Every plot function refuses to replace a file at ``path`` that is not a PNG (a run store, say) unless
# ``force=True``: ``cfc plot RUN -o runs.duckdb`` must not destroy the database.


def plot_energy(store: DuckDBStore, run_ids: Sequence[str], path: str | Path, *, force: bool = False) -> Path:
    """Energy per step of one or more runs (``v_energy_by_step``), one line each, ΔF90 marked.

    Args:
        store: the store holding the runs.
        run_ids: the runs to draw (at least one).
        path: the PNG file to write.
        force: replace ``path`` even if it holds something other than a PNG
            (otherwise :class:`OverwriteRefusedError`, and the file is left alone).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    >>> import tempfile, pathlib
    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> from complexity_from_constraints.projectors import relax
    >>> with DuckDBStore(":memory:") as store, tempfile.TemporaryDirectory() as folder:
    ...     run = relax(System(id="s", modules=[LandauModule(id="m", a=-1.0)]), RelaxConfig(steps=20), store=store)
    ...     png = plot_energy(store, [run.run_id], pathlib.Path(folder) / "energy.png")
    ...     png.read_bytes()[:4]
    b'\x89PNG'
    """
    check_output(path, "png", force=force)
    runs = _require(store, run_ids)
    fig, ax = _figure()
    for run_id in runs:
        df = store.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [run_id])
        (line,) = ax.plot(df["step"].to_numpy(), df["energy"].to_numpy(), label=run_id, linewidth=1.5)
        f90 = store.query("SELECT delta_f90 FROM v_delta_f90 WHERE run_id = ?", [run_id])
        if not f90.is_empty() and f90["delta_f90"][0] is not None:
            ax.axvline(f90["delta_f90"][0], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(xlabel="step", ylabel="energy", title="energy by step (dotted: ΔF90)")
    ax.legend(fontsize="small")
    return _save(fig, path, force)


def plot_eta_heatmap(store: DuckDBStore, run_id: str, path: str | Path, *, force: bool = False) -> Path:
    """η of every module (rows) at every recorded step (columns) of one run, from ``v_eta``.

    A recorded step is one that changed the state (step 0 and each accepted step).

    >>> plot_eta_heatmap(store, run_id, "eta.png")  # doctest: +SKIP
    PosixPath('eta.png')
    """
    check_output(path, "png", force=force)
    _require(store, [run_id])
    df = store.query("SELECT step, entity_id, eta FROM v_eta WHERE run_id = ? ORDER BY step", [run_id])
    fig, ax = _figure()
    if df.is_empty():
        _nothing(ax, "no η recorded")
        return _save(fig, path, force)
    ids = store.query("SELECT m.module_id FROM run_modules AS m JOIN runs AS r ON r.run_key = m.run_key "
                      "WHERE r.run_id = ? ORDER BY m.idx", [run_id])["module_id"].to_list()
    steps = np.unique(df["step"].to_numpy())
    grid = np.full((len(ids), len(steps)), np.nan)  # NaN: a module added later had no η yet
    rows = np.searchsorted(np.array(sorted(ids)), df["entity_id"].to_numpy())
    order = np.argsort(ids)  # rows were found in sorted-id order; map them back to module order
    grid[order[rows], np.searchsorted(steps, df["step"].to_numpy())] = df["eta"].to_numpy()
    image = ax.imshow(grid, aspect="auto", interpolation="nearest", vmin=0.0, vmax=1.0, cmap="viridis",
                      extent=(-0.5, len(steps) - 0.5, len(ids) - 0.5, -0.5))
    ax.set_xticks(_ticks(len(steps)), [str(s) for s in steps[_ticks(len(steps))]])
    if len(ids) <= 40:
        ax.set_yticks(range(len(ids)), ids, fontsize="small")
    ax.set(xlabel="recorded step", ylabel="module", title=f"η of run {run_id}")
    fig.colorbar(image, ax=ax, label="η")
    return _save(fig, path, force)


def plot_gate_timeline(store: DuckDBStore, run_id: str, path: str | Path, *, force: bool = False) -> Path:
    """η of each gate that had an event (``v_eta``), with its openings ▲ and closings ▼ (``v_gate_timeline``).

    >>> plot_gate_timeline(store, run_id, "gates.png")  # doctest: +SKIP
    PosixPath('gates.png')
    """
    check_output(path, "png", force=force)
    _require(store, [run_id])
    events = store.query("SELECT gate_id, step, event, eta, hazard FROM v_gate_timeline WHERE run_id = ? "
                         "ORDER BY gate_id, step", [run_id])
    fig, ax = _figure()
    if events.is_empty():
        _nothing(ax, "no gate events")
        return _save(fig, path, force)
    gates = events["gate_id"].unique(maintain_order=True).to_list()
    eta = store.query("SELECT entity_id, step, eta FROM v_eta WHERE run_id = ? "
                      "AND entity_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY step", [run_id, gates])
    for gate in gates:
        trace = eta.filter(eta["entity_id"] == gate)
        (line,) = ax.step(trace["step"].to_numpy(), trace["eta"].to_numpy(), where="post", label=gate)
        own = events.filter(events["gate_id"] == gate)
        for kind, marker in (("opened", "^"), ("closed", "v")):
            sel = own.filter(own["event"] == kind)
            ax.scatter(sel["step"].to_numpy(), sel["eta"].to_numpy(), marker=marker, s=60,
                       color=line.get_color(), zorder=3)
    ax.set(xlabel="step", ylabel="η (gate)", ylim=(-0.02, 1.02), title=f"gates of run {run_id} (▲ opened, ▼ closed)")
    ax.legend(fontsize="small")
    return _save(fig, path, force)


def _require(store: DuckDBStore, run_ids: Sequence[str]) -> list[str]:
    runs = list(run_ids)
    if not runs:
        raise CfcError("name at least one run to plot")
    known = set(store.query("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                            [runs])["run_id"].to_list())
    for run_id in runs:
        if run_id not in known:
            raise UnknownRunError(f"no run {run_id!r} in {store.path}")
    return runs


def _figure() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'matplotlib>=3.8'") from None
    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no global backend, no window
    return fig, fig.add_subplot()


def _save(fig: Any, path: str | Path, force: bool) -> Path:
    out = Path(path)
    check_output(out, "png", force=force)  # again: the file may have appeared while we drew
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _nothing(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _ticks(n: int, most: int = 10) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))
