"""The size and load time of the HTML report of a large run.

Relaxes ``standard_system(N)`` (N = 10^4 by default) for ``--steps`` fixed-size steps (1000;
``tol=0`` so every step runs) with every η recorded (about 10^7 values) into a DuckDB file, writes
``report(store, [run])`` and opens it ``--loads`` times in headless Chromium (Debian's
``/usr/bin/chromium`` through playwright), each time in a fresh page. The load time is the page's
own clock from navigation start to the moment the last plot is drawn (``window.cfcReport.drawnMs``);
the median is compared with the target. Also prints the CPU time of the page's main thread (the
work itself, which a loaded machine does not inflate), the machine's load average, and the time to
build the report in Python.

Targets: the file under 5 MB, the median load under 2 s.

    python bench/report.py [--n 10000] [--steps 1000] [--loads 5] [--out FILE.html] [--db FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from complexity_from_constraints.adapters import DuckDBStore, report
from complexity_from_constraints.entities import RelaxConfig, standard_system
from complexity_from_constraints.projectors import relax

SIZE_TARGET_MB = 5.0
LOAD_TARGET_S = 2.0
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def load_times(path: Path, loads: int, chromium: str) -> list[tuple[float, float]]:
    """(seconds from navigation start to the last plot drawn, CPU seconds of the page's main thread),
    once per fresh page. The second (Chromium's ThreadTime in thread ticks) is work that other
    processes on a busy machine do not inflate: about what an idle machine would take."""
    from playwright.sync_api import sync_playwright

    url = path.resolve().as_uri()
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for _ in range(loads):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})  # CPU time, not wall time
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url)
            page.wait_for_function("window.cfcReport !== undefined", timeout=120_000)
            busy = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}["ThreadTime"]
            out.append((page.evaluate("window.cfcReport.drawnMs") / 1000, busy))
            page.close()
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cfc-report-bench.html")
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file for the run (default: a temporary one)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        with DuckDBStore(db) as store:
            t = time.perf_counter()
            run = relax(standard_system(args.n, seed=0), RelaxConfig(steps=args.steps, tol=0.0), seed=0, store=store)
            relaxed = time.perf_counter() - t
            values = store.query("SELECT count(*) AS n FROM v_eta WHERE run_id = ?", [run.run_id])["n"][0]
            print(f"run {run.run_id}: N = {args.n}, {run.steps} steps ({run.status}), {values:,} η values recorded, "
                  f"relaxed in {relaxed:.1f} s")
            t = time.perf_counter()
            page = report(store, [run.run_id])
            built = time.perf_counter() - t
        args.out.write_text(page, encoding="utf-8")

    size_mb = args.out.stat().st_size / 1e6
    loads = load_times(args.out, args.loads, args.chromium)
    times, busy = [t for t, _ in loads], [b for _, b in loads]
    median = statistics.median(times)
    print(f"report built in {built:.2f} s: {args.out}")
    print(f"size  {size_mb:6.2f} MB   target < {SIZE_TARGET_MB:g} MB   {'PASS' if size_mb < SIZE_TARGET_MB else 'FAIL'}")
    print(f"load  {median:6.2f} s    target < {LOAD_TARGET_S:g} s    {'PASS' if median < LOAD_TARGET_S else 'FAIL'}"
          f"   (median of {len(times)}: {', '.join(f'{s:.2f}' for s in times)}; navigation start → last plot drawn)")
    print(f"      main thread CPU {statistics.median(busy):.2f} s (median; the work itself, whatever the machine's load); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
