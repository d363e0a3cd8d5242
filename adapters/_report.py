"""A run report: one self-contained HTML page that a person would rather look at than read.

``report(store, run_ids)`` builds the page from the store's SQL views only: every number on it is a
row of a ``v_*`` view (downsampling happens in SQL, and the comparison of runs is
``projectors.diff_runs``). The page is laid out from sections:

- one run: a header (status, steps, energies, ΔF90/ΔF99, the config fields that differ from the
  defaults, the System by kind), the energy trace with ΔF90/ΔF99 marked, step size and
  backtracks, the η heatmap, the gate timeline, per-term energies, weight history, the
  contraction margin and a table of warnings;
- several runs: a summary row per run, the energy traces overlaid with the first η divergence
  marked, the config differences and how each run parts from the first;
- with ``axis=`` (a config field, ``seed`` or ``system_id``): each run's final energy, ΔF99 and
  steps against the axis, with the mean ± sd band per axis value.

A later sweep or study report is one more section builder (a function ``(page, store, run_ids)``)
appended in :func:`report`.

The plots are Plotly figures; plotly.js (4.8 MB minified) is embedded once, gzip-compressed and
base64-encoded (2 MB), and unpacked in the browser with ``DecompressionStream``, so the file opens
offline without any request.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
import re
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any, Sequence

from complexity_from_constraints.entities import CfcError, MissingDependencyError, RelaxConfig, UnknownRunError, flatten_fields
from complexity_from_constraints.projectors import diff_runs, package_version

if TYPE_CHECKING:
    import polars as pl

    from ._duckdb_store import DuckDBStore

HEATMAP_STEPS = 250  # at most this many step columns in the η heatmap
HEATMAP_MODULES = 200  # and this many module rows
MAX_GATES = 20  # gates drawn in the gate timeline (those with the most events first)
MAX_ROWS = 300  # rows of a table before "… more"
SWEEP_METRICS = (("final_energy", "final energy"), ("delta_f99", "ΔF99 (steps)"), ("steps", "steps"))
_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#7c3aed",
           "#ca8a04")
_CONFIG = {"displaylogo": False, "responsive": True}
_HEADS = {"run_id": "run", "system_id": "system", "final_energy": "final energy", "delta_f90": "ΔF90",
          "delta_f99": "ΔF99", "accepted_steps": "accepted", "rejected_steps": "rejected", "gate_openings": "gate openings"}
_QUIET_EVENTS = ("RunStarted", "StepCommitted", "EtaRecorded", "RunFinished", "TermsRecorded", "GateOpened",
                 "GateClosed", "WeightsAdapted", "MarginWarning", "EntityRevised", "ModuleAdded", "ExpansionRejected",
                 "StabilityBounded", "ObjectiveScaled", "LoopSnapshotted")


def report(store: DuckDBStore, run_ids: Sequence[str] = (), *, title: str | None = None, axis: str | None = None,
           tol: float = 1e-9, sweep: str | None = None, study: str | None = None) -> str:
    """The HTML report of one run, or the comparison of several, or of a sweep or a study.

    Args:
        store: a DuckDB store holding the runs (read through its views).
        run_ids: one run (the full report) or several (the comparison; the first is the reference
            that the others are diffed against).
        sweep: a sweep id (``v_sweeps``): its complete runs, against each axis it varied (or ``axis``).
        study: a study's name: the runs of its latest ``cfc experiment`` (``v_runs.study``), with what
            it found (``v_study_results``: verdict, hypothesis, measured), against ``axis`` if given.
        title: the page title (default: the run's name or id, or "N runs").
        axis: with several runs, also plot each run's final energy, ΔF99 and steps against this
            axis, with the mean ± sd per axis value: ``"seed"``, ``"system_id"`` or a config field
            (dotted for nested ones, e.g. ``"step_size"``, ``"stability.cap_fraction"``).
        tol: the tolerance of the diff's first η divergence.

    Returns:
        One self-contained HTML page (no request to any server when opened).

    Raises:
        UnknownRunError: a run id the store does not hold.
        MissingDependencyError: plotly is not installed.

    >>> from complexity_from_constraints.adapters import DuckDBStore, report
    >>> from complexity_from_constraints.entities import RelaxConfig, demo_system
    >>> from complexity_from_constraints.projectors import relax
    >>> with DuckDBStore(":memory:") as store:
    ...     a = relax(demo_system(0), RelaxConfig(steps=20), store=store).run_id
    ...     b = relax(demo_system(0), RelaxConfig(steps=20, step_size=0.1), store=store).run_id
    ...     one, two = report(store, [a]), report(store, [a, b])
    >>> one.startswith("<!DOCTYPE html>"), 'data-plot="eta"' in one, 'data-table="config-diff"' in two
    (True, True, True)
    """
    leads: list[tuple[str, str, str]] = []  # (title, html, key) of the sections that say what was selected
    if sweep is not None or study is not None:
        if run_ids or (sweep is not None and study is not None):
            raise CfcError("report takes run ids, or sweep=, or study=: one of them")
        run_ids, axes, leads = (_sweep_runs(store, sweep, axis) if sweep is not None else _study_runs(store, study, axis))
    else:
        axes = [axis] if axis is not None else []
    run_ids = list(dict.fromkeys(run_ids))
    if not run_ids:
        raise CfcError("report needs at least one run id")
    known = set(store.query("SELECT run_id FROM v_runs WHERE run_id IN (SELECT unnest(?))", [run_ids])["run_id"])
    missing = [r for r in run_ids if r not in known]
    if missing:
        raise UnknownRunError(f"no run {missing[0]!r} in {store.path}")
    if axes and len(run_ids) == 1:
        raise CfcError("axis= compares several runs; give two or more run ids")
    page = _Page()
    for head, body, key in leads:
        page.section(head, body, key=key)
    if len(run_ids) == 1:
        name = _run_sections(page, store, run_ids[0])
        default_title = name or f"run {run_ids[0]}"
        subtitle = f"one run · {_esc(run_ids[0])}"
    else:
        _comparison_sections(page, store, run_ids, tol)
        for one in axes:  # a sweep: every axis it varied
            _sweep_section(page, store, run_ids, one)
        default_title = leads[0][0] if leads else f"{len(run_ids)} runs"
        subtitle = "comparison against the first · " + " · ".join(_esc(r) for r in run_ids[:6]) + \
            (f" · … ({len(run_ids) - 6} more)" if len(run_ids) > 6 else "")
    return page.render(title or default_title, subtitle)


# -- the page --------------------------------------------------------------------------------------


class _Page:
    """Sections of HTML plus the figures they place; :meth:`render` fills the template."""

    def __init__(self) -> None:
        self.sections: list[str] = []
        self.figures: list[dict[str, Any]] = []
        self.template: dict[str, Any] | None = None

    def section(self, title: str, *parts: str, lead: str = "", key: str = "") -> None:
        head = f"<h2>{_esc(title)}</h2>" + (f'<p class="lead">{lead}</p>' if lead else "")
        self.sections.append(f'<section data-section="{_esc(key or title)}">{head}{"".join(parts)}</section>')

    def figure(self, fig: Any, *, name: str, note: str = "") -> str:
        """Place a Plotly figure; returns its div (with the note said under it)."""
        spec = json.loads(fig.to_json())  # plotly's encoder: numpy arrays become compact typed arrays
        template = spec["layout"].pop("template", None)
        self.template = self.template or template  # every figure uses the same one; embed it once
        fig_id = f"plot-{len(self.figures)}"
        self.figures.append({"id": fig_id, "data": spec["data"], "layout": spec["layout"]})
        caption = f'<p class="note">{_esc(note)}</p>' if note else ""
        return f'<div class="plot" id="{fig_id}" data-plot="{_esc(name)}"></div>{caption}'

    def render(self, title: str, subtitle: str) -> str:
        figures = json.dumps({"figures": self.figures, "template": self.template or {}, "config": _CONFIG},
                             separators=(",", ":"), allow_nan=False)
        return _page_template().substitute(
            title=_esc(title), subtitle=subtitle, body="\n".join(self.sections),
            figures=figures.replace("</", "<\\/"), plotly=_packed_plotly(), plotly_version=_plotly_version(),
            version=_esc(package_version()))


@functools.cache
def _page_template() -> Template:
    return Template((resources.files("complexity_from_constraints.adapters") / "report" / "page.html").read_text())


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise MissingDependencyError(
            "reports need plotly: python -m pip install plotly (or the project's 'report' extra)") from None
    return go, make_subplots


@functools.cache
def _packed_plotly() -> str:
    """The embedded plotly.js (gzip, base64): the cartesian partial bundle, shipped with the package."""
    return base64.b64encode(_bundle().read_bytes()).decode()


@functools.cache
def _plotly_version() -> str:
    head = gzip.decompress(_bundle().read_bytes())[:200].decode()
    found = re.search(r"v(\d+\.\d+\.\d+)", head)
    return found.group(1) if found else "?"


def _bundle():
    return resources.files("complexity_from_constraints.adapters") / "report" / "plotly-cartesian.min.js.gz"


# -- one run ---------------------------------------------------------------------------------------


def _run_sections(page: _Page, store: DuckDBStore, run_id: str) -> str | None:
    """Every section of a single run's report; returns the run's name, if the store records one."""
    run = store.query("SELECT * FROM v_runs WHERE run_id = ?", [run_id]).row(0, named=True)
    summary = store.query("SELECT * FROM v_run_summary WHERE run_id = ?", [run_id]).row(0, named=True)
    delta = _first(store.query("SELECT delta_f99, e_min FROM v_delta_f90 WHERE run_id = ?", [run_id]))
    stats = _first(store.query("SELECT total_backtracks, mean_step_size FROM v_step_stats WHERE run_id = ?", [run_id]))
    config = _config(store, run_id)
    name = run.get("name")  # the store may record run metadata (a name); show it when it does
    cards = [
        ("status", summary["status"]), ("steps", summary["steps"]), ("final energy", summary["final_energy"]),
        ("initial energy", summary["e0"]), ("energy drop", summary["energy_drop"]), ("ΔF90", summary["delta_f90"]),
        ("ΔF99", delta.get("delta_f99")), ("accepted steps", summary["accepted_steps"]),
        ("rejected steps", summary["rejected_steps"]), ("backtracks", stats.get("total_backtracks")),
        ("gate openings", summary["gate_openings"]), ("modules", run["n_modules"]),
    ]
    identity = [("run id", run_id), *([("name", name)] if name else []), ("system", run["system_id"]),
                ("system digest", run["system_digest"]), ("seed", run["seed"]), ("solver", config.get("solver")),
                ("package version", run["package_version"])]
    defaults = flatten_fields(RelaxConfig().for_modules(run["n_modules"]).model_dump(mode="json"))  # "auto" as resolved
    changed = [(k, v) for k, v in flatten_fields(config).items() if k not in defaults or defaults[k] != v]
    kinds = store.query(
        "SELECT role, kind, count(DISTINCT entity_id) AS entities FROM v_entity_versions "
        "WHERE run_id = ? AND from_step = 0 GROUP BY role, kind ORDER BY role DESC, entities DESC, kind", [run_id])
    page.section(
        "Run", _cards(cards),
        '<div class="cols"><div>', _kv_table(identity, key="identity"), '</div><div>',
        _kv_table(changed, key="config", empty="every config field at its default", head=("config field", "value")),
        '</div><div>', _table(kinds, key="system", head={"entities": "count"}), "</div></div>",
        lead="From v_runs, v_run_summary, v_delta_f90 and v_step_stats; the config fields shown are those "
             "that differ from RelaxConfig's defaults; the System by kind is from v_entity_versions.",
        key="header")
    _energy_section(page, store, run_id, summary, delta)
    _steps_section(page, store, run_id)
    _eta_section(page, store, run_id)
    _gate_section(page, store, run_id)
    _terms_section(page, store, run_id)
    _weights_section(page, store, run_id)
    _margin_section(page, store, run_id)
    _warnings_section(page, store, run_id)
    return name


def _energy_section(page: _Page, store: DuckDBStore, run_id: str, summary: dict, delta: dict) -> None:
    go, _ = _plotly()
    energy = store.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [run_id])
    fig = go.Figure(go.Scatter(x=energy["step"].to_numpy(), y=energy["energy"].to_numpy(), mode="lines",
                               name="energy", line={"color": _COLORS[0], "width": 2},
                               hovertemplate="step %{x}<br>energy %{y:.9g}<extra></extra>"))
    marks = (("ΔF90", summary["delta_f90"], "dash", "top left"), ("ΔF99", delta.get("delta_f99"), "dot", "top right"))
    for label, step, dash, where in marks:
        if step is not None:
            fig.add_vline(x=step, line={"color": "#64748b", "dash": dash, "width": 1.5},
                          annotation={"text": f"{label} = {step}", "font": {"size": 11}}, annotation_position=where)
    _layout(fig, height=360, x="step", y="energy 𝓕", hovermode="x")
    _step_axis_buttons(fig)
    note = "ΔF90 / ΔF99: the first step by which 90 % / 99 % of the run's energy drop was made (v_delta_f90)."
    page.section("Energy", page.figure(fig, name="energy", note=note),
                 lead="The energy of the state after each step (v_energy_by_step); a rejected step keeps the "
                      "previous energy. Drag to zoom, double-click to reset.", key="energy")


def _steps_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, make_subplots = _plotly()
    steps = store.query("SELECT step, step_size, backtracks, accepted, reason FROM v_steps "
                        "WHERE run_id = ? AND step > 0 ORDER BY step", [run_id])
    if steps.is_empty():
        return
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    fig.add_trace(go.Scatter(x=steps["step"].to_numpy(), y=steps["step_size"].to_numpy(), mode="lines", name="α",
                             line={"color": _COLORS[0], "width": 1.5}, hovertemplate="step %{x}<br>α %{y:.6g}<extra></extra>"),
                  row=1, col=1)
    rejected = steps.filter(~steps["accepted"])
    if not rejected.is_empty():
        fig.add_trace(go.Scatter(x=rejected["step"].to_numpy(), y=rejected["step_size"].to_numpy(), mode="markers",
                                 name="rejected", marker={"color": "#dc2626", "symbol": "x", "size": 7},
                                 text=rejected["reason"].to_list(),
                                 hovertemplate="step %{x} rejected (%{text})<br>α %{y:.6g}<extra></extra>"), row=1, col=1)
    # One filled step line rather than a bar per step: a thousand steps stay one SVG path.
    fig.add_trace(go.Scatter(x=steps["step"].to_numpy(), y=steps["backtracks"].to_numpy(), name="backtracks",
                             mode="lines", line={"color": "#64748b", "width": 1, "shape": "hvh"}, fill="tozeroy",
                             fillcolor="rgba(100, 116, 139, 0.25)",
                             hovertemplate="step %{x}<br>%{y} backtracks<extra></extra>"), row=2, col=1)
    positive = steps.filter(steps["step_size"] > 0)
    if not positive.is_empty() and positive["step_size"].max() > 20 * positive["step_size"].min():
        fig.update_yaxes(type="log", row=1, col=1)
    else:
        fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title_text="step size α", row=1, col=1)
    fig.update_yaxes(title_text="backtracks", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    _layout(fig, height=380, hovermode="x")
    page.section("Step size and backtracks", page.figure(fig, name="steps"),
                 lead=f"α and backtracks of every step (v_steps): {len(steps) - len(rejected)} accepted, "
                      f"{len(rejected)} rejected (red ×).", key="steps")


def _eta_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, _ = _plotly()
    sizes = store.query("SELECT count(DISTINCT step) AS steps, max(step) AS last, count(DISTINCT entity_id) AS modules "
                        "FROM v_eta WHERE run_id = ?", [run_id]).row(0, named=True)
    if not sizes["steps"]:
        return
    every = _nice(math.ceil((sizes["last"] + 1) / HEATMAP_STEPS))
    per_bin = max(1, math.ceil(sizes["modules"] / HEATMAP_MODULES))
    # Downsampled in SQL: the recorded steps divisible by `every`, modules in recording order, `per_bin`
    # to a row, each cell the mean η (the module order is the store's run_modules index).
    cells = store.query("""
        SELECT v.step, m.idx // ? AS bin, avg(v.eta) AS eta,
               arg_min(v.entity_id, m.idx) AS first_id, arg_max(v.entity_id, m.idx) AS last_id
        FROM v_eta AS v
        JOIN runs AS r ON r.run_id = v.run_id
        JOIN run_modules AS m ON m.run_key = r.run_key AND m.module_id = v.entity_id
        WHERE v.run_id = ? AND v.step % ? = 0
        GROUP BY v.step, bin ORDER BY bin, v.step""", [per_bin, run_id, every])
    import polars as pl

    grid = cells.pivot(on="step", index="bin", values="eta", sort_columns=False).sort("bin")
    step_cols = sorted((c for c in grid.columns if c != "bin"), key=int)
    labels = cells.group_by("bin").agg(pl.col("first_id").first(), pl.col("last_id").first()).sort("bin")
    names = [a if a == b else f"{a} … {b}" for a, b in zip(labels["first_id"], labels["last_id"])]
    z = grid.select(step_cols).to_numpy()
    fig = go.Figure(go.Heatmap(
        z=z, x=[int(s) for s in step_cols], y=names, colorscale="Viridis", zmin=0.0, zmax=1.0,
        colorbar={"title": {"text": "η"}},
        hovertemplate=f"step %{{x}}<br>%{{y}}<br>{'mean η' if per_bin > 1 else 'η'} %{{z:.6g}}<extra></extra>"))
    what = []
    if every > 1:
        what.append(f"every {every}th step")
    if per_bin > 1:
        what.append(f"modules binned {per_bin} to a row (mean η), in the System's order")
    note = ("Downsampled in SQL for size: " + ", ".join(what) + f" of {sizes['modules']} modules × "
            f"{sizes['steps']} recorded steps.") if what else \
        f"Every recorded step and every module ({sizes['modules']} × {sizes['steps']})."
    _layout(fig, height=max(300, min(560, 120 + 22 * len(names))), x="step",
            y="module" if per_bin == 1 else f"modules ({per_bin} to a row)")
    if every > 1 or per_bin > 1:
        fig.add_annotation(text=", ".join(what), xref="paper", yref="paper", x=0, y=1.02, xanchor="left",
                           yanchor="bottom", showarrow=False, font={"size": 11, "color": "#616e7c"})
    page.section("η over steps and modules", page.figure(fig, name="eta", note=note),
                 lead="η of every module after each recorded step (v_eta).", key="eta")


def _gate_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, _ = _plotly()
    gates = store.query("""
        SELECT t.gate_id, count(e.step) AS events
        FROM (SELECT DISTINCT gate_id FROM v_gate_trajectory WHERE run_id = ?) AS t
        LEFT JOIN v_gate_timeline AS e ON e.run_id = ? AND e.gate_id = t.gate_id
        GROUP BY t.gate_id ORDER BY events DESC, t.gate_id""", [run_id, run_id])
    if gates.is_empty():
        return
    shown = gates.head(MAX_GATES)["gate_id"].to_list()
    trajectory = store.query("SELECT gate_id, step, eta, hazard FROM v_gate_trajectory WHERE run_id = ? "
                             "AND gate_id IN (SELECT unnest(?)) ORDER BY gate_id, step", [run_id, shown])
    events = store.query("SELECT gate_id, step, event, eta, hazard FROM v_gate_timeline WHERE run_id = ? "
                         "ORDER BY step, gate_id", [run_id])
    fig = go.Figure()
    for k, gate in enumerate(shown):
        rows = trajectory.filter(trajectory["gate_id"] == gate)
        fig.add_trace(go.Scatter(x=rows["step"].to_numpy(), y=rows["eta"].to_numpy(), mode="lines", name=gate,
                                 line={"color": _COLORS[k % len(_COLORS)], "width": 2}, legendgroup=gate,
                                 customdata=rows["hazard"].to_numpy(),
                                 hovertemplate=f"{_esc(gate)}<br>step %{{x}}<br>η %{{y:.4g}}<br>λ %{{customdata:.4g}}<extra></extra>"))
    for event, symbol, color in (("opened", "triangle-up", "#15803d"), ("closed", "triangle-down", "#b91c1c")):
        rows = events.filter((events["event"] == event) & events["gate_id"].is_in(shown))
        if not rows.is_empty():
            fig.add_trace(go.Scatter(x=rows["step"].to_numpy(), y=rows["eta"].to_numpy(), mode="markers",
                                     name=event, marker={"symbol": symbol, "size": 12, "color": color,
                                                         "line": {"color": "white", "width": 1}},
                                     text=rows["gate_id"].to_list(),
                                     hovertemplate=f"%{{text}} {event} at step %{{x}}<br>η %{{y:.4g}}<extra></extra>"))
    _layout(fig, height=340, x="step", y="gate η (open while η ≥ its threshold)")
    fig.update_yaxes(range=[-0.02, 1.02])
    note = f"{len(shown)} of {len(gates)} gates shown (those with the most events first)." if len(gates) > len(shown) else ""
    table = _table(events.head(MAX_ROWS), key="gate-events", empty="no gate opened or closed",
                   more=len(events) - MAX_ROWS, scroll=True)
    page.section("Gates", page.figure(fig, name="gates", note=note), table,
                 lead="Each gate's η at every recorded step (v_gate_trajectory), with its open and close events "
                      "(v_gate_timeline, ▲ opened, ▼ closed; λ is the hazard).", key="gates")


def _terms_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, make_subplots = _plotly()
    terms = store.query("SELECT step, kind, energy, grad_norm FROM v_terms_by_step WHERE run_id = ? ORDER BY kind, step",
                        [run_id])
    if terms.is_empty():
        return
    fig = make_subplots(rows=1, cols=2, subplot_titles=("energy per kind", "gradient norm per kind"))
    for k, kind in enumerate(terms["kind"].unique(maintain_order=True).to_list()):
        rows = terms.filter(terms["kind"] == kind)
        color = _COLORS[k % len(_COLORS)]
        for col, field in ((1, "energy"), (2, "grad_norm")):
            fig.add_trace(go.Scatter(x=rows["step"].to_numpy(), y=rows[field].to_numpy(), mode="lines+markers",
                                     name=kind, legendgroup=kind, showlegend=col == 1, marker={"size": 4},
                                     line={"color": color},
                                     hovertemplate=f"{_esc(kind)}<br>step %{{x}}<br>{field} %{{y:.6g}}<extra></extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="step")
    _layout(fig, height=360)
    fig.update_layout(legend={"y": -0.25})
    page.section("Energy by term", page.figure(fig, name="terms"),
                 lead="Each kind's weighted energy and gradient norm under the objective in force, at the steps "
                      "recorded by record_terms_every (v_terms_by_step).", key="terms")


def _weights_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, _ = _plotly()
    weights = store.query("SELECT step, weighting, kind, weight, previous FROM v_weight_history WHERE run_id = ? "
                          "ORDER BY kind, step", [run_id])
    if weights.is_empty():
        return
    fig = go.Figure()
    for k, kind in enumerate(weights["kind"].unique(maintain_order=True).to_list()):
        rows = weights.filter(weights["kind"] == kind)
        fig.add_trace(go.Scatter(x=rows["step"].to_numpy(), y=rows["weight"].to_numpy(), mode="lines+markers",
                                 line={"shape": "hv", "color": _COLORS[k % len(_COLORS)]}, name=kind,
                                 hovertemplate=f"{_esc(kind)}<br>step %{{x}}<br>weight %{{y:.6g}}<extra></extra>"))
    _layout(fig, height=320, x="step (in force from the next)", y="family weight")
    page.section("Weight history", page.figure(fig, name="weights"),
                 lead=f"Every change the weighting ({_esc(', '.join(weights['weighting'].unique().sort().to_list()))}) "
                      "made to the per-kind weights (v_weight_history).", key="weights")


def _margin_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    go, _ = _plotly()
    margin = store.query("SELECT step, step_size, margin, warned, threshold, lipschitz FROM v_contraction_margin "
                         "WHERE run_id = ? ORDER BY step", [run_id])
    if margin.is_empty():
        return
    fig = go.Figure(go.Scatter(x=margin["step"].to_numpy(), y=margin["margin"].to_numpy(), mode="lines", name="margin",
                               line={"color": _COLORS[0]}, hovertemplate="step %{x}<br>2/L − α %{y:.6g}<extra></extra>"))
    warned = margin.filter(margin["warned"])
    if not warned.is_empty():
        fig.add_trace(go.Scatter(x=warned["step"].to_numpy(), y=warned["margin"].to_numpy(), mode="markers",
                                 name="warned", marker={"color": "#b45309", "size": 8, "symbol": "diamond"},
                                 hovertemplate="step %{x}: margin warning<br>%{y:.6g}<extra></extra>"))
    _layout(fig, height=300, x="step", y="margin 2/L − α")
    page.section("Contraction margin", page.figure(fig, name="margin"),
                 lead="2/L − α of the stability guard (v_contraction_margin); ◆ marks a MarginWarning.", key="margin")


def _warnings_section(page: _Page, store: DuckDBStore, run_id: str) -> None:
    import polars as pl

    rows = [
        store.query("SELECT step, 'margin warning' AS what, 'margin ' || printf('%.6g', margin) || ' < ' || "
                    "printf('%.6g', threshold) || ' (α ' || printf('%.6g', step_size) || ')' AS detail "
                    "FROM v_contraction_margin WHERE run_id = ? AND warned", [run_id]),
        store.query("SELECT step, 'revision' AS what, entity_id || ' → version ' || version || ': ' || "
                    "CAST(changes AS VARCHAR) AS detail FROM v_revisions WHERE run_id = ?", [run_id]),
        store.query("SELECT step, 'expansion ' || decision AS what, module_id || ': ΔF ' || printf('%.6g', delta_f) || "
                    "', τ ' || printf('%.6g', tau) || coalesce(', parent ' || parent_id, '') AS detail "
                    "FROM v_expansions WHERE run_id = ?", [run_id]),
        store.query("SELECT step, CASE type WHEN 'EscapeDetected' THEN 'escape' ELSE type END AS what, "
                    "'' AS detail FROM v_events WHERE run_id = ? AND type NOT IN (SELECT unnest(?))",
                    [run_id, list(_QUIET_EVENTS)]),
    ]
    table = pl.concat([r.cast({"step": pl.Int64, "what": pl.String, "detail": pl.String}) for r in rows]) \
        .sort("step", "what", nulls_last=True)
    page.section("Warnings and changes", _table(table.head(MAX_ROWS), key="warnings", more=len(table) - MAX_ROWS, scroll=True,
                                                empty="no margin warning, escape, revision or expansion"),
                 lead="Margin warnings (v_contraction_margin), revisions (v_revisions), expansions (v_expansions) "
                      "and the other events of note (escapes, solver switches, homotopy back-offs, …; v_events).",
                 key="warnings")


# -- several runs ----------------------------------------------------------------------------------


def _comparison_sections(page: _Page, store: DuckDBStore, run_ids: list[str], tol: float) -> None:
    go, _ = _plotly()
    summary = store.query("""
        SELECT r.run_id, r.system_id, r.seed, s.status, s.steps, s.final_energy, s.delta_f90, d.delta_f99,
               s.accepted_steps, s.rejected_steps, s.gate_openings
        FROM v_runs AS r JOIN v_run_summary AS s USING (run_id) LEFT JOIN v_delta_f90 AS d USING (run_id)
        WHERE r.run_id IN (SELECT unnest(?))""", [run_ids])
    order = {r: k for k, r in enumerate(run_ids)}
    summary = summary.sort(summary["run_id"].replace_strict(order, return_dtype=int))
    page.section("Runs", _table(summary, key="runs", head=_HEADS),
                 lead="One row per run (v_runs, v_run_summary, v_delta_f90); the first is the reference.", key="runs")
    diffs = [diff_runs(store, run_ids[0], other, tol=tol) for other in run_ids[1:]]
    energy = store.query("SELECT run_id, step, energy FROM v_energy_by_step WHERE run_id IN (SELECT unnest(?)) "
                         "ORDER BY run_id, step", [run_ids])
    fig = go.Figure()
    for k, run in enumerate(run_ids):
        rows = energy.filter(energy["run_id"] == run)
        fig.add_trace(go.Scatter(x=rows["step"].to_numpy(), y=rows["energy"].to_numpy(), mode="lines", name=run,
                                 line={"color": _COLORS[k % len(_COLORS)], "width": 2},
                                 hovertemplate=f"{_esc(run)}<br>step %{{x}}<br>energy %{{y:.9g}}<extra></extra>"))
    labelled: set[int] = set()  # one label per step, however many runs part there
    for k, d in enumerate(diffs, start=1):
        if d.first_divergence is not None:
            label = {} if d.first_divergence in labelled else {
                "annotation": {"text": f"diverges at {d.first_divergence}", "font": {"size": 11}},
                "annotation_position": "top right" if len(labelled) % 2 == 0 else "bottom right"}
            labelled.add(d.first_divergence)
            fig.add_vline(x=d.first_divergence, line={"color": _COLORS[k % len(_COLORS)], "dash": "dash", "width": 1.5},
                          **label)
    _layout(fig, height=380, x="step", y="energy 𝓕", hovermode="x")
    _step_axis_buttons(fig)
    page.section("Energy", page.figure(fig, name="energy", note="Dashed: the first step at which a run's η parts from "
                                                                "the first run's by more than tol (diff_runs)."),
                 lead="The runs' energy traces overlaid (v_energy_by_step).", key="energy")
    page.section("What differs", _config_table(run_ids, diffs), _divergence_table(diffs),
                 lead=f"Config, seed and System differences and the first divergence of each run against "
                      f"{_esc(run_ids[0])} (projectors.diff_runs, tol {tol:g}).", key="diff")


def _config_table(run_ids: list[str], diffs: list) -> str:
    fields: dict[str, Any] = {}  # field → the reference's value
    for d in diffs:
        for key, (a, _) in [*d.config.items(), *([("seed", d.seed)] if d.seed else []),
                            *((f"system.{k}", v) for k, v in d.system.items()),
                            *((f"{e}.{k}", v) for e, changed in d.entities.items() for k, v in changed.items())]:
            fields.setdefault(key, a)
        for e in d.only_in_a:
            fields.setdefault(f"entity {e}", "present")
        for e in d.only_in_b:
            fields.setdefault(f"entity {e}", None)
    if not fields:
        return '<p class="empty" data-table="config-diff">same config, seed and System</p>'
    rows = []
    for key, ref in sorted(fields.items()):
        values = [ref]
        for d in diffs:
            pairs = {**d.config, **({"seed": d.seed} if d.seed else {}),
                     **{f"system.{k}": v for k, v in d.system.items()},
                     **{f"{e}.{k}": v for e, changed in d.entities.items() for k, v in changed.items()},
                     **{f"entity {e}": ("present", None) for e in d.only_in_a},
                     **{f"entity {e}": (None, "present") for e in d.only_in_b}}
            values.append(pairs[key][1] if key in pairs else ref)
        rows.append((key, *values))
    head = "".join(f"<th>{_esc(h)}</th>" for h in ("field", *run_ids))
    body = "".join("<tr>" + f"<td><code>{_esc(r[0])}</code></td>" +
                   "".join(_cell(v, changed=k > 0 and v != r[1]) for k, v in enumerate(r[1:])) + "</tr>" for r in rows)
    return f'<table data-table="config-diff"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _divergence_table(diffs: list) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("run", "first η divergence", "max |η_a − η_b| there",
                                               "first energy difference", "gate events only in the first",
                                               "gate events only in this run"))
    body = "".join(
        f"<tr><td><code>{_esc(d.run_b)}</code></td>{_cell(d.first_divergence)}{_cell(d.max_eta_gap)}"
        f"{_cell(d.first_energy_difference)}{_cell(len(d.gates_only_in_a))}{_cell(len(d.gates_only_in_b))}</tr>"
        for d in diffs)
    return f'<table data-table="divergence"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _sweep_section(page: _Page, store: DuckDBStore, run_ids: list[str], axis: str) -> None:
    go, make_subplots = _plotly()
    if axis == "system_id":
        a_sql = "SELECT r.run_id, r.system_id AS x FROM v_runs AS r"  # a fixed column name, never user text
        params: list[Any] = [run_ids]
    else:  # any parameter a run has: seed, a config field (dotted), system.<entity id>.<field>
        keys = set(store.query("SELECT DISTINCT key FROM v_run_params WHERE run_id IN (SELECT unnest(?))", [run_ids])["key"])
        if axis not in keys:
            raise CfcError(f"axis {axis!r}: not 'system_id' or a parameter of these runs (v_run_params keys, e.g. "
                           f"{', '.join(sorted(k for k in keys if '.' not in k)[:6])})")
        a_sql = "SELECT run_id, value AS x FROM v_run_params WHERE key = ?"
        params = [axis, run_ids]
    # Each run's metrics against the axis, and per axis value the mean ± sd over its runs, in SQL.
    points_sql = f"""
        SELECT a.run_id, a.x, s.final_energy, d.delta_f99, s.steps
        FROM ({a_sql}) AS a
        JOIN v_run_summary AS s USING (run_id) LEFT JOIN v_delta_f90 AS d USING (run_id)
        WHERE a.run_id IN (SELECT unnest(?))"""
    points = store.query(points_sql, params)
    numeric = _numeric(points["x"].to_list())
    key = "TRY_CAST(x AS DOUBLE)" if numeric else "x"  # one of two fixed expressions
    bands = store.query(f"""
        WITH points AS ({points_sql})
        SELECT {key} AS x, count(*) AS runs,
               avg(final_energy) AS final_energy_mean, stddev_samp(final_energy) AS final_energy_sd,
               avg(delta_f99) AS delta_f99_mean, stddev_samp(delta_f99) AS delta_f99_sd,
               avg(steps) AS steps_mean, stddev_samp(steps) AS steps_sd
        FROM points GROUP BY 1 ORDER BY 1""", params)
    xs = points["x"].cast(float).to_numpy() if numeric else points["x"].to_list()
    fig = make_subplots(rows=1, cols=len(SWEEP_METRICS), subplot_titles=[t for _, t in SWEEP_METRICS])
    bx = bands["x"].to_list()
    for col, (metric, label) in enumerate(SWEEP_METRICS, start=1):
        mean, sd = bands[f"{metric}_mean"].to_numpy(), bands[f"{metric}_sd"].fill_null(0.0).to_numpy()
        fig.add_trace(go.Scatter(x=bx + bx[::-1], y=list(mean + sd) + list((mean - sd)[::-1]), fill="toself",
                                 mode="lines", fillcolor="rgba(37, 99, 235, 0.15)", line={"width": 0}, hoverinfo="skip",
                                 name="mean ± sd", legendgroup="band", showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=bx, y=mean, mode="lines", line={"color": _COLORS[0]}, name="mean",
                                 legendgroup="mean", showlegend=col == 1,
                                 hovertemplate=f"{_esc(axis)} %{{x}}<br>mean {label} %{{y:.6g}}<extra></extra>"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=xs, y=points[metric].to_numpy(), mode="markers", name="run", legendgroup="run",
                                 showlegend=col == 1, marker={"color": "#111827", "size": 6, "opacity": 0.7},
                                 text=points["run_id"].to_list(),
                                 hovertemplate=f"%{{text}}<br>{_esc(axis)} %{{x}}<br>{label} %{{y:.6g}}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text=axis, row=1, col=col)
    _layout(fig, height=380)
    fig.update_layout(legend={"y": -0.28})
    heads = {"x": axis, **{f"{m}_{s}": f"{label} {s}" for m, label in SWEEP_METRICS for s in ("mean", "sd")}}
    page.section(f"Against {axis}", page.figure(fig, name="sweep"), _table(bands, key="sweep", head=heads),
                 lead=f"Each run's final energy, ΔF99 and steps against {_esc(axis)} (v_run_summary, v_delta_f90), "
                      "with the mean ± sample sd over the runs of each value (computed in SQL).", key="sweep")


# -- helpers ---------------------------------------------------------------------------------------


def _config(store: DuckDBStore, run_id: str) -> dict[str, Any]:
    """The run's recorded config, every field (validated, so fields added since get their defaults)."""
    raw = store.query("SELECT payload->>'$.config' AS config FROM events WHERE run_id = ? AND type = 'RunStarted'",
                      [run_id])["config"][0]
    return RelaxConfig.model_validate_json(raw).model_dump(mode="json")


def _first(df: pl.DataFrame) -> dict[str, Any]:
    return df.row(0, named=True) if len(df) else {}


def _nice(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that is ≥ n: a stride a person reads at a glance."""
    stride = 1
    while stride < n:
        stride = stride * 5 // 2 if str(stride)[0] == "2" else stride * 2
    return stride


def _step_axis_buttons(fig: Any) -> None:
    """Two buttons to read the step axis linearly or in log scale (where early descent is visible);
    top left, clear of plotly's mode bar on the right."""
    fig.update_layout(margin={"t": 64}, updatemenus=[{
        "type": "buttons", "direction": "right", "x": 0.0, "xanchor": "left", "y": 1.04, "yanchor": "bottom",
        "showactive": True, "pad": {"r": 0, "t": 0}, "font": {"size": 11},
        "buttons": [{"label": "linear steps", "method": "relayout", "args": [{"xaxis.type": "linear"}]},
                    {"label": "log steps", "method": "relayout", "args": [{"xaxis.type": "log"}]}]}])


def _numeric(values: list[Any]) -> bool:
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return True


def _layout(fig: Any, *, height: int, x: str | None = None, y: str | None = None, hovermode: str = "closest") -> None:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 64, "r": 24, "t": 36, "b": 48},
                      hovermode=hovermode, legend={"orientation": "h", "y": -0.18 if x else -0.12},
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif", "size": 12})
    if x:
        fig.update_xaxes(title_text=x)
    if y:
        fig.update_yaxes(title_text=y)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.9g}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return ", ".join(map(_fmt, value[:6])) + f", … ({len(value)} values)"
    if isinstance(value, (list, tuple)):
        value = json.dumps(value, default=str)
    text = json.dumps(value) if isinstance(value, dict) else str(value)
    return text if len(text) <= 160 else text[:159] + "…"  # the whole value is in the cell's data-value


