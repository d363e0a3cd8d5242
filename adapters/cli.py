"""``cfc``: the command-line interface (typer for parsing, rich for tables).

Every command takes ``--db PATH`` (default ``./runs.duckdb``). Commands that
only read open the file read-only. Errors print one line and exit with 2.

The commands live in small modules (``_cli_runs``, ``_cli_files``,
``_cli_sweep``, ``_cli_report``, ``_experiment_cli``), each with a ``register(app, console, default_db)``;
none of them imports numpy, DuckDB or the layers at import time, so
``cfc --help`` does not pay for them.
"""

from __future__ import annotations

import sys

import typer

from . import _cli_files, _cli_report, _cli_runs, _cli_sweep, _experiment_cli
from ._cli_common import DEFAULT_DB, console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Relax energy-based micro-module systems and query every step with SQL.")

for _module in (_cli_runs, _cli_files, _cli_sweep, _cli_report, _experiment_cli):
    _module.register(app, console, DEFAULT_DB)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cfc`` console script; returns the exit code (2 for a usage or input error)."""
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
    except Exception as exc:
        from complexity_from_constraints.entities import CfcError

        if isinstance(exc, CfcError):
            print(f"cfc: error: {exc}", file=sys.stderr)
            return 2
        if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):  # from user SQL, and the like
            print(f"cfc: error: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):  # a path the command cannot read or write
            print(f"cfc: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
