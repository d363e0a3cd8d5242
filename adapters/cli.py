"""``cfc``: the command-line interface (typer for parsing, rich for tables).

Every command takes ``--db PATH`` (default ``./runs.duckdb``). Commands that
only read open the file read-only. Errors print one line and exit with 2.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from complexity_from_constraints.entities import CfcError, RelaxConfig, System, demo_system
from complexity_from_constraints.events import hooks
from complexity_from_constraints.projectors import RunDiff, diff_runs, first_difference, fork, relax, replay, rerun

from ._duckdb_store import DuckDBStore
from ._cli_report import register as register_report_command
from ._experiment_cli import register as register_experiment_command
from ._export import export_runs, import_runs
from ._plots import plot_energy, plot_eta_heatmap, plot_gate_timeline
from ._progress import follow_lines

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Relax energy-based micro-module systems and query every step with SQL.")
console = Console(highlight=False)

Db = Annotated[Path, typer.Option("--db", help="DuckDB file holding the runs.")]
DEFAULT_DB = Path("runs.duckdb")
_SPARK = "▁▂▃▄▅▆▇█"


def _open(db: Path, *, write: bool = False) -> DuckDBStore:
    if not write and not db.exists():
        raise CfcError(f"no database at {db}; run `cfc demo --db {db}` first")
    return DuckDBStore(db, read_only=not write)


def _table(df: pl.DataFrame, title: str | None = None, floats: str = "{:.6g}") -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in df.columns:
        table.add_column(name, justify="right" if df[name].dtype.is_numeric() else "left")
    for row in df.iter_rows():
        table.add_row(*[floats.format(v) if isinstance(v, float) else ("" if v is None else str(v)) for v in row])
    return table


def _sparkline(values: np.ndarray, width: int = 48) -> str:
    if len(values) == 0:
        return ""
    picks = values[np.linspace(0, len(values) - 1, min(width, len(values))).round().astype(int)]
    lo, hi = float(picks.min()), float(picks.max())
    scale = (picks - lo) / (hi - lo) if hi > lo else np.zeros_like(picks)
    return "".join(_SPARK[int(round(s * (len(_SPARK) - 1)))] for s in scale)


def _summary(store: DuckDBStore, run_id: str) -> None:
    run = store.query("SELECT * FROM v_runs WHERE run_id = ?", [run_id])
    if run.is_empty():
        raise CfcError(f"no run {run_id!r} in {store.path}")
    r = run.row(0, named=True)
    console.print(f"[bold]run {run_id}[/bold]  system {r['system_id']} ({r['n_modules']} modules)  seed {r['seed']}  "
                  f"status [bold]{r['status']}[/bold]  steps {r['steps']}")
    energy = store.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [run_id])
    if not energy.is_empty():
        e = energy["energy"].to_numpy()
        console.print(f"energy  {e[0]:.6g} → {e[-1]:.6g}   {_sparkline(e)}")
        marks = sorted({0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, len(e) - 1} & set(range(len(e))))
        console.print(_table(energy.filter(pl.col("step").is_in(marks)), "energy trace"))
    steps = store.query("SELECT accepted_steps, rejected_steps, total_backtracks FROM v_step_stats WHERE run_id = ?",
                        [run_id]).row(0, named=True)
    console.print(f"steps   accepted {steps['accepted_steps']}  rejected {steps['rejected_steps']}  "
                  f"backtracks {steps['total_backtracks']}")
    gates = store.query("SELECT step, gate_id, event, eta FROM v_gate_events WHERE run_id = ? ORDER BY step, gate_id", [run_id])
    console.print(_table(gates, "gate events") if not gates.is_empty() else "gate events: none")


@app.command()
def demo(
    db: Db = DEFAULT_DB,
    seed: Annotated[int, typer.Option(help="Seed of the demo system and the run.")] = 0,
    steps: Annotated[int, typer.Option(min=0, help="Maximum number of steps.")] = 300,
) -> None:
    """Relax the seeded demo system (a gate pulled open by a predicted benefit) into DB and summarise it."""
    system = demo_system(seed)
    opened: list[str] = []
    with _open(db, write=True) as store:
        result = relax(system, RelaxConfig(steps=steps, step_size=0.5, line_search="armijo", tol=1e-6), seed=seed,
                       store=store, hooks={"gate_opened": lambda run_id, event, seq: opened.append(
                           f"hook: gate {event.gate_id!r} opened at step {event.step} (η = {event.eta:.3f})")})
        for line in opened:
            console.print(line)
        _summary(store, result.run_id)
        console.print(_table(pl.DataFrame({"module": list(result.ids), "eta": result.eta.tolist()}), "final η"))
    console.print(f"\nrecorded in {db}. Next, try:\n"
                  f"  cfc sql \"SELECT step, energy FROM v_energy_by_step WHERE run_id = '{result.run_id}' ORDER BY step LIMIT 10\" --db {db}\n"
                  f"  cfc replay {result.run_id} --step 5 --db {db}\n"
                  f"  cfc rerun {result.run_id} --db {db}\n"
                  f"  cfc report {result.run_id} --out report.html --db {db}", soft_wrap=True)


@app.command("run")
def run_config(
    config_file: Annotated[Path, typer.Argument(help="A TOML or JSON file: [system] (modules, couplings), optional [config] and seed.")],
    db: Db = DEFAULT_DB,
    seed: Annotated[Optional[int], typer.Option(help="Override the file's seed.")] = None,
) -> None:
    """Relax the System described in a TOML or JSON file."""
    if not config_file.exists():
        raise CfcError(f"no such file: {config_file}")
    text = config_file.read_text()
    try:
        data = tomllib.loads(text) if config_file.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise CfcError(f"{config_file}: not valid {config_file.suffix[1:] or 'JSON'}: {exc}") from None
    if "system" not in data:
        raise CfcError(f"{config_file}: needs a 'system' table (id, modules, couplings)")
    system = System.model_validate(data["system"])
    config = RelaxConfig.model_validate(data.get("config", {}))
    with _open(db, write=True) as store:
        result = relax(system, config, seed=data.get("seed", 0) if seed is None else seed, store=store)
        _summary(store, result.run_id)
    console.print(f"run id: {result.run_id}")


@app.command()
def runs(db: Db = DEFAULT_DB) -> None:
    """List the runs in DB."""
    with _open(db) as store:
        df = store.query("SELECT run_id, system_id, n_modules, seed, status, steps, final_energy FROM v_runs")
    console.print(_table(df, f"{len(df)} run(s) in {db}"))


@app.command()
def show(run_id: str, db: Db = DEFAULT_DB) -> None:
    """Summarise one run: energy trace, step counts, gate events."""
    with _open(db) as store:
        _summary(store, run_id)


@app.command("replay")
def replay_cmd(
    run_id: str,
    step: Annotated[Optional[int], typer.Option(help="The step to rebuild (default: the last).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Rebuild a run's state at a step from the log alone."""
    with _open(db) as store:
        state = replay(store, run_id, step)
    console.print(f"run {run_id} at step {state.step}: energy {state.energy:.9g}, "
                  f"open gates: {', '.join(sorted(state.open_gates)) or 'none'}")
    console.print(_table(pl.DataFrame({"module": list(state.ids), "eta": state.eta.tolist()}), floats="{:.9g}"))


