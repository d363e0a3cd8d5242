"""``cfc experiment NAME [--option value …]``: run a scripted study with a progress bar.

Studies are found through the ``complexity_from_constraints.studies`` entry-point group
(``name = "package.module:STUDY"``, declared in ``pyproject.toml``; a package of
your own can add studies the same way), so nothing here imports the
``experiments`` package and nothing there imports the command line. Every field of
a study's frozen config model is an option, parsed by pydantic-settings' CLI
support:

- ``--field value`` or ``--field=value``, with dashes for underscores
  (``--a-min -1`` sets ``a_min``); the model validates the value, so
  ``--num 21`` becomes an int and ``--solver accelerated`` a checked literal;
- a tuple field takes a comma list or JSON, ``--costs 0,0.05,0.1`` or
  ``--costs '[0, 0.05]'``, or the option repeated;
- a bool field is ``--flag`` / ``--no-flag``;
- ``null`` sets an optional field to ``None``; nested models and mappings take JSON.

``cfc experiment NAME --help`` lists a study's options with their defaults;
``cfc experiment`` lists the studies.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, Sequence

import typer

if TYPE_CHECKING:  # pragma: no cover
    from importlib.metadata import EntryPoint

    from pydantic import BaseModel
    from rich.console import Console
    from rich.table import Table

STUDY_GROUP = "complexity_from_constraints.studies"
_MAX_ROWS = 40


def studies() -> dict[str, EntryPoint]:
    """The registered studies by name, in declaration order (entry points of :data:`STUDY_GROUP`)."""
    from importlib import metadata  # ~25 ms: not for `cfc --help`

    return {ep.name: ep for ep in metadata.entry_points(group=STUDY_GROUP)}


def load_study(name: str) -> Any:
    """The study registered as ``name`` (a ``CfcError`` listing the known names otherwise)."""
    from complexity_from_constraints.entities import CfcError

    found = studies()
    if name not in found:
        raise CfcError(f"unknown study {name!r}; known: {', '.join(found)}")
    return found[name].load()


@cache
def _options_model(model: type[BaseModel]) -> type:
    """A pydantic-settings class with ``model``'s fields that reads the command line only (no environment)."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Options(BaseSettings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
            return (init_settings,)  # the command line arrives through CliApp; environment variables never count

    fields = model.model_fields
    namespace = {"__annotations__": {n: f.annotation for n, f in fields.items()}, **fields,
                 "__doc__": model.__doc__,
                 "model_config": SettingsConfigDict(cli_kebab_case=True, cli_implicit_flags=True,
                                                    cli_exit_on_error=False, cli_parse_none_str="null",
                                                    cli_prog_name=f"cfc experiment ({model.__name__})")}
    return type(f"{model.__name__}Options", (Options,), namespace)


def parse_options(model: type[BaseModel], tokens: Sequence[str]) -> dict[str, Any]:
    """The fields that ``--field value …`` tokens set on ``model`` (validated by the field types, not yet by the model).

    >>> from complexity_from_constraints.entities import RelaxConfig
    >>> parse_options(RelaxConfig, ["--steps", "10", "--line-search=armijo"])
    {'steps': 10, 'line_search': 'armijo'}
    """
    from pydantic import ValidationError
    from pydantic_settings import CliApp, SettingsError

    from complexity_from_constraints.entities import CfcError, InvalidEntityError

    short = {f"--{name}" for name in model.model_fields if len(name) == 1}  # argparse spells these -b, not --b
    tokens = [t[1:] if t.split("=")[0] in short else t for t in tokens]
    try:
        parsed = CliApp.run(_options_model(model), cli_args=tokens)
    except SettingsError as exc:
        raise CfcError(f"{model.__name__}: {exc}".replace("error parsing CLI: ", "")) from None
    except ValidationError as exc:
        raise InvalidEntityError.from_validation(model.__name__, None, exc) from None
    return parsed.model_dump(exclude_unset=True)


def config_from_options(model: type[BaseModel], tokens: Sequence[str]) -> Any:
    """A validated ``model`` with the defaults overridden by ``tokens`` (errors name the field).

    >>> from complexity_from_constraints.entities import RelaxConfig
    >>> config_from_options(RelaxConfig, ["--steps", "10", "--solver", "accelerated"]).solver
    'accelerated'
    """
    return model.model_validate(parse_options(model, tokens))