def _cell(value: Any, *, changed: bool = False, align: bool = True) -> str:
    """A table cell showing ``value``; the exact value is in data-value (JSON), for tests and scripts."""
    numeric = align and isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = " ".join(c for c in ("num" if numeric else "", "warn" if changed else "") if c)
    raw = json.dumps(value if not (isinstance(value, float) and not math.isfinite(value)) else str(value), default=str)
    return f'<td{f" class={chr(34)}{cls}{chr(34)}" if cls else ""} data-value="{_esc(raw)}">{_esc(_fmt(value))}</td>'


def _cards(items: list[tuple[str, Any]]) -> str:
    out = []
    for label, value in items:
        raw = json.dumps(value, default=str)
        extra = f" status-{_esc(value)}" if label == "status" else ""
        out.append(f'<div class="card{extra}" data-field="{_esc(label)}"><div class="k">{_esc(label)}</div>'
                   f'<div class="v" data-value="{_esc(raw)}">{_esc(_fmt(value))}</div></div>')
    return f'<div class="cards">{"".join(out)}</div>'


def _kv_table(items: list[tuple[str, Any]], *, key: str, empty: str = "", head: tuple[str, str] = ("", "")) -> str:
    if not items:
        return f'<p class="empty" data-table="{key}">{_esc(empty)}</p>'
    thead = f"<thead><tr><th>{_esc(head[0])}</th><th>{_esc(head[1])}</th></tr></thead>" if any(head) else ""
    rows = "".join(f'<tr data-field="{_esc(k)}"><th>{_esc(k)}</th>{_cell(v, align=False)}</tr>' for k, v in items)
    return f'<table class="kv" data-table="{key}">{thead}<tbody>{rows}</tbody></table>'


