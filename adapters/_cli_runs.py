"""``cfc demo | run | runs | show | replay | rerun | fork | sql | diff``: making runs and reading them back.

Each command imports what it needs when it runs (see ``_cli_common``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._cli_common import DEFAULT_DB, Db, console, open_store, resolve_run, short_ids, summary, table

Run = Annotated[str, typer.Argument(help="A run: its id, a unique prefix of it, its name, @latest or @-N.")]

if TYPE_CHECKING:  # pragma: no cover
    from complexity_from_constraints.projectors import RunDiff


def demo(
    db: Db = DEFAULT_DB,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the demo system and the run (≥ 0).")] = 0,
    steps: Annotated[int, typer.Option(min=0, help="Maximum number of steps.")] = 300,
) -> None:
    """Relax the seeded demo system (a gate pulled open by a predicted benefit) into DB and summarise it."""
    import polars as pl

    from complexity_from_constraints.entities import RelaxConfig, demo_system
    from complexity_from_constraints.projectors import relax

    system = demo_system(seed)
    opened: list[str] = []
    with open_store(db, write=True) as store:
        result = relax(system, RelaxConfig(steps=steps, step_size=0.5, line_search="armijo", tol=1e-6), seed=seed,
                       store=store, hooks={"gate_opened": lambda run_id, event, seq: opened.append(
                           f"hook: gate {event.gate_id!r} opened at step {event.step} (η = {event.eta:.3f})")})
        for line in opened:
            console.print(line)
        summary(store, result.run_id)
        console.print(table(pl.DataFrame({"module": list(result.ids), "eta": result.eta.tolist()}), "final η"))
    console.print(f"\nrecorded in {db}. Next, try:\n"
                  f"  cfc sql \"SELECT step, energy FROM v_energy_by_step WHERE run_id = '{result.run_id}' ORDER BY step LIMIT 10\" --db {db}\n"
                  f"  cfc replay {result.run_id} --step 5 --db {db}\n"
                  f"  cfc rerun {result.run_id} --db {db}\n"
                  f"  cfc report {result.run_id} --out report.html --db {db}", soft_wrap=True)


def run_config(
    config_file: Annotated[Path, typer.Argument(help="A TOML or JSON file: [system] (modules, couplings), optional [config] and seed.")],
    db: Db = DEFAULT_DB,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Override the file's seed (≥ 0).")] = None,
    name: Annotated[Optional[str], typer.Option(help="What to call the run (default: system-solver-seed-ordinal).")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", help="A label KEY=VALUE; repeatable.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run id.")] = False,
) -> None:
    """Relax the System described in a TOML or JSON file (a progress bar shows step, energy and acceptance)."""
    from complexity_from_constraints.entities import CfcError
    from complexity_from_constraints.projectors import relax

    from ._run_file import RunFile, read_document

    data = read_document(config_file)
    if not isinstance(data, dict) or "system" not in data:
        raise CfcError(f"{config_file}: needs a 'system' table (id, modules, couplings)")
    run = RunFile.model_validate(data)  # unknown keys ("sed") and bad values ("seed": "abc") name the field
    system, config = run.system, run.config
    labels = dict(parse_tag(t) for t in tags or ())
    with open_store(db, write=True) as store:
        with _progress(config.steps, quiet) as hook:
            result = relax(system, config, seed=run.seed if seed is None else seed, store=store,
                           name=name, tags=labels, hooks={"step_committed": hook})
        if not quiet:
            summary(store, result.run_id)
    print(result.run_id) if quiet else console.print(f"run id: {result.run_id}")


def parse_tag(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` → (key, value).

    >>> parse_tag("lab=north")
    ('lab', 'north')
    """
    from complexity_from_constraints.entities import CfcError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise CfcError(f"--tag {text!r}: expected KEY=VALUE, e.g. --tag lab=north")
    return key.strip(), value.strip()


