"""``cfc sweep run SPEC | show SWEEP | list``: many runs over axes and seeds, and their summary across seeds.

Each command imports what it needs when it runs (see ``_cli_common``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._cli_common import DEFAULT_DB, Db, console, open_store, table

sweep_app = typer.Typer(no_args_is_help=True, help="Run a sweep (axes × seeds) on a process pool or Ray; summarise it.")

METRICS = ("final_energy", "delta_f90", "delta_f99", "steps", "gate_openings")


@sweep_app.command("run")
def run_cmd(
    spec_file: Annotated[Path, typer.Argument(help="A sweep spec, TOML or JSON: name, [system], [config], [[axes]], seeds.")],
    db: Db = DEFAULT_DB,
    engine: Annotated[str, typer.Option(help="local (a process pool), ray, or serial.")] = "local",
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes (default: the number of cores).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Join this Ray cluster instead of starting a local one.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run every point of a sweep not yet complete in DB (run it again to resume after an interruption)."""
    from ._cli_common import rich_console
    from ._sweep import SweepSpec, sweep

    spec = SweepSpec.load(spec_file)
    with open_store(db, write=True) as store:
        if quiet:
            result = sweep(spec, store=store, engine=engine, workers=workers, address=ray_address)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn(f"[bold]{spec.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=rich_console(), transient=True) as bar:
                task = bar.add_task("points", total=len(spec.points()))
                result = sweep(spec, store=store, engine=engine, workers=workers, address=ray_address,
                               progress=lambda done, total, _: bar.update(task, completed=done, total=total))
    console.print(f"sweep {result.sweep_id}: {result.count('complete')} run, {result.count('skipped')} already "
                  f"complete, {result.count('failed')} failed; ingest {result.ingest_rate:,.0f} η values/s",
                  soft_wrap=True)
    for run_id, reason in result.reasons.items():
        console.print(f"  failed {run_id}: {reason}", soft_wrap=True)
    console.print(f"next: cfc sweep show {result.sweep_id} --db {db}", soft_wrap=True)
    if result.count("failed"):
        raise typer.Exit(1)


@sweep_app.command("show")
def show_cmd(
    sweep_id: Annotated[str, typer.Argument(help="The sweep (its id, or a unique prefix; `cfc sweep list`).")],
    db: Db = DEFAULT_DB,
    metrics: Annotated[Optional[list[str]], typer.Option("--metric", help=f"Which metrics ({', '.join(METRICS)}); repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV for scripts.")] = False,
) -> None:
    """Each setting of the axes against the metrics: mean ± sd and n across seeds (from v_sweep_summary)."""
    import json

    import polars as pl

    from complexity_from_constraints.entities import CfcError

    from ._cli_runs import emit

    chosen = list(metrics or ("final_energy", "delta_f99", "steps", "gate_openings"))
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise CfcError(f"--metric {unknown[0]!r}: choose from {', '.join(METRICS)}")
    with open_store(db) as store:
        ids = store.query("SELECT sweep_id FROM v_sweeps")["sweep_id"].to_list()
        matches = [i for i in ids if i == sweep_id] or [i for i in ids if i.startswith(sweep_id)]
        if len(matches) != 1:
            raise CfcError(f"{sweep_id!r} matches {len(matches)} sweeps in {db}: {', '.join(matches) or 'none'}")
        df = store.query("SELECT * FROM v_sweep_summary WHERE sweep_id = ?", [matches[0]])
    columns = ["axes", "n", "failed"] + [f"{m}_{s}" for m in chosen for s in ("mean", "sd")]
    if emit(df.select(columns), as_json, as_csv):
        return
    decoded = [json.loads(a) for a in df["axes"].to_list()]
    axes = pl.DataFrame(decoded) if decoded and decoded[0] else None  # one column per axis
    shown = df.select(
        pl.col("n"), pl.col("failed"),
        *[pl.format("{} ± {}", pl.col(f"{m}_mean").round_sig_figs(6), pl.col(f"{m}_sd").round_sig_figs(2)).alias(m)
          for m in chosen])
    if axes is not None:
        shown = pl.concat([axes, shown], how="horizontal")
    console.print(table(shown, f"sweep {matches[0]}: mean ± sd over seeds (n complete runs per setting)"))


@sweep_app.command("list")
def list_cmd(db: Db = DEFAULT_DB) -> None:
    """The sweeps in DB with their point counts."""
    with open_store(db) as store:
        df = store.query("SELECT sweep_id, name, points, complete, failed, pending FROM v_sweeps")
    console.print(table(df, f"{len(df)} sweep(s) in {db}", keep=("sweep_id",)))


def register(app: typer.Typer, _console: Any = None, _default_db: Path = DEFAULT_DB) -> None:
    """Add the ``sweep`` command group to ``app``."""
    app.add_typer(sweep_app, name="sweep")
