"""The HTML report, opened as a person opens it: in a real (headless) Chromium, offline.

The browser tests need Debian's chromium and playwright's Python package. Where either is missing
they skip with the command that installs it, except under CI (the variable CI set), where they fail:
CI installs both and must run them. ``CFC_REPORT_SCREENSHOTS=DIR`` keeps the screenshots in DIR.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore, report
from complexity_from_constraints.adapters import _report as report_module
from complexity_from_constraints.entities import CfcError, RelaxConfig, UnknownRunError, demo_system
from complexity_from_constraints.projectors import diff_runs, relax

CHROMIUM = os.environ.get("CFC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_HINT = ("the report tests open the page in Chromium through playwright: "
                "apt-get install -y chromium && python -m pip install playwright")
DEMO = RelaxConfig(steps=300, step_size=0.5, line_search="armijo", tol=1e-6)


def launch_browser(executable: str = CHROMIUM, environ=os.environ):
    """(playwright, browser); a missing browser or playwright skips the test, or fails it under CI."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed"
    if missing is None and not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        missing = f"no Chromium at {executable}"
    if missing is not None:
        message = f"{missing}; {INSTALL_HINT}"
        if environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message)
    pw = sync_playwright().start()
    try:
        return pw, pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    except Exception:
        pw.stop()
        raise


@pytest.fixture(scope="module")
def browser():
    pw, chromium = launch_browser()
    yield chromium
    chromium.close()
    pw.stop()


