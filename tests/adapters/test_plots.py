"""Plots are PNG files drawn from the views; different data draws different bytes."""

from __future__ import annotations

import pytest

from complexity_from_constraints.adapters import DuckDBStore, plot_energy, plot_eta_heatmap, plot_gate_timeline
from complexity_from_constraints.entities import CfcError, LandauModule, RelaxConfig, System, UnknownRunError
from complexity_from_constraints.projectors import relax

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs(tmp_path, toy_system):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        a = relax(toy_system, RelaxConfig(steps=40, step_size=0.3), store=store).run_id
        b = relax(toy_system, RelaxConfig(steps=40, step_size=0.1), store=store).run_id
        yield store, a, b


@pytest.mark.parametrize("plot", [plot_energy, plot_eta_heatmap, plot_gate_timeline])
def test_each_plot_is_a_png_that_changes_with_the_data(runs, tmp_path, plot, monkeypatch):
    store, a, b = runs
    wrap = (lambda r: [r]) if plot is plot_energy else (lambda r: r)
    first = plot(store, wrap(a), tmp_path / "a" / "plot.png")
    second = plot(store, wrap(b), tmp_path / "b.png")
    assert first.read_bytes().startswith(PNG) and first.stat().st_size > 1000
    assert first.read_bytes() != second.read_bytes()
    again = plot(store, wrap(a), tmp_path / "a2.png")
    assert again.read_bytes() == first.read_bytes()  # same data, same picture


def test_energy_of_several_runs_and_runs_without_gates(runs, tmp_path):
    store, a, b = runs
    both = plot_energy(store, [a, b], tmp_path / "both.png")
    assert both.read_bytes() != plot_energy(store, [a], tmp_path / "one.png").read_bytes()
    plain = relax(System(id="plain", modules=[LandauModule(id="m")]), RelaxConfig(steps=3), store=store).run_id
    assert plot_gate_timeline(store, plain, tmp_path / "none.png").read_bytes().startswith(PNG)


def test_unknown_runs_and_empty_lists_are_clear_errors(runs, tmp_path):
    store, a, _ = runs
    with pytest.raises(UnknownRunError, match="no run 'nope-1'"):
        plot_energy(store, [a, "nope-1"], tmp_path / "x.png")
    with pytest.raises(CfcError, match="at least one run"):
        plot_energy(store, [], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("plot", [plot_energy, plot_eta_heatmap, plot_gate_timeline])
def test_a_plot_never_replaces_a_file_of_another_kind(runs, tmp_path, plot):
    from complexity_from_constraints.entities import OverwriteRefusedError

    store, a, _ = runs
    wrap = (lambda r: [r]) if plot is plot_energy else (lambda r: r)
    database = tmp_path / "runs.duckdb"  # the store itself
    kept = database.read_bytes()
    for victim in (database, tmp_path / "notes.txt", tmp_path / "p.jsonl"):
        if not victim.exists():
            victim.write_text('{"type": "RunStarted"}\n' if victim.suffix == ".jsonl" else "my notes\n")
        before = victim.read_bytes()
        with pytest.raises(OverwriteRefusedError, match="force=True"):
            plot(store, wrap(a), victim)
        assert victim.read_bytes() == before
    assert database.read_bytes() == kept
    png = plot(store, wrap(a), tmp_path / "plot.png")
    assert plot(store, wrap(a), png) == png  # a PNG is replaced by a PNG
    forced = plot(store, wrap(a), tmp_path / "notes.txt", force=True)
    assert forced.read_bytes().startswith(PNG)