def _table(df: pl.DataFrame, *, key: str, empty: str = "none", more: int = 0, head: dict[str, str] | None = None,
           scroll: bool = False) -> str:
    if df.is_empty():
        return f'<p class="empty" data-table="{key}">{_esc(empty)}</p>'
    names = {**{c: c for c in df.columns}, **(head or {})}
    thead = "".join(f'<th{" class=num" if df[c].dtype.is_numeric() else ""}>{_esc(names[c])}</th>' for c in df.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in df.iter_rows())
    tail = f'<p class="note">… {more} more row(s) not shown</p>' if more > 0 else ""
    table = f'<table data-table="{key}"><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table>'
    return (f'<div class="scroll">{table}</div>' if scroll and len(df) > 12 else table) + tail


def _sweep_runs(store: DuckDBStore, sweep: str, axis: str | None) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """A sweep's complete runs, the axes to plot them against (each it varied), and a lead section saying what was swept."""
    found = store.query("SELECT sweep_id, name, points, complete, failed, spec FROM v_sweeps WHERE starts_with(sweep_id, ?)",
                        [sweep])
    if len(found) != 1:
        raise CfcError(f"{sweep!r} matches {len(found)} sweeps in {store.path}: {', '.join(found['sweep_id']) or 'none'}")
    row = found.row(0, named=True)
    runs = store.query("SELECT run_id FROM v_sweep_points WHERE sweep_id = ? AND status = 'complete' ORDER BY point",
                       [row["sweep_id"]])["run_id"].to_list()
    paths = [a["path"] for a in json.loads(row["spec"]).get("axes", []) if a["path"] != "seed"]
    axes = [axis] if axis is not None else (paths or ["seed"])
    lead = (f"sweep {row['sweep_id']}",
            f"<p>{row['complete']} of {row['points']} points complete, {row['failed']} failed; axes: "
            f"{_esc(', '.join(paths) or 'seeds only')}. Each setting's mean ± sd over seeds is v_sweep_summary.</p>",
            "selection")
    return runs, axes, [lead]