class Opened:
    """A report loaded in a page, with what the page logged and asked for."""

    def __init__(self, page, url: str, errors: list[str], requests: list[str]):
        self.page, self.url, self.errors, self.requests = page, url, errors, requests

    def card(self, label: str) -> tuple[object, str]:
        """(the exact value, the text shown) of a header card."""
        cell = self.page.locator(f'.card[data-field="{label}"] .v')
        return json.loads(cell.get_attribute("data-value")), cell.inner_text()

    def screenshot(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        keep = os.environ.get("CFC_REPORT_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path


@pytest.fixture
def open_report(browser, tmp_path):
    pages = []

    def load(html: str, name: str = "report") -> Opened:
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        url = path.as_uri()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        # Only the page itself may load; anything else is refused (and recorded above).
        page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
        page.goto(url)
        page.wait_for_function("document.body.dataset.plotsDrawn !== undefined || "
                               "document.getElementById('cfc-error').textContent !== ''", timeout=60_000)
        return Opened(page, url, errors, requests)

    yield load
    for page in pages:
        page.close()


@pytest.fixture
def demo_store(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = relax(demo_system(0), DEMO, seed=0, store=store).run_id
        yield store, run_id


def assert_every_plot_drawn(opened: Opened) -> int:
    page = opened.page
    assert page.locator("#cfc-error").inner_text() == ""
    plots = page.locator("div.plot")
    assert plots.count() == int(page.evaluate("document.body.dataset.plotsDrawn")) > 0
    for k in range(plots.count()):
        plot = plots.nth(k)
        name = plot.get_attribute("data-plot")
        # Plotly draws the traces into each subplot's .overplot layer: lines, markers and bars as SVG
        # paths with a shape, a heatmap as an image.
        drawn = plot.evaluate("d => [...d.querySelectorAll('.overplot path, .overplot image')].filter("
                              "e => (e.getAttribute('d') || e.getAttribute('href') || '').length > 8).length")
        assert drawn > 0, f"plot {name!r} is empty"
        assert plot.bounding_box()["height"] > 150, f"plot {name!r} has no room"
    return plots.count()


def assert_offline_and_clean(opened: Opened) -> None:
    assert opened.errors == []
    assert opened.requests == [opened.url], "the page asked for more than itself"


# -- one run ---------------------------------------------------------------------------------------


def test_the_demo_report_draws_every_plot_offline(demo_store, open_report, tmp_path):
    store, run_id = demo_store
    opened = open_report(report(store, [run_id]), "demo")
    assert_offline_and_clean(opened)
    drawn = assert_every_plot_drawn(opened)
    names = opened.page.locator("div.plot").evaluate_all("ds => ds.map(d => d.dataset.plot)")
    assert names == ["energy", "steps", "eta", "gates"] and drawn == 4
    shot = opened.screenshot(tmp_path, "demo-report")
    assert shot.stat().st_size > 50_000


def test_the_header_shows_the_views_numbers(demo_store, open_report):
    store, run_id = demo_store
    summary = store.query("SELECT * FROM v_run_summary WHERE run_id = ?", [run_id]).row(0, named=True)
    delta = store.query("SELECT * FROM v_delta_f90 WHERE run_id = ?", [run_id]).row(0, named=True)
    stats = store.query("SELECT * FROM v_step_stats WHERE run_id = ?", [run_id]).row(0, named=True)
    opened = open_report(report(store, [run_id]), "header")
    expected = {"status": summary["status"], "steps": summary["steps"], "final energy": summary["final_energy"],
                "initial energy": summary["e0"], "energy drop": summary["energy_drop"], "ΔF90": delta["delta_f90"],
                "ΔF99": delta["delta_f99"], "accepted steps": summary["accepted_steps"],
                "rejected steps": summary["rejected_steps"], "backtracks": stats["total_backtracks"],
                "gate openings": summary["gate_openings"]}
    for label, value in expected.items():
        exact, shown = opened.card(label)
        assert exact == value, label
        if isinstance(value, float):
            assert float(shown) == pytest.approx(value, rel=1e-8), label
        else:
            assert shown == str(value), label
    page = opened.page
    assert page.locator('[data-table="identity"] tr[data-field="seed"] td').inner_text() == "0"
    assert page.locator('[data-table="identity"] tr[data-field="solver"] td').inner_text() == "projected_gradient"
    changed = dict(page.locator('[data-table="config"] tbody tr').evaluate_all(
        "rows => rows.map(r => [r.dataset.field, JSON.parse(r.querySelector('td').dataset.value)])"))
    assert changed == {"steps": 300, "step_size": 0.5, "line_search": "armijo", "tol": 1e-6}
    kinds = page.locator('[data-table="system"] tbody tr').evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.innerText))")
    assert ["module", "landau", "4"] in kinds and ["coupling", "gate_benefit", "1"] in kinds


def test_hovering_the_energy_trace_shows_a_recorded_value(demo_store, open_report):
    store, run_id = demo_store
    energy = dict(store.query("SELECT step, energy FROM v_energy_by_step WHERE run_id = ?", [run_id]).iter_rows())
    page = open_report(report(store, [run_id]), "hover").page
    box = page.locator('div.plot[data-plot="energy"] .nsewdrag').first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    label = page.locator('div.plot[data-plot="energy"] .hoverlayer .hovertext')
    label.first.wait_for(timeout=10_000)
    text = label.first.text_content()
    found = re.search(r"step (\d+)\s*energy (-?[\d.]+(?:e[-+]?\d+)?)", text)
    assert found, text
    step, shown = int(found.group(1)), float(found.group(2))
    assert shown == pytest.approx(energy[step], rel=1e-8)


def test_a_large_system_is_downsampled_in_sql_and_says_so(demo_store, monkeypatch, open_report):
    store, run_id = demo_store
    monkeypatch.setattr(report_module, "HEATMAP_MODULES", 2)  # 6 modules → 3 to a row
    monkeypatch.setattr(report_module, "HEATMAP_STEPS", 40)  # 179 steps → every 5th
    html = report(store, [run_id])
    heat = next(f for f in _figures(html) if f["data"][0]["type"] == "heatmap")["data"][0]
    z = _array(heat["z"])
    expected = store.query(
        "SELECT v.step, m.idx // 3 AS bin, avg(v.eta) AS eta FROM v_eta AS v JOIN runs AS r USING (run_id) "
        "JOIN run_modules AS m ON m.run_key = r.run_key AND m.module_id = v.entity_id "
        "WHERE v.run_id = ? AND v.step % 5 = 0 GROUP BY ALL ORDER BY bin, step", [run_id])
    assert z.shape == (2, expected["step"].n_unique())
    np.testing.assert_array_equal(z.ravel(), expected["eta"].to_numpy())
    page = open_report(html, "downsampled").page
    note = page.locator('section[data-section="eta"] .note').inner_text()
    assert "every 5th step" in note and "modules binned 3 to a row (mean η)" in note
    assert "every 5th step" in page.locator('div.plot[data-plot="eta"] .annotation-text').first.text_content()


def test_terms_weights_margins_warnings_and_revisions_are_shown_when_recorded(tmp_path, open_report):
    from complexity_from_constraints.entities import GradNormWeighting, Revision, StabilityConfig

    config = RelaxConfig(steps=40, tol=0.0, step_size=0.5, revisions=[Revision(step=10, entity_id="repair",
                                                                               changes={"cost": 0.2})],
                         stability=StabilityConfig(cap_fraction=1.0, warn_margin=100.0), record_terms_every=5,
                         weighting=GradNormWeighting(every=5))
    with DuckDBStore(tmp_path / "w.duckdb") as store:
        run_id = relax(demo_system(0), config, store=store).run_id
        warned = store.query("SELECT count(*) AS n FROM v_contraction_margin WHERE run_id = ? AND warned",
                             [run_id])["n"][0]
        opened = open_report(report(store, [run_id]), "warnings")
    assert_offline_and_clean(opened)
    assert_every_plot_drawn(opened)
    rows = opened.page.locator('[data-table="warnings"] tbody tr').evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.innerText))")
    whats = [r[1] for r in rows]
    assert whats.count("margin warning") == warned > 0
    assert ["10", "revision"] == rows[whats.index("revision")][:2] and "repair → version 2" in rows[whats.index("revision")][2]
    names = opened.page.locator("div.plot").evaluate_all("ds => ds.map(d => d.dataset.plot)")
    assert names == ["energy", "steps", "eta", "gates", "terms", "weights", "margin"]


