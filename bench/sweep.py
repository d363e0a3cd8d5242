"""Sweep engines against running the same points one after another.

32 runs (a standard System of 2,000 modules, 300 recorded steps each: 4 step sizes × 8 seeds) into a
DuckDB file: serially in this process (two ways, and the faster one is the baseline: the sweep
driver's serial engine, and a plain loop of ``relax`` into the file with its pipelined writer), with
the ``local`` engine (a process pool of ``--workers`` processes), and with the ``ray`` engine on a local cluster of ``--workers`` CPUs (its
start included). Prints the medians of ``--repeats`` rounds, the speed-ups with PASS/FAIL against the
targets (local ≥ 1.7×, ray ≥ 1.5× on 2 cores), checks with SQL that the three files hold the same
runs bit for bit, and prints the driver's ingest rate (η values appended per second of append time)
with what it implies for 64 workers.

    OPENBLAS_NUM_THREADS=1 python bench/sweep.py [--runs 32] [--modules 2000] [--steps 300] [--workers 2]

One BLAS thread per process, set below before numpy loads, for every engine alike.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402

from complexity_from_constraints.adapters import DuckDBStore  # noqa: E402
from complexity_from_constraints.adapters._eta_codec import register_eta_functions  # noqa: E402
from complexity_from_constraints.adapters._sweep import ListAxis, SweepSpec, sweep  # noqa: E402
from complexity_from_constraints.entities import RelaxConfig, standard_system  # noqa: E402


def spec_for(runs: int, modules: int, steps: int) -> SweepSpec:
    sizes = [0.02, 0.05, 0.1, 0.2]
    return SweepSpec(name="bench", system=standard_system(modules, seed=0),
                     config=RelaxConfig(steps=steps, tol=0.0, eta0="uniform"),
                     axes=[ListAxis(path="step_size", values=sizes)], seeds=list(range(max(1, runs // len(sizes)))))


def one_round(spec: SweepSpec, engine: str, workers: int, folder: Path) -> tuple[float, float, Path]:
    path = folder / f"{engine}-{time.monotonic_ns()}.duckdb"
    started = time.perf_counter()
    with DuckDBStore(path) as store:
        result = sweep(spec, store=store, engine=engine, workers=workers)
    wall = time.perf_counter() - started
    assert result.count("complete") == len(spec.points()), result.reasons
    return wall, result.ingest_rate, path


def plain_loop(spec: SweepSpec, folder: Path) -> float:
    """The serial baseline as its own user would write it: ``relax`` into the file point after point, with the
    pipelined writer (the store appends while the loop computes), no sweep driver, no in-memory copy."""
    from complexity_from_constraints.projectors import relax

    jobs = [spec.build(p) for p in spec.points()]  # built outside the clock
    path = folder / f"plain-{time.monotonic_ns()}.duckdb"
    started = time.perf_counter()
    with DuckDBStore(path) as store:
        for system, config, seed in jobs:
            relax(system, config, seed=seed, store=store)
    return time.perf_counter() - started


def same_runs(a: Path, b: Path) -> bool:
    """The two files hold the same run ids with the same events and η, compared in SQL."""
    con = duckdb.connect()
    register_eta_functions(con)  # the eta_values view decodes the stored η frames
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    checks = [
        "SELECT run_id, seq, type, payload FROM a.events EXCEPT SELECT run_id, seq, type, payload FROM b.events",
        "SELECT run_id, seq, type, payload FROM b.events EXCEPT SELECT run_id, seq, type, payload FROM a.events",
        "SELECT r.run_id, v.step, v.idx, v.eta FROM a.eta_values v JOIN a.runs r USING (run_key) EXCEPT "
        "SELECT r.run_id, v.step, v.idx, v.eta FROM b.eta_values v JOIN b.runs r USING (run_key)",
    ]
    return all(not con.execute(q).fetchall() for q in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=["serial", "local", "ray"])
    args = parser.parse_args()
    spec = spec_for(args.runs, args.modules, args.steps)
    n = len(spec.points())
    print(f"{n} runs of {args.modules} modules × {args.steps} steps; {args.workers} workers; "
          f"medians of {args.repeats}; one BLAS thread per process")
    walls: dict[str, float] = {}
    files: dict[str, Path] = {}
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines:
            results = [one_round(spec, engine, args.workers, Path(tmp)) for _ in range(args.repeats)]
            walls[engine] = statistics.median(r[0] for r in results)
            rates += [r[1] for r in results]
            files[engine] = results[-1][2]
            print(f"{engine:>7}: {walls[engine]:8.2f} s  ({n / walls[engine]:.2f} runs/s)")
        if "serial" in walls:  # the fairer serial baseline is whichever of the two serial ways is faster
            plain = statistics.median(plain_loop(spec, Path(tmp)) for _ in range(args.repeats))
            print(f"  plain: {plain:8.2f} s  ({n / plain:.2f} runs/s; relax() into the file in a loop, pipelined)")
            walls["serial"] = min(walls["serial"], plain)
        targets = {"local": 1.7, "ray": 1.5}
        for engine, target in targets.items():
            if engine in walls and "serial" in walls:
                ratio = walls["serial"] / walls[engine]
                print(f"{engine} vs the faster serial: {ratio:.2f}×  (target ≥ {target}×)  {'PASS' if ratio >= target else 'FAIL'}")
        for engine in files:
            if engine != "serial" and "serial" in files:
                same = same_runs(files["serial"], files[engine])
                print(f"{engine} holds the same runs as serial, bit for bit: {'PASS' if same else 'FAIL'}")
    rate = statistics.median(rates)
    per_run = args.modules * (args.steps + 1)
    busiest = n / walls.get("local", walls["serial"]) * 64 / args.workers
    print(f"driver ingest: {rate:,.0f} η values/s (median); one run is {per_run:,} values, so the driver appends "
          f"{rate / per_run:.1f} runs/s; 64 workers at this machine's per-worker pace would finish "
          f"{busiest:.1f} runs/s: the driver {'is not' if rate / per_run > busiest else 'would be'} the bottleneck")


if __name__ == "__main__":
    main()