class _progress:
    """A rich progress bar over a run's steps (step, energy, accepted), fed by the step_committed hook."""

    def __init__(self, steps: int, quiet: bool):
        self.steps, self.quiet, self.bar = steps, quiet, None

    def __enter__(self):
        if self.quiet:
            return lambda run_id, event, seq: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ._cli_common import rich_console

        self.bar = Progress(TextColumn("[bold]relaxing"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[what]}"), TimeElapsedColumn(), console=rich_console(),
                            transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("relax", total=self.steps, what="")

        def hook(run_id, event, seq):
            mark = "" if event.accepted else "  rejected"
            self.bar.update(task, completed=event.step, what=f"energy {event.energy:.6g}{mark}")

        return hook

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def runs(
    db: Db = DEFAULT_DB,
    where: Annotated[Optional[str], typer.Option(help="A SQL condition on v_runs' columns, e.g. \"solver = 'accelerated'\".")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", help="Only runs labelled KEY=VALUE; repeatable.")] = None,
    study: Annotated[Optional[str], typer.Option(help="Only the runs of this study.")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Only the runs of this sweep.")] = None,
    sort: Annotated[Optional[str], typer.Option(help="Sort by this column of v_runs (default: start order).")] = None,
    desc: Annotated[bool, typer.Option("--desc", help="Sort descending.")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Show at most this many runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per run) for scripts.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV for scripts.")] = False,
) -> None:
    """List the runs in DB: filter by SQL, tag, study or sweep; sort; print a table, JSON or CSV."""
    from complexity_from_constraints.entities import CfcError

    conditions, params = [], []
    if where:
        conditions.append(f"({where})")
    for key, value in (parse_tag(t) for t in tags or ()):
        conditions.append("json_extract_string(tags, '$.' || ?) = ?")
        params += [key, value]
    for column, value in (("study", study), ("sweep", sweep)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    with open_store(db) as store:
        columns = set(store.query("SELECT * FROM v_runs LIMIT 0").columns)
        if sort is not None and sort not in columns:
            raise CfcError(f"--sort {sort!r}: not a column of v_runs ({', '.join(sorted(columns))})")
        sql = ("SELECT run_id, name, system_id, n_modules, seed, solver, status, steps, final_energy, started_at, "
               "duration_s, tags, study, sweep FROM (SELECT *, row_number() OVER () AS _order FROM v_runs)"
               + (" WHERE " + " AND ".join(conditions) if conditions else "")
               + f" ORDER BY {sort or '_order'}{' DESC' if desc else ''}" + (f" LIMIT {int(limit)}" if limit else ""))
        df = store.query(sql, params)
    if emit(df, as_json, as_csv):
        return
    import polars as pl

    shown = df.select("run_id", "name", "status", "steps", "final_energy", "solver", "seed").with_columns(
        run_id=pl.Series(short_ids(df["run_id"].to_list())))
    console.print(table(shown, f"{len(df)} run(s) in {db} (ids shortened to a unique prefix; --json for all columns)",
                        keep=("run_id",)))


def emit(df, as_json: bool, as_csv: bool) -> bool:
    """Print ``df`` as JSON lines or CSV for scripts; ``False`` when neither was asked for."""
    import sys

    if as_json and as_csv:
        from complexity_from_constraints.entities import CfcError

        raise CfcError("choose one of --json and --csv")
    if as_json:
        sys.stdout.write(df.write_json())
        sys.stdout.write("\n")
    elif as_csv:
        sys.stdout.write(df.write_csv())
    return as_json or as_csv


def show(run_id: Run, db: Db = DEFAULT_DB) -> None:
    """Summarise one run: energy trace, step counts, gate events."""
    with open_store(db) as store:
        summary(store, resolve_run(store, run_id))


def replay_cmd(
    run_id: Run,
    step: Annotated[Optional[int], typer.Option(help="The step to rebuild (default: the last).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Rebuild a run's state at a step from the log alone."""
    import polars as pl

    from complexity_from_constraints.projectors import replay

    with open_store(db) as store:
        run_id = resolve_run(store, run_id)
        state = replay(store, run_id, step)
        ids = list(state.ids)  # read from the store on first use
    console.print(f"run {run_id} at step {state.step}: energy {state.energy:.9g}, "
                  f"open gates: {', '.join(sorted(state.open_gates)) or 'none'}")
    console.print(table(pl.DataFrame({"module": ids, "eta": state.eta.tolist()}), floats="{:.9g}"))


def rerun_cmd(run_id: Run, db: Db = DEFAULT_DB) -> None:
    """Execute a run again from its recorded System, config and seed, and compare the event streams."""
    from complexity_from_constraints.projectors import first_difference, rerun

    with open_store(db, write=True, create=False) as store:
        run_id = resolve_run(store, run_id)
        result = rerun(store, run_id)
        diff = first_difference(store, run_id, result.run_id)
    if diff is None:
        console.print(f"re-run {result.run_id}: identical to {run_id} (every event, bit for bit)")
    else:
        console.print(f"re-run {result.run_id} differs from {run_id} at seq {diff.seq}:\n  {diff.left}\n  {diff.right}")
        raise typer.Exit(1)


def fork_cmd(
    run_id: Run,
    step: Annotated[int, typer.Option(min=0, help="The parent's step to continue from.")],
    changes: Annotated[Optional[list[str]], typer.Option(
        "--set", help="A config change FIELD=VALUE (dotted for nested fields; VALUE as JSON, else text); repeatable.")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="The fork's seed (default: the parent's; ≥ 0).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Start a new run from RUN's state at --step with a changed config; print how it differs from RUN."""
    from complexity_from_constraints.projectors import diff_runs, fork

    parsed = dict(parse_change(c) for c in changes or ())
    with open_store(db, write=True, create=False) as store:
        run_id = resolve_run(store, run_id)
        result = fork(store, run_id, step, parsed, seed=seed)
        diff = diff_runs(store, run_id, result.run_id)
        summary(store, result.run_id)
    console.print(f"fork {result.run_id} of {run_id} at step {step}: {result.status} after {result.steps} steps, "
                  f"energy {result.energy:.9g}", soft_wrap=True)
    print_diff(diff)


def parse_change(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` → (field, value): the value as JSON (numbers, true/false, null, lists), else as text.

    >>> parse_change("stability.cap_fraction=0.5"), parse_change("solver=accelerated")
    (('stability.cap_fraction', 0.5), ('solver', 'accelerated'))
    """
    import json

    from complexity_from_constraints.entities import CfcError

    field, sep, raw = text.partition("=")
    if not sep or not field.strip():
        raise CfcError(f"--set {text!r}: expected FIELD=VALUE, e.g. --set step_size=0.1")
    try:
        return field.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return field.strip(), raw


def sql(
    query: Annotated[str, typer.Argument(help="SQL to run, e.g. \"SELECT * FROM v_runs\".")],
    db: Db = DEFAULT_DB,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON, for scripts.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print every row as CSV, for scripts.")] = False,
) -> None:
    """Run one reading statement (SELECT, WITH, …) against DB and print the result; writes are refused."""
    with open_store(db) as store:
        df = store.query(query)
    if emit(df, as_json, as_csv):
        return
    console.print(table(df.head(limit)))
    if len(df) > limit:
        console.print(f"... {len(df) - limit} more row(s); raise --limit to see them")


def diff_cmd(
    run_a: Run,
    run_b: Run,
    db: Db = DEFAULT_DB,
    tol: Annotated[float, typer.Option(min=0.0, help="Largest |η_a − η_b| (and energy gap) counted as equal.")] = 1e-9,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit with 1 when the runs differ (as git diff does).")] = False,
) -> None:
    """Compare two runs: config, System, seed, first η divergence, energies, gate events."""
    from complexity_from_constraints.projectors import diff_runs

    with open_store(db) as store:
        diff = diff_runs(store, resolve_run(store, run_a), resolve_run(store, run_b), tol=tol)
    if as_json:
        print(diff.to_json(indent=2))
    else:
        print_diff(diff)
    if exit_code and not diff.is_empty:
        raise typer.Exit(1)


def rm(
    run_ids: Annotated[list[str], typer.Argument(help="Runs to delete: ids, unique prefixes, names, @latest, @-N.")],
    db: Db = DEFAULT_DB,
) -> None:
    """Delete whole runs from DB, atomically (all of them or none); the deletion itself is recorded."""
    with open_store(db, write=True, create=False) as store:
        ids = sorted({resolve_run(store, r) for r in run_ids})
        removed = store.delete_runs(ids)
    console.print(f"deleted {len(ids)} run(s) ({removed} events): {', '.join(ids)}", soft_wrap=True)


def print_diff(d: RunDiff) -> None:
    """Print a :class:`RunDiff` as a person reads it: what differs, where η and energy diverge, one-sided gates."""
    import polars as pl

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
        console.print(table(pl.DataFrame([tuple(map(_show, row)) for row in pairs], orient="row",
                                         schema=["where", "field", "A", "B"]), "what differs"))
    if d.first_divergence is None:
        console.print("η: the trajectories agree within tol over the common modules")
    else:
        console.print(f"η: first divergence at step {d.first_divergence} (max |η_a − η_b| = {d.max_eta_gap:.3g})")
    if d.first_energy_difference is not None:
        k = d.first_energy_difference
        rows = [r for r in d.energy if k - 2 <= r[0] <= k + 3] + ([d.energy[-1]] if d.energy[-1][0] > k + 3 else [])
        console.print(table(pl.DataFrame([(s, _show(a), _show(b)) for s, a, b in rows], orient="row",
                                         schema=["step", "energy A", "energy B"]),
                            f"energy: first difference at step {k}"))
    gates = [(*g, "A only") for g in d.gates_only_in_a] + [(*g, "B only") for g in d.gates_only_in_b]
    if gates:
        console.print(table(pl.DataFrame(sorted(gates, key=lambda g: (g[1], g[0])), orient="row",
                                         schema=["gate", "step", "event", "in"]), "gate events in one run only"))


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)) and len(value) > 6:  # e.g. a fork's eta0: one value per module
        return f"({len(value)} values: {', '.join(map(_show, value[:3]))}, …)"
    return "" if value is None else f"{value:.9g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer, _console: Any = None, _default_db: Path = DEFAULT_DB) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
    app.command("run")(run_config)
    app.command()(runs)
    app.command()(show)
    app.command("replay")(replay_cmd)
    app.command("rerun")(rerun_cmd)
    app.command("fork")(fork_cmd)
    app.command()(sql)
    app.command("diff")(diff_cmd)
    app.command()(rm)
