"""``cfc report RUN [RUN…] --out report.html``: one self-contained HTML page per run or comparison.

plotly and polars are imported when the command runs, not when the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._cli_common import DEFAULT_DB, open_store, resolve_run


def register(app: typer.Typer, console: Any, default_db: Path = DEFAULT_DB) -> None:
    """Add the ``report`` command to ``app``."""

    @app.command("report")
    def report_cmd(
        run_ids: Annotated[Optional[list[str]], typer.Argument(
            help="One run (its full report) or several (compared with the first): ids, prefixes, names, @latest, @-N.")] = None,
        out: Annotated[Path, typer.Option("-o", "--out", help="The HTML file to write.")] = Path("report.html"),
        db: Annotated[Path, typer.Option("--db", help="DuckDB file holding the runs.")] = default_db,
        axis: Annotated[Optional[str], typer.Option(
            help="With several runs: plot final energy, ΔF99 and steps against seed, system_id or a config field.")] = None,
        tol: Annotated[float, typer.Option(min=0.0, help="Largest |η_a − η_b| counted as equal in the diff.")] = 1e-9,
        force: Annotated[bool, typer.Option("--force", help="Replace --out even if it holds something other than HTML.")] = False,
        sweep: Annotated[Optional[str], typer.Option(help="Report a sweep: its runs against each axis it varied (or --axis).")] = None,
        study: Annotated[Optional[str], typer.Option(help="Report a study: what it found and its runs.")] = None,
    ) -> None:
        """Write an HTML report (plots and tables, opens offline) of one run, a comparison, a sweep or a study."""
        from ._progress import check_output
        from ._report import report

        check_output(out, "html", force=force)  # never over a run store or anything else that is not a report
        with open_store(db) as store:
            page = report(store, [resolve_run(store, r) for r in run_ids or ()], axis=axis, tol=tol, sweep=sweep,
                          study=study)
        out.write_text(page, encoding="utf-8")
        console.print(f"wrote {out} ({len(page.encode()) / 1e6:.2f} MB); open it in a browser", soft_wrap=True)