# -- several runs ----------------------------------------------------------------------------------


def test_a_two_run_report_overlays_the_traces_and_marks_the_first_divergence(demo_store, open_report, tmp_path):
    store, a = demo_store
    b = relax(demo_system(0), DEMO.model_validate({**DEMO.model_dump(), "step_size": 0.2}), seed=0, store=store).run_id
    d = diff_runs(store, a, b)
    opened = open_report(report(store, [a, b]), "diff")
    assert_offline_and_clean(opened)
    assert assert_every_plot_drawn(opened) == 1
    page = opened.page
    traces = page.locator('div.plot[data-plot="energy"] .scatterlayer .trace').count()
    assert traces == 2
    assert f"diverges at {d.first_divergence}" in page.locator('div.plot[data-plot="energy"]').text_content()
    rows = page.locator('[data-table="config-diff"] tbody tr').evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => JSON.parse(c.dataset.value ?? 'null')))")
    assert [None, 0.5, 0.2] in [[None, *r[1:]] for r in rows]
    divergence = page.locator('[data-table="divergence"] tbody tr td').evaluate_all("cs => cs.map(c => c.innerText)")
    assert divergence[0] == b and divergence[1] == str(d.first_divergence)
    summary = page.locator('[data-table="runs"] tbody tr td:first-child').evaluate_all("cs => cs.map(c => c.innerText)")
    assert summary == [a, b]
    opened.screenshot(tmp_path, "diff-report")


def test_a_sweep_over_step_size_and_seeds_shows_each_run_and_the_mean_and_sd(tmp_path, open_report):
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        runs = [relax(demo_system(seed), DEMO.model_validate({**DEMO.model_dump(), "step_size": size}), seed=seed,
                      store=store).run_id for size in (0.2, 0.5) for seed in (0, 1, 2)]
        html = report(store, runs, axis="step_size")
        expected = store.query(
            "SELECT avg(final_energy) AS mean, stddev_samp(final_energy) AS sd FROM v_run_summary "
            "WHERE run_id IN (SELECT unnest(?))", [runs[:3]])
    opened = open_report(html, "sweep")
    assert_offline_and_clean(opened)
    assert assert_every_plot_drawn(opened) == 2
    rows = opened.page.locator('[data-table="sweep"] tbody tr').evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => JSON.parse(c.dataset.value)))")
    assert [r[0] for r in rows] == [0.2, 0.5] and [r[1] for r in rows] == [3, 3]
    assert rows[0][2] == pytest.approx(expected["mean"][0], rel=1e-12)
    assert rows[0][3] == pytest.approx(expected["sd"][0], rel=1e-12)
    opened.screenshot(tmp_path, "sweep-report")