def _type_name(annotation: Any) -> str:
    import typing

    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def _options_table(model: type[BaseModel]) -> Table:
    from pydantic import BaseModel
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="options", title_justify="left", header_style="bold")
    for column in ("option", "type", "default", "meaning"):
        table.add_column(column)
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default.model_dump(mode="json") if isinstance(default, BaseModel) else default, default=str)
        table.add_row(f"--{name.replace('_', '-')}", escape(_type_name(field.annotation)), escape(shown),
                      escape(field.description or ""))
    return table


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The result rows as a table; a few wide rows are shown transposed (one column per row)."""
    from rich.markup import escape
    from rich.table import Table

    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = Table(header_style="bold")
    if len(columns) > 8 and len(rows) <= 6:
        table.add_column("", style="bold")
        for n in range(len(rows)):
            table.add_column(str(n + 1), justify="right", overflow="fold")
        for c in columns:
            table.add_row(escape(c), *[escape(_show(r.get(c))) for r in rows])
        return table
    for c in columns:
        numeric = all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)
        table.add_column(c, justify="right" if numeric else "left", overflow="fold")
    for r in rows[:_MAX_ROWS]:
        table.add_row(*[escape(_show(r.get(c))) for c in columns])
    return table


_MARKS = {"held": "[green]✔ held[/green]", "did not hold": "[red]✘ did not hold[/red]",
          "inconclusive": "[yellow]? inconclusive[/yellow]", "measured": "measured (not a yes/no test)"}


def show_result(result: Any, console: Console, db: Path | str) -> None:
    """Print a StudyResult: hypothesis, rule, measured numbers, theory beside them, verdict, seed, notes, rows."""
    from rich.markup import escape

    mark = _MARKS.get(result.verdict, escape(result.verdict))
    if result.reason and result.verdict == "inconclusive":
        mark += f" ({escape(result.reason)})"
    console.print(f"[bold]{result.study}[/bold]  ({result.seeds} seed(s) per cell)")
    for label, text in (("hypothesis", result.hypothesis), ("rule", result.rule), ("measured", result.measured),
                        *(("theory", str(c)) for c in result.checks), ("verdict", mark),
                        ("seed", result.seed_result), ("notes", result.notes)):
        if text:
            console.print(f"[bold]{label:>10}[/bold]  {text if label == 'verdict' else escape(text)}")
    if result.rows:
        console.print(_rows_table(result.rows))
        if len(result.rows) > _MAX_ROWS:
            console.print(f"… {len(result.rows) - _MAX_ROWS} more row(s); --json prints them all")
    console.print(f"{len(result.run_ids)} run(s) recorded in {db}", soft_wrap=True)


def draw_figures(study: Any, result: Any) -> dict[str, bytes]:
    """``study.figures(result)`` as PNG bytes by name, each titled with the study and its verdict ({} without figures).

    The one drawing path of a study's figures: ``cfc experiment`` writes them as files, ``cfc report --study``
    embeds them in the page.
    """
    if getattr(study, "figures", None) is None:
        return {}
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {}
    for name, figure in study.figures(result).items():
        try:
            figure.suptitle(f"{study.name}: {result.verdict}", fontsize=10)
            figure.tight_layout()
            png = io.BytesIO()
            figure.savefig(png, format="png", dpi=110)
            drawn[name] = png.getvalue()
        finally:
            plt.close(figure)
    return drawn


def write_figures(study: Any, result: Any, folder: Path) -> list[Path]:
    """Draw ``study.figures(result)`` as PNGs ``<folder>/<study>-<name>.png``; the paths written."""
    drawn = draw_figures(study, result)
    if drawn:
        folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, png in drawn.items():
        path = folder / f"{study.name}-{name}.png"
        path.write_bytes(png)
        written.append(path)
    return written


RESULTS_START = "<!-- results table: generated by `cfc experiment --all --table`; do not edit by hand -->"
RESULTS_END = "<!-- end of results table -->"


def results_table(results: Sequence[Any]) -> str:
    """The Markdown results table of study results (what ``cfc experiment --all --table`` prints).

    One row per study: its verdict, seeds per cell, its rule and what it measured. It holds no wall
    times, so the same code and seeds give the same table on any machine.
    """
    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = [RESULTS_START, "", "| study | verdict | seeds | decision rule | measured |", "|---|---|---|---|---|"]
    for r in results:
        verdict = r.verdict + (f" ({r.reason})" if r.verdict == "inconclusive" and r.reason else "")
        lines.append(f"| `{r.study}` | {cell(verdict)} | {r.seeds} | {cell(r.rule)} | {cell(r.measured)} |")
    return "\n".join([*lines, "", RESULTS_END])


class _BarProgress:
    """A study's ``progress`` (``start(total, description)``, ``advance(n)``) drawn as a rich bar."""

    def __init__(self, bar: Any, task: Any, name: str):
        self.bar, self.task, self.name = bar, task, name
        self.done = 0

    def start(self, total: int, description: str = "runs") -> None:
        self.done = 0
        self.bar.update(self.task, completed=0, total=total or None, description=f"{self.name}: {description}")

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(self.task, completed=self.done)


