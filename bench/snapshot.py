"""Snapshot mode: what recording η every k steps costs, and what replaying an unrecorded step costs.

1. **Recording**: a run recorded in snapshot mode (k = 10; η and the loop's
   state every 10 steps, every step's scalars) to a DuckDB file (open + relax +
   close) against the same run unrecorded (``NullStore``). The file exists
   before the clock starts, as a user's ``runs.duckdb`` does (creating a new
   file and its views is a once-per-file cost, printed apart). Target: ≤ 1.15× at
   every N ≥ 10⁴. "Every step" recording is shown beside it for reference (its
   target is ``bench/recording.py``'s).
2. **Replay of an unrecorded step**: ``replay(store, run, step)`` for the step
   farthest from a snapshot without a frame (k − 2 steps after one: the step
   before each snapshot has one), in a store reopened as a user would, against
   20 ms plus the time of the steps it re-runs (measured on the unrecorded run:
   its wall time per step, times k − 2). The replayed η is checked
   against the run recorded every step, bit for bit. The first replay of a run in
   a process also decodes and compiles its System (kept for the next replays);
   it is printed, not judged (the System's stored form is the store's business).

Figures are medians of ``--repeats`` runs in one process, contenders interleaved;
recording is CPU time (``time.process_time``: DuckDB writes on its own threads and
this counts them) and wall time; replay is wall time. One BLAS thread for everyone.
Solver: ``accelerated`` (a snapshot holds its momentum, so this is the heavier case).

    python bench/snapshot.py [--sizes 10000 100000] [--steps 100] [--repeats 5]
    python bench/snapshot.py --sizes 1000000 --repeats 1     # once at 10^6 (minutes)
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from complexity_from_constraints.adapters import DuckDBStore  # noqa: E402
from complexity_from_constraints.entities import RelaxConfig, SnapshotConfig, standard_system  # noqa: E402
from complexity_from_constraints.events import NullStore  # noqa: E402
from complexity_from_constraints.projectors import compile_system, relax, replay  # noqa: E402

EVERY = 10


def verdict(ratio: float, target: float) -> str:
    return f"{'PASS' if ratio <= target else 'FAIL'} (target <= {target:g}x)"


def interleaved(fns: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median CPU and wall time of each callable, run in turn ``repeats`` times."""
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    wall: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return ({k: statistics.median(v) for k, v in cpu.items()}, {k: statistics.median(v) for k, v in wall.items()})


def bench(n: int, steps: int, repeats: int, tmp: Path) -> None:
    system = standard_system(n, seed=0)
    system.digest()
    compile_system(system)  # compile outside every clock (all contenders hit the same cache)
    base = RelaxConfig(solver="accelerated", steps=steps, step_size=0.05, eta0="uniform", tol=0.0)
    snap, full = base.evolve(snapshots=SnapshotConfig(every=EVERY)), base.evolve(snapshots=None)
    w0 = time.perf_counter()
    DuckDBStore(tmp / f"n{n}-new.duckdb").close()
    created = time.perf_counter() - w0

    def recorded(config, label):
        path = tmp / f"n{n}-{label}.duckdb"
        DuckDBStore(path).close()  # the file exists before the clock starts, as a user's runs.duckdb does

        def run():
            store = DuckDBStore(path)
            relax(system, config, store=store)
            store.close()
        return run

    cpu, wall = interleaved({"off": lambda: relax(system, base.evolve(snapshots=None), store=NullStore()),
                             "snapshots": recorded(snap, "snap"), "every step": recorded(full, "full")}, repeats)
    for label, t in (("CPU", cpu), ("wall", wall)):
        ratio = t["snapshots"] / t["off"]
        print(f"N={n:>9,}, {steps} steps, {label:4s}: off {t['off'] * 1e3:9.1f} ms | snapshots k={EVERY} "
              f"{t['snapshots'] * 1e3:9.1f} ms | ratio {ratio:5.2f}x {verdict(ratio, 1.15)} | "
              f"(every step {t['every step'] / t['off']:5.2f}x)")
    print(f"{'':11s}a new store file (tables, views) costs {created * 1e3:.0f} ms once, not counted above")

    path = tmp / f"n{n}-replay.duckdb"
    with DuckDBStore(path) as store:
        run_snap = relax(system, snap, store=store).run_id
        run_full = relax(system, full, store=store).run_id
    # The unrecorded step farthest from its snapshot: k − 2 steps after it (the step before the next snapshot has a frame).
    base = (steps - 1) // EVERY * EVERY
    step = base + EVERY - 2 if base + EVERY - 2 < steps else base - 2
    rerun_steps = step % EVERY
    per_step = wall["off"] / steps  # replay is timed in wall time: so are the steps it re-runs
    times = []
    with DuckDBStore(path) as store:
        want = replay(store, run_full, step).eta
        w0 = time.perf_counter()
        replay(store, run_snap, step)  # the first replay of a run in a process decodes its System (kept for the next)
        cold = time.perf_counter() - w0
        for _ in range(repeats):
            w0 = time.perf_counter()
            got = replay(store, run_snap, step)
            times.append(time.perf_counter() - w0)
        assert got.eta.tobytes() == want.tobytes(), "the replayed η differs from the run recorded every step"
        w0 = time.perf_counter()
        replay(store, run_snap, step - rerun_steps)
        recorded_step = time.perf_counter() - w0
    t = statistics.median(times)
    budget = 0.020 + rerun_steps * per_step
    print(f"N={n:>9,}: replay of step {step} ({rerun_steps} steps after a snapshot) {t * 1e3:8.1f} ms, bit for bit "
          f"| budget 20 ms + {rerun_steps} × {per_step * 1e3:.1f} ms = {budget * 1e3:.1f} ms | "
          f"{'PASS' if t <= budget else 'FAIL'} | (a recorded step: {recorded_step * 1e3:.1f} ms; the run's first "
          f"replay in a process, decoding its System: {cold * 1e3:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench(n, args.steps, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
