"""What every ``cfc`` command shares: the ``--db`` option, the console, opening a store, tables.

Nothing here imports numpy, polars, DuckDB or rich at module import time, so that
``cfc --help`` stays quick; each is imported by the function that needs it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    from rich.table import Table

    from ._duckdb_store import DuckDBStore

Db = Annotated[Path, typer.Option("--db", help="DuckDB file holding the runs.")]
DEFAULT_DB = Path("runs.duckdb")
_SPARK = "▁▂▃▄▅▆▇█"


class _Console:
    """Stands for the rich ``Console`` of the commands, made on first use (rich costs ~80 ms to import)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(rich_console(), name)


@cache
def rich_console() -> Any:
    """The one rich ``Console`` every command prints to."""
    from rich.console import Console

    return Console(highlight=False)


console = _Console()


def open_store(db: Path, *, write: bool = False, create: bool = True) -> DuckDBStore:
    """The store at ``db``: read-only unless ``write``; a missing file is an error when reading, or when
    writing with ``create=False`` (commands that work on runs already there: a mistyped --db makes no file)."""
    from complexity_from_constraints.entities import CfcError

    from ._duckdb_store import DuckDBStore

    if (not write or not create) and not db.exists():
        raise CfcError(f"no database at {db}; run `cfc demo --db {db}` first")
    return DuckDBStore(db, read_only=not write)


def table(df: pl.DataFrame, title: str | None = None, floats: str = "{:.6g}", keep: tuple[str, ...] = ()) -> Table:
    """A rich table of a Polars frame: numbers right-aligned, floats with ``floats``; ``keep`` columns never shrink."""
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    for name in df.columns:
        width = max([len(name), *(len(str(v)) for v in df[name].to_list())]) if name in keep else None
        out.add_column(name, justify="right" if df[name].dtype.is_numeric() else "left",
                       no_wrap=name in keep, min_width=width, overflow="fold")
    for row in df.iter_rows():
        out.add_row(*[floats.format(v) if isinstance(v, float) else ("" if v is None else str(v)) for v in row])
    return out


def sparkline(values: Any, width: int = 48) -> str:
    """A one-line sketch of ``values`` (e.g. an energy trace) in block characters."""
    import numpy as np

    if len(values) == 0:
        return ""
    picks = values[np.linspace(0, len(values) - 1, min(width, len(values))).round().astype(int)]
    lo, hi = float(picks.min()), float(picks.max())
    scale = (picks - lo) / (hi - lo) if hi > lo else np.zeros_like(picks)
    return "".join(_SPARK[int(round(s * (len(_SPARK) - 1)))] for s in scale)


def summary(store: DuckDBStore, run_id: str) -> None:
    """Print one run's header, energy trace, step counts and gate events, read from the views."""
    import polars as pl

    from complexity_from_constraints.entities import CfcError

    run = store.query("SELECT * FROM v_runs WHERE run_id = ?", [run_id])
    if run.is_empty():
        raise CfcError(f"no run {run_id!r} in {store.path}")
    r = run.row(0, named=True)
    console.print(f"[bold]run {run_id}[/bold]  system {r['system_id']} ({r['n_modules']} modules)  seed {r['seed']}  "
                  f"status [bold]{r['status']}[/bold]  steps {r['steps']}")
    energy = store.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ? ORDER BY step", [run_id])
    if not energy.is_empty():
        e = energy["energy"].to_numpy()
        console.print(f"energy  {e[0]:.6g} → {e[-1]:.6g}   {sparkline(e)}")
        marks = sorted({0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, len(e) - 1} & set(range(len(e))))
        console.print(table(energy.filter(pl.col("step").is_in(marks)), "energy trace"))
    steps = store.query("SELECT accepted_steps, rejected_steps, total_backtracks FROM v_step_stats WHERE run_id = ?",
                        [run_id])
    if steps.is_empty():
        console.print("steps   none recorded (the run stopped before its initial state was committed)")
        return
    row = steps.row(0, named=True)
    console.print(f"steps   accepted {row['accepted_steps']}  rejected {row['rejected_steps']}  "
                  f"backtracks {row['total_backtracks']}")
    gates = store.query("SELECT step, gate_id, event, eta FROM v_gate_events WHERE run_id = ? ORDER BY step, gate_id", [run_id])
    console.print(table(gates, "gate events") if not gates.is_empty() else "gate events: none")


def resolve_run(store: DuckDBStore, text: str) -> str:
    """The run id that ``text`` names: an id, a unique prefix of one, a run's name, ``@latest`` or ``@-N``.

    ``@-1`` is the latest run, ``@-2`` the one before it. An ambiguous prefix or
    name is refused with the matching runs listed.
    """
    from complexity_from_constraints.entities import CfcError

    runs = store.query("SELECT run_id, name FROM v_runs")  # in the order they were started
    ids, names = runs["run_id"].to_list(), runs["name"].to_list()
    if text.startswith("@"):
        back = 1 if text == "@latest" else -int(text[1:]) if text[1:].lstrip("-").isdigit() and text[1] == "-" else 0
        if back < 1:
            raise CfcError(f"{text!r}: use @latest or @-N (N ≥ 1), e.g. @-2 for the run before the latest")
        if back > len(ids):
            raise CfcError(f"{text!r}: {store.path} holds {len(ids)} run(s)")
        return ids[-back]
    if text in ids:
        return text
    named = [i for i, n in zip(ids, names) if n == text]
    matches = named or [i for i in ids if i.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CfcError(f"no run {text!r} in {store.path} (by id, id prefix or name); `cfc runs` lists them")
    listed = ", ".join(f"{i} ({n})" for i, n in zip(ids, names) if i in matches[:10])
    raise CfcError(f"{text!r} matches {len(matches)} runs: {listed}{' …' if len(matches) > 10 else ''}")


def short_ids(ids: list[str], least: int = 8) -> list[str]:
    """The shortest prefixes (at least ``least`` characters) that tell ``ids`` apart.

    >>> short_ids(["abcdef1234-1", "abcdef1234-2", "0123456789-1"], least=4)
    ['abcdef1234-1', 'abcdef1234-2', '0123']
    """
    out = []
    for run_id in ids:
        n = least
        while n < len(run_id) and sum(other.startswith(run_id[:n]) for other in ids) > 1:
            n += 1
        out.append(run_id[:n])
    return out
