"""Relaxation throughput on the standard problem family.

For N = 10^3, 10^4, 10^5 (edit SIZES or pass --sizes): 100 projected-gradient
steps with recording off (NullStore) against a minimal hand-written numpy
projected-gradient loop over the same arrays, timed in the same process; then,
at N = 10^4 and 200 steps, every η recorded to a DuckDB file against recording
off. Medians of --repeats runs.

Per-step time of ``relax`` is (T(steps) − T(0)) / steps, so the one-off cost of
compiling the System and writing RunStarted is not charged to the steps; the
recording comparison uses total wall time (relax + closing the store).

    python bench/relax_throughput.py [--sizes 1000 10000 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import RelaxConfig, standard_system
from complexity_from_constraints.events import NullStore
from complexity_from_constraints.projectors import compile_system, relax


def minimal_loop(system, eta0: np.ndarray, steps: int, alpha: float) -> np.ndarray:
    """The baseline: η ← clip(η − α∇𝓕, 0, 1) written by hand over plain arrays.

    Gradient only (no energy, no acceptance test, no events), constants folded,
    one scatter-add for all edges, in-place updates: as lean as numpy allows.
    """
    cs = compile_system(system)
    (landau,) = cs.modules
    a2, b4, h = 2 * landau.params["a"], 4 * landau.params["b"], landau.params["h"]
    groups = {g.cls.__name__: g for g in cs.couplings}
    q, hg = groups["QuadraticCoupling"], groups["DirectedHingeCoupling"]
    qi, qj, qw2, hi, hj, hw2 = q.i, q.j, 2 * q.weight, hg.i, hg.j, 2 * hg.weight
    n = cs.n
    idx = np.concatenate([qi, qj, hi, hj])
    eta = eta0.copy()
    for _ in range(steps):
        g = eta * (a2 + b4 * eta * eta) - h
        dq = qw2 * (eta[qi] - eta[qj])
        dh = hw2 * np.maximum(eta[hj] - eta[hi], 0.0)
        g += np.bincount(idx, np.concatenate([dq, -dq, -dh, dh]), n)
        g *= alpha
        np.subtract(eta, g, out=eta)
        np.clip(eta, 0.0, 1.0, out=eta)
    return eta


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(n: int, steps: int, repeats: int) -> None:
    system = standard_system(n, seed=0)
    system.digest()  # computed once per System; not a per-run cost
    cfg = RelaxConfig(steps=steps, step_size=0.05, eta0="uniform", tol=0.0)
    eta0 = np.random.default_rng(0).uniform(0.0, 1.0, n)
    t_min = timed(lambda: minimal_loop(system, eta0, steps, 0.05), repeats) / steps
    t_full = timed(lambda: relax(system, cfg, store=NullStore()), repeats)
    t_zero = timed(lambda: relax(system, cfg.evolve(steps=0), store=NullStore()), repeats)
    t_ours = (t_full - t_zero) / steps
    print(f"N={n:>7}: minimal loop {t_min * 1e3:8.3f} ms/step | relax, recording off {t_ours * 1e3:8.3f} ms/step "
          f"| ratio {t_ours / t_min:5.2f}x (target <= 1.5x) | setup {t_zero * 1e3:7.1f} ms")


def recording(n: int, steps: int, repeats: int) -> None:
    system = standard_system(n, seed=0)
    system.digest()
    cfg = RelaxConfig(steps=steps, step_size=0.05, eta0="uniform", tol=0.0)
    t_off = timed(lambda: relax(system, cfg, store=NullStore()), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def recorded():
            store = DuckDBStore(Path(tmp) / f"bench-{next(counter)}.duckdb")
            t0 = time.perf_counter()
            relax(system, cfg, store=store)
            store.close()
            return time.perf_counter() - t0

        t_on = statistics.median(recorded() for _ in range(repeats))
        size = sum(p.stat().st_size for p in Path(tmp).glob("bench-0.duckdb*")) / 2**20
    print(f"N={n:>7}, {steps} steps: recording off {t_off * 1e3:8.1f} ms | every η to DuckDB {t_on * 1e3:8.1f} ms "
          f"| ratio {t_on / t_off:5.2f}x (target <= 1.5x) | file {size:.1f} MiB for {n * (steps + 1):,} η values")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--record-n", type=int, default=10**4)
    ap.add_argument("--record-steps", type=int, default=200)
    args = ap.parse_args()
    print("relax throughput, standard problem family (medians of", args.repeats, "runs)")
    for n in args.sizes:
        throughput(n, args.steps, args.repeats)
    recording(args.record_n, args.record_steps, args.repeats)


if __name__ == "__main__":
    main()