@app.command("rerun")
def rerun_cmd(run_id: str, db: Db = DEFAULT_DB) -> None:
    """Execute a run again from its recorded System, config and seed, and compare the event streams."""
    with _open(db, write=True) as store:
        result = rerun(store, run_id)
        diff = first_difference(store, run_id, result.run_id)
    if diff is None:
        console.print(f"re-run {result.run_id}: identical to {run_id} (every event, bit for bit)")
    else:
        console.print(f"re-run {result.run_id} differs from {run_id} at seq {diff.seq}:\n  {diff.left}\n  {diff.right}")
        raise typer.Exit(1)


@app.command("fork")
def fork_cmd(
    run_id: str,
    step: Annotated[int, typer.Option(min=0, help="The parent's step to continue from.")],
    changes: Annotated[Optional[list[str]], typer.Option(
        "--set", help="A config change FIELD=VALUE (dotted for nested fields; VALUE as JSON, else text); repeatable.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="The fork's seed (default: the parent's).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Start a new run from RUN's state at --step with a changed config; print how it differs from RUN."""
    parsed = dict(_parse_change(c) for c in changes or ())
    with _open(db, write=True) as store:
        result = fork(store, run_id, step, parsed, seed=seed)
        diff = diff_runs(store, run_id, result.run_id)
        _summary(store, result.run_id)
    console.print(f"fork {result.run_id} of {run_id} at step {step}: {result.status} after {result.steps} steps, "
                  f"energy {result.energy:.9g}", soft_wrap=True)
    _print_diff(diff)


def _parse_change(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` → (field, value): the value as JSON (numbers, true/false, null, lists), else as text."""
    field, sep, raw = text.partition("=")
    if not sep or not field.strip():
        raise CfcError(f"--set {text!r}: expected FIELD=VALUE, e.g. --set step_size=0.1")
    try:
        return field.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return field.strip(), raw


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run, e.g. \"SELECT * FROM v_runs\".")],
    db: Db = DEFAULT_DB,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows.")] = 50,
) -> None:
    """Run SQL against DB (read-only) and print the result."""
    with _open(db) as store:
        df = store.query(query)
    console.print(_table(df.head(limit)))
    if len(df) > limit:
        console.print(f"... {len(df) - limit} more row(s); raise --limit to see them")


@app.command("diff")
def diff_cmd(
    run_a: str,
    run_b: str,
    db: Db = DEFAULT_DB,
    tol: Annotated[float, typer.Option(min=0.0, help="Largest |η_a − η_b| (and energy gap) counted as equal.")] = 1e-9,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """Compare two runs: config, System, seed, first η divergence, energies, gate events."""
    with _open(db) as store:
        diff = diff_runs(store, run_a, run_b, tol=tol)
    if as_json:
        print(diff.to_json(indent=2))
    else:
        _print_diff(diff)


def _print_diff(d: RunDiff) -> None:
    console.print(f"[bold]diff {d.run_a} (A) → {d.run_b} (B)[/bold]  tol {d.tol:g}")
    if d.is_empty:
        console.print("no difference: same config, System, seed, η trajectory, energies and gate events")
        return
    pairs = [("config", k, a, b) for k, (a, b) in d.config.items()]
    pairs += [("seed", "seed", *d.seed)] if d.seed else []
    pairs += [("system", k, a, b) for k, (a, b) in d.system.items()]
    pairs += [(f"entity {e}", k, a, b) for e, changed in d.entities.items() for k, (a, b) in changed.items()]
    pairs += [(f"entity {e}", "(only in A)", "present", "") for e in d.only_in_a]
    pairs += [(f"entity {e}", "(only in B)", "", "present") for e in d.only_in_b]
    if pairs:
        console.print(_table(pl.DataFrame([tuple(map(_show, row)) for row in pairs], orient="row",
                                          schema=["where", "field", "A", "B"]), "what differs"))
    if d.first_divergence is None:
        console.print("η: the trajectories agree within tol over the common modules")
    else:
        console.print(f"η: first divergence at step {d.first_divergence} (max |η_a − η_b| = {d.max_eta_gap:.3g})")
    if d.first_energy_difference is not None:
        k = d.first_energy_difference
        rows = [r for r in d.energy if k - 2 <= r[0] <= k + 3] + ([d.energy[-1]] if d.energy[-1][0] > k + 3 else [])
        console.print(_table(pl.DataFrame([(s, _show(a), _show(b)) for s, a, b in rows], orient="row",
                                          schema=["step", "energy A", "energy B"]),
                             f"energy: first difference at step {k}"))
    gates = [(*g, "A only") for g in d.gates_only_in_a] + [(*g, "B only") for g in d.gates_only_in_b]
    if gates:
        console.print(_table(pl.DataFrame(sorted(gates, key=lambda g: (g[1], g[0])), orient="row",
                                          schema=["gate", "step", "event", "in"]), "gate events in one run only"))


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)) and len(value) > 6:  # e.g. a fork's eta0: one value per module
        return f"({len(value)} values: {', '.join(map(_show, value[:3]))}, …)"
    return "" if value is None else f"{value:.9g}" if isinstance(value, float) else str(value)


@app.command("export")
def export_cmd(
    to: Annotated[Path, typer.Option("--to", help="Folder to write the Parquet files into.")],
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to export (default: every run).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Write runs to Parquet files (one per table) that `cfc import` reads into another database."""
    with _open(db) as store:
        done = export_runs(store, to, run_ids or None)
    console.print(f"exported {len(done)} run(s) to {to}: {', '.join(done) or 'none'}", soft_wrap=True)


@app.command("import")
def import_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `cfc export`.")],
    db: Db = DEFAULT_DB,
) -> None:
    """Append the runs of an export folder to DB (refused if DB already has one of them)."""
    with _open(db, write=True) as store:
        done = import_runs(store, folder)
    console.print(f"imported {len(done)} run(s) into {db}: {', '.join(done) or 'none'}", soft_wrap=True)


@app.command("plot")
def plot_cmd(
    run_ids: Annotated[list[str], typer.Argument(help="Runs to draw (one for eta and gates).")],
    metric: Annotated[str, typer.Option(help="energy, eta or gates.")] = "energy",
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG file to write.")] = Path("plot.png"),
    db: Db = DEFAULT_DB,
) -> None:
    """Draw energy by step (several runs), an η heatmap or a gate timeline (one run) to a PNG."""
    if metric not in ("energy", "eta", "gates"):
        raise CfcError(f"unknown metric {metric!r}; choose energy, eta or gates")
    if metric != "energy" and len(run_ids) != 1:
        raise CfcError(f"--metric {metric} draws one run; got {len(run_ids)}")
    with _open(db) as store:
        if metric == "energy":
            plot_energy(store, run_ids, out)
        elif metric == "eta":
            plot_eta_heatmap(store, run_ids[0], out)
        else:
            plot_gate_timeline(store, run_ids[0], out)
    console.print(f"wrote {out}", soft_wrap=True)


@app.command()
def follow(
    path: Annotated[Path, typer.Argument(help="The JSON-lines file a ProgressMirror writes.")],
    timeout: Annotated[Optional[float], typer.Option(min=0.0, help="Give up after this many seconds.")] = None,
    run: Annotated[Optional[str], typer.Option(help="Stop at this run's end (default: the first run that ends).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Print one step line in this many.")] = 1,
) -> None:
    """Print a run's steps and gate events as a ProgressMirror writes them; stop when the run finishes."""
    for ev in follow_lines(path, timeout=timeout):
        kind, rid = ev.get("type"), ev.get("run_id")
        if run is not None and rid != run:
            continue
        if kind == "RunStarted":
            console.print(f"[bold]run {rid}[/bold]  system {ev['system_id']} ({ev['n_modules']} modules)  "
                          f"seed {ev['seed']}  up to {ev['steps']} steps")
        elif kind == "StepCommitted" and ev["step"] % every == 0:
            mark = "" if ev["accepted"] else f"  rejected ({ev['reason']})"
            console.print(f"step {ev['step']:>6}  energy {ev['energy']:.9g}  |pg| {ev['pg_norm']:.3g}  "
                          f"α {ev['step_size']:.3g}{mark}")
        elif kind in ("GateOpened", "GateClosed"):
            console.print(f"step {ev['step']:>6}  gate {ev['gate_id']!r} {kind[4:].lower()} (η = {ev['eta']:.3f})")
        elif kind == "RunFinished":
            console.print(f"run {rid} finished: [bold]{ev['status']}[/bold] after {ev['steps']} steps, "
                          f"final energy {ev['final_energy']:.9g}")
            return
    console.print(f"no end of run in {path} after {timeout:g} s" if timeout is not None else f"{path} ended",
                  soft_wrap=True)
    raise typer.Exit(1)


register_experiment_command(app, console, DEFAULT_DB)  # `cfc experiment NAME [--option value …]`
register_report_command(app, console, DEFAULT_DB)  # `cfc report RUN [RUN…] --out FILE`


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cfc`` console script."""
    command = typer.main.get_command(app)
    args = list(argv if argv is not None else sys.argv[1:]) or ["--help"]
    try:
        code = command.main(args=args, prog_name="cfc", standalone_mode=False)
        if isinstance(code, int):  # a typer.Exit(n) inside a command comes back as its return value
            return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("cfc: aborted", file=sys.stderr)
        return 130
    except typer.TyperException as exc:
        where = f" ({exc.param_hint})" if isinstance(getattr(exc, "param_hint", None), str) else ""
        print(f"cfc: error: {exc.format_message()}{where}", file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except CfcError as exc:
        print(f"cfc: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # duckdb errors from user SQL, and the like
        if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            print(f"cfc: error: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
