"""``cfc report RUN [RUN…] --out report.html``: one self-contained HTML page per run or comparison.

plotly and polars are imported when the command runs, not when the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from complexity_from_constraints.entities import CfcError


def register(app: typer.Typer, console: Console, default_db: Path) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report_cmd(
        run_ids: Annotated[list[str], typer.Argument(help="One run (its full report) or several (compared with the first).")],
        out: Annotated[Path, typer.Option("-o", "--out", help="The HTML file to write.")] = Path("report.html"),
        db: Annotated[Path, typer.Option("--db", help="DuckDB file holding the runs.")] = default_db,
        axis: Annotated[Optional[str], typer.Option(
            help="With several runs: plot final energy, ΔF99 and steps against seed, system_id or a config field.")] = None,
        tol: Annotated[float, typer.Option(min=0.0, help="Largest |η_a − η_b| counted as equal in the diff.")] = 1e-9,
    ) -> None:
        """Write an HTML report (plots and tables, opens offline) of one run or a comparison of several."""
        from ._duckdb_store import DuckDBStore
        from ._report import report

        if not db.exists():
            raise CfcError(f"no database at {db}; run `cfc demo --db {db}` first")
        with DuckDBStore(db, read_only=True) as store:
            page = report(store, run_ids, axis=axis, tol=tol)
        out.write_text(page, encoding="utf-8")
        console.print(f"wrote {out} ({len(page.encode()) / 1e6:.2f} MB); open it in a browser", soft_wrap=True)
