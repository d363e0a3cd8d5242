"""``cfc demo | run | runs | show | replay | rerun | fork | sql | diff``: making runs and reading them back.

Each command imports what it needs when it runs (see ``_cli_common``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ._cli_common import DEFAULT_DB, Db, console, open_store, summary, table

if TYPE_CHECKING:  # pragma: no cover
    from complexity_from_constraints.projectors import RunDiff


def demo(
    db: Db = DEFAULT_DB,
    seed: Annotated[int, typer.Option(help="Seed of the demo system and the run.")] = 0,
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
                  f"  cfc rerun {result.run_id} --db {db}", soft_wrap=True)


def run_config(
    config_file: Annotated[Path, typer.Argument(help="A TOML or JSON file: [system] (modules, couplings), optional [config] and seed.")],
    db: Db = DEFAULT_DB,
    seed: Annotated[Optional[int], typer.Option(help="Override the file's seed.")] = None,
) -> None:
    """Relax the System described in a TOML or JSON file."""
    import json
    import tomllib

    from complexity_from_constraints.entities import CfcError, RelaxConfig, System
    from complexity_from_constraints.projectors import relax

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
    with open_store(db, write=True) as store:
        result = relax(system, config, seed=data.get("seed", 0) if seed is None else seed, store=store)
        summary(store, result.run_id)
    console.print(f"run id: {result.run_id}")


def runs(db: Db = DEFAULT_DB) -> None:
    """List the runs in DB."""
    with open_store(db) as store:
        df = store.query("SELECT run_id, system_id, n_modules, seed, status, steps, final_energy FROM v_runs")
    console.print(table(df, f"{len(df)} run(s) in {db}"))


def show(run_id: str, db: Db = DEFAULT_DB) -> None:
    """Summarise one run: energy trace, step counts, gate events."""
    with open_store(db) as store:
        summary(store, run_id)


def replay_cmd(
    run_id: str,
    step: Annotated[Optional[int], typer.Option(help="The step to rebuild (default: the last).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Rebuild a run's state at a step from the log alone."""
    import polars as pl

    from complexity_from_constraints.projectors import replay

    with open_store(db) as store:
        state = replay(store, run_id, step)
    console.print(f"run {run_id} at step {state.step}: energy {state.energy:.9g}, "
                  f"open gates: {', '.join(sorted(state.open_gates)) or 'none'}")
    console.print(table(pl.DataFrame({"module": list(state.ids), "eta": state.eta.tolist()}), floats="{:.9g}"))


def rerun_cmd(run_id: str, db: Db = DEFAULT_DB) -> None:
    """Execute a run again from its recorded System, config and seed, and compare the event streams."""
    from complexity_from_constraints.projectors import first_difference, rerun

    with open_store(db, write=True) as store:
        result = rerun(store, run_id)
        diff = first_difference(store, run_id, result.run_id)
    if diff is None:
        console.print(f"re-run {result.run_id}: identical to {run_id} (every event, bit for bit)")
    else:
        console.print(f"re-run {result.run_id} differs from {run_id} at seq {diff.seq}:\n  {diff.left}\n  {diff.right}")
        raise typer.Exit(1)


def fork_cmd(
    run_id: str,
    step: Annotated[int, typer.Option(min=0, help="The parent's step to continue from.")],
    changes: Annotated[Optional[list[str]], typer.Option(
        "--set", help="A config change FIELD=VALUE (dotted for nested fields; VALUE as JSON, else text); repeatable.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="The fork's seed (default: the parent's).")] = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Start a new run from RUN's state at --step with a changed config; print how it differs from RUN."""
    from complexity_from_constraints.projectors import diff_runs, fork

    parsed = dict(parse_change(c) for c in changes or ())
    with open_store(db, write=True) as store:
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
) -> None:
    """Run SQL against DB (read-only) and print the result."""
    with open_store(db) as store:
        df = store.query(query)
    console.print(table(df.head(limit)))
    if len(df) > limit:
        console.print(f"... {len(df) - limit} more row(s); raise --limit to see them")


def diff_cmd(
    run_a: str,
    run_b: str,
    db: Db = DEFAULT_DB,
    tol: Annotated[float, typer.Option(min=0.0, help="Largest |η_a − η_b| (and energy gap) counted as equal.")] = 1e-9,
    as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
) -> None:
    """Compare two runs: config, System, seed, first η divergence, energies, gate events."""
    from complexity_from_constraints.projectors import diff_runs

    with open_store(db) as store:
        diff = diff_runs(store, run_a, run_b, tol=tol)
    if as_json:
        print(diff.to_json(indent=2))
    else:
        print_diff(diff)


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