def _study_runs(store: DuckDBStore, study: str, axis: str | None) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """The runs of a study's latest invocation, and two sections: what it found (verdict, rule, measured, theory
    beside the measurement) and its figures."""
    found = store.query("SELECT verdict, result, run_ids FROM v_study_results WHERE study = ? "
                        "ORDER BY recorded_at DESC LIMIT 1", [study])
    if found.is_empty():
        raise CfcError(f"no study {study!r} recorded in {store.path}; run `cfc experiment {study}` first")
    row = found.row(0, named=True)
    result = json.loads(row["result"])
    run_ids = json.loads(row["run_ids"])
    verdict = row["verdict"]
    cards = _cards([("verdict", verdict), ("seeds", result.get("seeds")), ("runs", len(run_ids)),
                    ("checks agreeing", _agreeing(result.get("checks", [])))])
    why = f"{verdict} ({result['reason']})" if result.get("reason") else verdict
    items = [(k, v) for k, v in (("hypothesis", result.get("hypothesis")), ("rule", result.get("rule")),
                                 ("measured", result.get("measured")), ("verdict", why),
                                 ("the seed's number", result.get("seed_result")), ("notes", result.get("notes")))
             if v]
    prose = "".join(f'<tr data-field="{_esc(k)}"><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>' for k, v in items)
    found_html = (cards + f'<table class="kv" data-table="study"><tbody>{prose}</tbody></table>'
                  + _checks_table(result.get("checks", [])))
    figures_html = _study_figures(study, row["result"])
    return run_ids, [axis] if axis is not None else [], [(f"study {study}", found_html, "selection"),
                                                         ("Figures", figures_html, "study-figures")]


