"""``cfc experiment NAME [--option value …]``: run a scripted study with a progress bar.

The studies live in the ``experiments`` package, a leaf that nothing imports
statically: this command loads it by name when it runs. Every field of a
study's frozen config model is an option, generically:

- ``--field value`` or ``--field=value`` (dashes and underscores are the same:
  ``--a-min -1`` sets ``a_min``); the value is validated by the model, so
  ``--num 21`` becomes an int and ``--solver accelerated`` a checked literal;
- a tuple field takes several values, ``--costs 0 0.05 0.1`` or ``--costs 0,0.05,0.1``;
- a bool field is ``--flag`` / ``--no-flag`` (or ``--flag false``);
- ``none`` sets an optional field to ``None``; a value starting with ``{`` or
  ``[`` is parsed as JSON (for nested models and mappings).

``cfc experiment NAME --help`` lists a study's options with their defaults;
``cfc experiment`` lists the studies.
"""

from __future__ import annotations

import difflib
import importlib
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence, Union

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from complexity_from_constraints.entities import CfcError

from ._duckdb_store import DuckDBStore

_NONE = {"none", "null"}
_MAX_ROWS = 40


def _studies():
    return importlib.import_module("complexity_from_constraints.experiments")  # a leaf package: loaded by name, only when asked for


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_option(token: str) -> bool:
    return token.startswith("--") and not _is_number(token)


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_sequence(annotation: Any) -> bool:
    return any(typing.get_origin(a) in (tuple, list) for a in _members(annotation))


def _is_bool(annotation: Any) -> bool:
    return bool in _members(annotation)


def _value(token: str) -> Any:
    if token.lower() in _NONE:
        return None
    if token[:1] in "{[":
        try:
            return json.loads(token)
        except json.JSONDecodeError as exc:
            raise CfcError(f"cannot parse {token!r} as JSON: {exc}") from None
    return token


def parse_options(model: type[BaseModel], tokens: Sequence[str]) -> dict[str, Any]:
    """Map ``--field value …`` tokens onto the fields of ``model`` (values still strings; the model validates).

    >>> from complexity_from_constraints.entities import RelaxConfig
    >>> parse_options(RelaxConfig, ["--steps", "10", "--line-search=armijo"])
    {'steps': '10', 'line_search': 'armijo'}
    """
    fields = model.model_fields
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_option(token):
            raise CfcError(f"expected an option such as --{next(iter(fields), 'field')}, got {token!r}")
        name, has_inline, inline = token[2:].partition("=")
        key, negated = name.replace("-", "_"), False
        if key not in fields and key.startswith("no_") and key[3:] in fields:
            key, negated = key[3:], True
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean --{close[0].replace('_', '-')}?" if close else ""
            raise CfcError(f"{model.__name__} has no option --{name}{hint}")
        i += 1
        values = [inline] if has_inline else []
        while not has_inline and i < len(tokens) and not _is_option(tokens[i]):
            values.append(tokens[i])
            i += 1
        annotation = fields[key].annotation
        if negated:
            if values or not _is_bool(annotation):
                raise CfcError(f"--no-{key.replace('_', '-')} is only for a true/false option, without a value")
            out[key] = False
        elif not values:
            if not _is_bool(annotation):
                raise CfcError(f"--{name} needs a value")
            out[key] = True
        elif _is_sequence(annotation) and len(values) == 1 and values[0][:1] == "[":
            out[key] = _value(values[0])
        elif _is_sequence(annotation):
            parts = [p for v in values for p in v.split(",") if p != ""]
            out[key] = None if len(parts) == 1 and parts[0].lower() in _NONE else [_value(p) for p in parts]
        elif len(values) == 1:
            out[key] = _value(values[0])
        else:
            raise CfcError(f"--{name} takes one value, got {len(values)}: {' '.join(values)}")
    return out


def config_from_options(model: type[BaseModel], tokens: Sequence[str]) -> Any:
    """A validated ``model`` with the defaults overridden by ``tokens`` (errors name the field)."""
    return model.model_validate(parse_options(model, tokens))


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def _options_table(model: type[BaseModel]) -> Table:
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


def show_result(result: Any, console: Console, db: Path | str) -> None:
    """Print a StudyResult: hypothesis, measured numbers, verdict, the seed's number, notes and the rows."""
    mark = {True: "[green]✔ held[/green]", False: "[red]✘ did not hold[/red]", None: "not a yes/no test"}[result.held]
    console.print(f"[bold]{result.study}[/bold]")
    for label, text in (("hypothesis", result.hypothesis), ("measured", result.measured), ("verdict", mark),
                        ("seed", result.seed_result), ("notes", result.notes)):
        if text:
            console.print(f"[bold]{label:>10}[/bold]  {text if label == 'verdict' else escape(text)}")
    if result.rows:
        console.print(_rows_table(result.rows))
        if len(result.rows) > _MAX_ROWS:
            console.print(f"… {len(result.rows) - _MAX_ROWS} more row(s); --json prints them all")
    console.print(f"{len(result.run_ids)} run(s) recorded in {db}", soft_wrap=True)


def run_study(study: Any, config: Any, store: Any, console: Console) -> Any:
    """Run ``study`` with a rich progress bar on ``console``."""
    experiments = _studies()
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(study.name, total=None)

        def listener(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total or None, description=f"{study.name}: {what}")

        return study.run(config, store, progress=experiments.Progress(listener))


def register(app: typer.Typer, console: Console, default_db: Path) -> None:
    """Add the ``experiment`` command to ``app``."""

    @app.command("experiment", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                                 "help_option_names": []})
    def experiment(
        ctx: typer.Context,
        name: Annotated[Optional[str], typer.Argument(help="The study to run (omit to list them).")] = None,
        db: Annotated[Path, typer.Option("--db", help="DuckDB file to record the runs in.")] = default_db,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Run a scripted study (see experiments/README.md); `cfc experiment NAME --help` lists its options."""
        experiments = _studies()
        if name is None or name in ("--help", "-h"):
            table = Table(title="studies (cfc experiment NAME [--option value …])", title_justify="left",
                          header_style="bold")
            table.add_column("name")
            table.add_column("what it tests")
            for study_name in experiments.STUDIES:
                table.add_row(study_name, escape(experiments.load(study_name).title))
            console.print(table)
            return
        try:
            study = experiments.load(name)
        except KeyError as exc:
            raise CfcError(exc.args[0]) from None
        tokens = list(ctx.args)
        if "--help" in tokens or "-h" in tokens:
            console.print(f"[bold]cfc experiment {name}[/bold]: {escape(study.title)}")
            doc = (study.config.__doc__ or "").strip()
            if doc:
                console.print(escape(doc))
            console.print(_options_table(study.config))
            console.print(f"also: --db FILE (the DuckDB file to record into, default {default_db}), --json (print "
                          "the result as JSON); a tuple takes several values (--x 1 2 or --x 1,2), a flag --x / --no-x")
            return
        config = config_from_options(study.config, tokens)
        with DuckDBStore(db) as store:
            result = run_study(study, config, store, Console(stderr=True) if as_json else console)
        if as_json:
            print(result.model_dump_json(indent=2))
        else:
            show_result(result, console, db)