def test_a_sweep_report_shows_its_axis_with_the_seed_band(tmp_path, open_report, cli):
    """`cfc report --sweep S`: the sweep's runs against its first axis, the band from the same SQL as v_sweep_summary."""
    from complexity_from_constraints.adapters._sweep import GridAxis, SweepSpec, sweep

    spec = SweepSpec(name="band", system=demo_system(0), config=DEMO.evolve(steps=40),
                     axes=[GridAxis(path="system.s0.a", start=-1.0, stop=-0.4, num=2),
                           GridAxis(path="step_size", start=0.3, stop=0.5, num=2)], seeds=[0, 1, 2])
    db, out = tmp_path / "w.duckdb", tmp_path / "sweep.html"
    with DuckDBStore(db) as store:
        sweep(spec, store=store, engine="serial")
        expected = store.query("SELECT avg(final_energy) AS mean FROM v_runs AS r JOIN v_run_params AS p USING (run_id) "
                               "WHERE r.sweep IS NOT NULL AND p.key = 'system.s0.a' GROUP BY p.value ORDER BY p.value::DOUBLE")
    code, _, err = cli("report", "--sweep", "band", "--out", out, "--db", db)
    assert code == 0, err
    opened = open_report(out.read_text(), "sweep-cli")
    assert_offline_and_clean(opened)
    assert assert_every_plot_drawn(opened) >= 3  # the energies, and one panel row per axis
    assert "sweep band-" in opened.page.locator('[data-section="selection"]').inner_text()
    tables = opened.page.locator('[data-table="sweep"]')
    assert tables.count() == 2  # each axis it varied
    rows = tables.nth(0).locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => JSON.parse(c.dataset.value)))")
    assert [r[0] for r in rows] == [-1.0, -0.4] and [r[1] for r in rows] == [6, 6]
    assert [r[2] for r in rows] == pytest.approx(list(expected["mean"]), rel=1e-12)
    opened.screenshot(tmp_path, "sweep-cli-report")


def test_a_study_report_shows_what_it_found_and_its_runs(tmp_path, open_report, cli):
    db, out = tmp_path / "st.duckdb", tmp_path / "study.html"
    code, _, err = cli("experiment", "landau_sweep", "--num", "3", "--seeds", "1", "--steps", "60", "--engine", "serial",
                       "--db", db)
    assert code == 0, err
    with DuckDBStore(db, read_only=True) as store:
        runs = store.query("SELECT run_id FROM v_runs WHERE study = 'landau_sweep'")["run_id"].to_list()
        verdict = store.query("SELECT verdict FROM v_study_results WHERE study = 'landau_sweep'").item()
    assert len(runs) == 3
    code, _, err = cli("report", "--study", "landau_sweep", "--out", out, "--db", db)
    assert code == 0, err
    opened = open_report(out.read_text(), "study")
    assert_offline_and_clean(opened)
    assert assert_every_plot_drawn(opened) >= 1
    found = opened.page.locator('[data-section="selection"]').inner_text()
    assert "study landau_sweep" in found and verdict in found
    assert opened.card("verdict") == (verdict, verdict)
    figures = opened.page.locator('[data-section="study-figures"] figure img')
    assert figures.count() == 1  # landau_sweep draws one figure, embedded in the page and drawn offline
    assert figures.first.evaluate("img => img.complete && img.naturalWidth") > 300
    opened.screenshot(tmp_path, "study-report")


# -- without a browser -----------------------------------------------------------------------------


def test_a_missing_browser_skips_with_the_install_command_but_fails_under_ci():
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium.*pip install playwright"):
        launch_browser("/nonexistent/chromium", environ={})
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests.*apt-get install -y chromium"):
        launch_browser("/nonexistent/chromium", environ={"CI": "true"})