def _agreeing(checks: list[dict[str, Any]]) -> str:
    judged = [c for c in checks if c.get("agrees") is not None]
    return f"{sum(bool(c['agrees']) for c in judged)} of {len(judged)}" if judged else "—"


def _checks_table(checks: list[dict[str, Any]]) -> str:
    """Theory beside measurement: each check's quantity, what theory predicts, what was measured, and whether they agree."""
    if not checks:
        return '<p class="empty" data-table="study-checks">no closed form or expected value stated</p>'
    mark = {True: "agrees", False: "disagrees", None: "measured only"}
    body = "".join(
        f'<tr data-agrees="{_esc(json.dumps(c.get("agrees")))}"><td>{_esc(c.get("quantity", ""))}</td>'
        f'{_cell(c.get("predicted"), align=False)}{_cell(c.get("measured"), align=False)}'
        f'<td class="{"warn" if c.get("agrees") is False else ""}">{mark.get(c.get("agrees"), "")}</td></tr>'
        for c in checks)
    head = "<tr><th>quantity</th><th>theory</th><th>measured</th><th></th></tr>"
    return f'<table data-table="study-checks"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _study_figures(name: str, recorded: str) -> str:
    """The study's figures drawn from its recorded result (``study.figures``, found through the study's entry point),
    each embedded as a PNG data URI; a note instead where the study is not installed or cannot draw this result."""
    from ._experiment_cli import draw_figures, load_study

    try:
        study = load_study(name)
        result = study.load_result(recorded)
        drawn = draw_figures(study, result)
    except Exception as exc:  # a study since removed, or a result its current code no longer reads: say so, go on
        return f'<p class="empty" data-figures="none">no figures: {_esc(type(exc).__name__)}: {_esc(exc)}</p>'
    if not drawn:
        return '<p class="empty" data-figures="none">this study draws no figures</p>'
    return "".join(
        f'<figure class="study-figure" data-figure="{_esc(key)}"><img alt="{_esc(name)}: {_esc(key)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}"><figcaption class="note">{_esc(key)}'
        "</figcaption></figure>" for key, png in drawn.items())
