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

from entities import CfcError, RelaxConfig, System, demo_system
from events import hooks
from projectors import first_difference, relax, replay, rerun

from ._duckdb_store import DuckDBStore

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
    steps = store.query("SELECT count(*) FILTER (WHERE accepted AND step > 0) AS accepted, "
                        "count(*) FILTER (WHERE NOT accepted) AS rejected, sum(backtracks) AS backtracks "
                        "FROM v_steps WHERE run_id = ?", [run_id]).row(0, named=True)
    console.print(f"steps   accepted {steps['accepted']}  rejected {steps['rejected']}  backtracks {steps['backtracks']}")
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
                  f"  cfc rerun {result.run_id} --db {db}", soft_wrap=True)


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cfc`` console script."""
    command = typer.main.get_command(app)
    args = list(argv if argv is not None else sys.argv[1:]) or ["--help"]
    try:
        command.main(args=args, prog_name="cfc", standalone_mode=False)
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
