"""``cfc export | import | plot | follow``: runs to and from other files.

Each command imports what it needs when it runs (see ``_cli_common``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._cli_common import DEFAULT_DB, Db, console, open_store, resolve_run


def export_cmd(
    to: Annotated[Path, typer.Option("--to", help="Folder to write the Parquet files into.")],
    run_ids: Annotated[Optional[list[str]], typer.Argument(help="Runs to export (default: every run).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Write runs to Parquet files (one per table) that `cfc import` reads into another database."""
    from ._export import export_runs

    with open_store(db) as store:
        done = export_runs(store, to, [resolve_run(store, r) for r in run_ids] if run_ids else None)
    console.print(f"exported {len(done)} run(s) to {to}: {', '.join(done) or 'none'}", soft_wrap=True)


def import_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `cfc export`.")],
    db: Db = DEFAULT_DB,
) -> None:
    """Append the runs of an export folder to DB (refused if DB already has one of them)."""
    from ._export import import_runs

    with open_store(db, write=True) as store:
        done = import_runs(store, folder)
    console.print(f"imported {len(done)} run(s) into {db}: {', '.join(done) or 'none'}", soft_wrap=True)


def plot_cmd(
    run_ids: Annotated[list[str], typer.Argument(help="Runs to draw (one for eta and gates).")],
    metric: Annotated[str, typer.Option(help="energy, eta or gates.")] = "energy",
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG file to write.")] = Path("plot.png"),
    db: Db = DEFAULT_DB,
    force: Annotated[bool, typer.Option("--force", help="Replace --out even if it holds something other than a PNG.")] = False,
) -> None:
    """Draw energy by step (several runs), an η heatmap or a gate timeline (one run) to a PNG."""
    from complexity_from_constraints.entities import CfcError

    from ._plots import plot_energy, plot_eta_heatmap, plot_gate_timeline

    if metric not in ("energy", "eta", "gates"):
        raise CfcError(f"unknown metric {metric!r}; choose energy, eta or gates")
    if metric != "energy" and len(run_ids) != 1:
        raise CfcError(f"--metric {metric} draws one run; got {len(run_ids)}")
    with open_store(db) as store:
        runs = [resolve_run(store, r) for r in run_ids]
        if metric == "energy":
            plot_energy(store, runs, out, force=force)
        elif metric == "eta":
            plot_eta_heatmap(store, runs[0], out, force=force)
        else:
            plot_gate_timeline(store, runs[0], out, force=force)
    console.print(f"wrote {out}", soft_wrap=True)


def follow(
    path: Annotated[Path, typer.Argument(help="The JSON-lines file a ProgressMirror writes.")],
    timeout: Annotated[Optional[float], typer.Option(min=0.0, help="Give up after this many seconds.")] = None,
    run: Annotated[Optional[str], typer.Option(help="Stop at this run's end (default: the first run that ends).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Print one step line in this many.")] = 1,
) -> None:
    """Print a run's steps and gate events as a ProgressMirror writes them; stop when the run finishes."""
    import sys

    from ._progress import follow_lines

    if not path.exists():
        hint = f"giving up after {timeout:g} s" if timeout is not None else "Ctrl-C to stop, --timeout S to give up"
        print(f"cfc: waiting for {path} to appear ({hint})", file=sys.stderr)
    for ev in follow_lines(path, timeout=timeout):
        kind, rid = ev.get("type"), ev.get("run_id")
        if run is not None and rid != run:
            continue
        try:
            if _show_progress(kind, rid, ev, every):
                return
        except (KeyError, TypeError, ValueError) as exc:
            from complexity_from_constraints.entities import CfcError

            raise CfcError(f"{path}: a {kind} line without a usable {exc}: {str(ev)[:80]}") from None
    console.print(f"no end of run in {path} after {timeout:g} s" if timeout is not None else f"{path} ended",
                  soft_wrap=True)
    raise typer.Exit(1)


def _show_progress(kind: str | None, rid: str | None, ev: dict[str, Any], every: int) -> bool:
    """Print one progress line; ``True`` once the run has finished."""
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
        return True
    return False


def register(app: typer.Typer, _console: Any = None, _default_db: Path = DEFAULT_DB) -> None:
    """Add this module's commands to ``app``."""
    app.command("export")(export_cmd)
    app.command("import")(import_cmd)
    app.command("plot")(plot_cmd)
    app.command()(follow)
