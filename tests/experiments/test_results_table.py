"""The results table in experiments/README.md is what `cfc experiment --all --table` prints, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from complexity_from_constraints import experiments
from complexity_from_constraints.adapters._experiment_cli import RESULTS_END, RESULTS_START

README = Path(experiments.__file__).parent / "README.md"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:e[-+]?\d+)?")


def committed_table() -> str:
    text = README.read_text()
    return text[text.index(RESULTS_START):text.index(RESULTS_END) + len(RESULTS_END)]


def close(a: str, b: str) -> bool:
    """Two printed numbers agree: the same text, both below 1e-12 (rounding noise), or one unit apart in the
    last printed digit (a value that sat on a rounding boundary)."""
    if a == b:
        return True
    x, y = float(a), float(b)
    return max(abs(x), abs(y)) <= 1e-12 or abs(x - y) <= 1.01 * 10 ** -len(a.split("e")[0].split(".")[-1]) * (
        10 ** int(a.split("e")[1]) if "e" in a else 1)


def same_table(produced: str, committed: str) -> list[str]:
    """The lines where the two tables differ beyond :func:`close` (empty when they agree)."""
    problems = []
    produced_lines, committed_lines = produced.splitlines(), committed.splitlines()
    if len(produced_lines) != len(committed_lines):
        return [f"{len(produced_lines)} lines printed, {len(committed_lines)} committed"]
    for new, old in zip(produced_lines, committed_lines):
        if NUMBER.sub("#", new) != NUMBER.sub("#", old):
            problems.append(f"text differs:\n  printed:   {new[:300]}\n  committed: {old[:300]}")
            continue
        for a, b in zip(NUMBER.findall(new), NUMBER.findall(old)):
            if not close(a, b):
                problems.append(f"{a} printed where {b} is committed, in: {new[:120]}")
    return problems


def test_number_comparison_allows_rounding_noise_only():
    assert close("0.0135", "0.0136") and close("1.8e-17", "2.9e-19") and close("27.3", "27.3")
    assert not close("0.0135", "0.0138") and not close("4.6", "5.6") and not close("1e-06", "2e-06")
    assert same_table("| a | 0.5 |", "| a | 0.5 |") == []
    assert same_table("| a | held |", "| a | did not hold |")
    assert same_table("| a | 0.5 |", "| a | 0.7 |")


def test_the_committed_results_table_is_what_the_command_prints(cli, tmp_path):
    code, out, err = cli("experiment", "--all", "--table", "--workers", "2", "--db", tmp_path / "all.duckdb",
                         "--no-figures")
    assert code == 0, err[-2000:]
    problems = same_table(out.strip(), committed_table())
    assert not problems, ("experiments/README.md's results table is stale; regenerate it with "
                          "`cfc experiment --all --table`:\n" + "\n".join(problems[:10]))