def run_study(study: Any, config: Any, store: Any, console: Console) -> Any:
    """Run ``study`` with a rich progress bar on ``console``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(study.name, total=None)
        return study.run(config, store, progress=_BarProgress(bar, task, study.name))


def _studies_table() -> Table:
    """Every registered study with its title."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="studies (cfc experiment NAME [--option value …])", title_justify="left", header_style="bold")
    table.add_column("name")
    table.add_column("what it tests")
    for study_name, entry in studies().items():
        table.add_row(study_name, escape(entry.load().title))
    return table


def _print_help(study: Any, console: Any, default_db: Path) -> None:
    """``cfc experiment NAME --help``: the study's title, its config's doc and its options."""
    from rich.markup import escape

    console.print(f"[bold]cfc experiment {study.name}[/bold]: {escape(study.title)}")
    doc = (study.config.__doc__ or "").strip()
    if doc:
        console.print(escape(doc))
    console.print(_options_table(study.config))
    console.print(f"also: --db FILE (the DuckDB file to record into, default {default_db}), --json (print "
                  "the result as JSON), --engine local|ray|serial and --workers N (where the runs go), "
                  "--figures DIR / --no-figures; a tuple takes a comma list (--x 1,2) or JSON "
                  "(--x '[1, 2]'), a flag --x / --no-x")


def register(app: typer.Typer, console: Any, default_db: Path) -> None:
    """Add the ``experiment`` command to ``app``."""

    @app.command("experiment", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                                 "help_option_names": []})
    def experiment(
        ctx: typer.Context,
        name: Annotated[Optional[str], typer.Argument(help="The study to run (omit to list them).")] = None,
        db: Annotated[Path, typer.Option("--db", help="DuckDB file to record the runs in.")] = default_db,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        engine: Annotated[str, typer.Option("--engine", help="Where the runs go: local (a process pool), ray or "
                                                             "serial.")] = "local",
        workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Processes (local) or CPUs (ray); "
                                                                                "default: the cores.")] = None,
        ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Join this Ray cluster.")] = None,
        figures: Annotated[Optional[Path], typer.Option("--figures", help="Folder for the figures (PNG); default "
                                                                          "DB-figures/ beside the database.")] = None,
        no_figures: Annotated[bool, typer.Option("--no-figures", help="Draw no figures.")] = False,
        run_all: Annotated[bool, typer.Option("--all", help="Run every study with its defaults.")] = False,
        table: Annotated[bool, typer.Option("--table", help="With --all: print the Markdown results table "
                                                            "(experiments/README.md holds it).")] = False,
    ) -> None:
        """Run a scripted study (see experiments/README.md); `cfc experiment NAME --help` lists its options."""
        from rich.console import Console

        from complexity_from_constraints.entities import CfcError

        from ._cli_common import rich_console
        from ._duckdb_store import DuckDBStore

        if engine not in ("local", "ray", "serial"):
            raise CfcError(f"--engine {engine!r}: choose local, ray or serial")
        if (name is None and not run_all) or name in ("--help", "-h"):
            console.print(_studies_table())
            return
        if run_all and (name is not None or ctx.args):
            raise CfcError("--all runs every study with its defaults: give no study name and no study options")
        if table and not run_all:
            raise CfcError("--table goes with --all")
        chosen = [load_study(n) for n in studies()] if run_all else [load_study(name)]
        tokens = list(ctx.args)
        if "--help" in tokens or "-h" in tokens:
            _print_help(chosen[0], console, default_db)
            return
        from complexity_from_constraints.projectors import labelled

        from ._sweep import running_on

        configs = [config_from_options(study.config, tokens) for study in chosen]
        quiet = as_json or table
        folder = figures or db.with_name(f"{db.stem}-figures")
        results = []
        with DuckDBStore(db) as store, running_on(engine, workers, ray_address):
            for study, config in zip(chosen, configs):
                with labelled(study=study.name):  # every run of the study carries its name (v_runs.study)
                    result = run_study(study, config, store, Console(stderr=True) if quiet else rich_console())
                store.record_study(study.name, result.model_dump_json())
                results.append(result)
                drawn = [] if no_figures else write_figures(study, result, folder)
                if as_json and not table:
                    print(result.model_dump_json(indent=2))
                elif not quiet:
                    show_result(result, console, db)
                    for path in drawn:
                        console.print(f"figure: {path}", soft_wrap=True)
        if table:
            print(results_table(results))