def test_report_refuses_what_it_cannot_show(demo_store):
    store, run_id = demo_store
    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        report(store, [run_id, "nope"])
    with pytest.raises(CfcError, match="several runs"):
        report(store, [run_id], axis="seed")
    other = relax(demo_system(1), DEMO, seed=1, store=store).run_id
    with pytest.raises(CfcError, match="not 'system_id' or a parameter of these runs"):
        report(store, [run_id, other], axis="no_such_field")
    with pytest.raises(CfcError, match="one of them"):
        report(store, [run_id], sweep="x")
    with pytest.raises(CfcError, match="no study 'nothing' recorded"):
        report(store, study="nothing")
    with pytest.raises(CfcError, match="at least one run"):
        report(store, [])


def test_a_study_report_shows_the_verdict_rule_checks_and_figures(tmp_path, cli):
    """Without a browser: what the study found, theory beside measurement, and each figure as an embedded PNG."""
    db = tmp_path / "study.duckdb"
    code, _, err = cli("experiment", "landau_plot", "--seeds", "2", "--num", "20", "--engine", "serial", "--db", db,
                       "--no-figures")
    assert code == 0, err
    with DuckDBStore(db) as store:
        recorded = json.loads(store.query("SELECT result FROM v_study_results WHERE study = 'landau_plot'").item())
        page = report(store, study="landau_plot")
        store.record_study("a_study_since_removed", json.dumps(recorded))
        orphan = report(store, study="a_study_since_removed")
    assert recorded["verdict"] == "held"
    assert '<div class="card" data-field="verdict"><div class="k">verdict</div><div class="v" data-value="&quot;held' in page
    for field in ("hypothesis", "rule", "measured", "notes"):
        assert html.escape(recorded[field]) in page
    checks = re.findall(r'<tr data-agrees="(\w+)"><td>([^<]*)</td>', re.search(
        r'<table data-table="study-checks">.*?</table>', page, re.S).group(0))
    assert [html.unescape(q) for _, q in checks] == [c["quantity"] for c in recorded["checks"]]
    assert [a for a, _ in checks] == ["true"] * len(recorded["checks"])
    pngs = re.findall(r'<figure class="study-figure" data-figure="(\w+)"><img alt="[^"]*" src="data:image/png;base64,'
                      r'([A-Za-z0-9+/=]+)"', page)
    assert [name for name, _ in pngs] == ["double_well"]
    assert base64.b64decode(pngs[0][1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#|data:image/png;base64,)""", page)  # still one file
    assert 'data-figures="none">no figures: CfcError: unknown study' in orphan and "<figure" not in orphan


def test_the_page_is_one_file_with_nothing_to_fetch(demo_store):
    store, run_id = demo_store
    html = report(store, [run_id])
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html)  # no script, style or link to load
    assert html.count('id="cfc-plotly"') == 1 and html == report(store, [run_id])  # embedded once; reproducible


def test_cfc_report_writes_the_page(cli, tmp_path):
    db, out = tmp_path / "runs.duckdb", tmp_path / "r.html"
    code, printed, _ = cli("demo", "--db", db)
    assert code == 0 and "cfc report" in printed
    run_id = re.search(r"cfc report (\S+) --out report.html", printed).group(1)
    code, printed, err = cli("report", run_id, "--out", out, "--db", db)
    assert code == 0, err
    assert "wrote" in printed and out.read_text().startswith("<!DOCTYPE html>")
    assert cli("report", "nope", "--out", out, "--db", db)[0] == 2


def _figures(html: str) -> list[dict]:
    spec = re.search(r'<script type="application/json" id="cfc-figures">(.*?)</script>', html, re.S).group(1)
    return json.loads(spec)["figures"]


def _array(spec) -> np.ndarray:
    """A plotly typed array ({dtype, bdata, shape}) or a plain list, as numpy."""
    if isinstance(spec, dict):
        values = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"])
        shape = spec.get("shape")
        return values.reshape([int(n) for n in str(shape).split(",")]) if shape else values
    return np.asarray(spec, dtype=float)
