"""Relaxation throughput on the standard problem family, against the leanest numpy we can write.

Two comparisons, each timed as someone who wants the baseline to win would run it:

1. **Per step, recording off**: ``relax`` (projected gradient, NullStore) against a
   minimal hand-written numpy loop over the same arrays that, like ours, evaluates
   the energy and the gradient at every step (constants folded, one gather per
   endpoint, one scatter-add, in-place updates). The baseline's arrays are built
   outside its clock. Ours is ``(T(steps) − T(0)) / steps`` with a warm compile
   cache (excluding compile), and ``T(steps) / steps`` from a cold cache
   (including compile and RunStarted); the baseline's ``including`` adds its own
   array extraction. Target: ≤ 1.3× the minimal loop at N ≥ 10⁴.
2. **The step kernel**: ``energy_and_gradient`` against a fused numpy kernel (the
   minimal loop's body) on the same compiled arrays, for ``--kernel-sizes``
   (10⁵ and 10⁶ by default; the standard family as array entities,
   ``standard_array_system``, which compiles to the arrays of ``standard_system``
   in seconds rather than the minute a 10⁶-entity System needs).

What recording costs is ``bench/recording.py``'s (open + relax + close against recording off, with
its targets), and snapshot mode ``bench/snapshot.py``'s.

Every figure is CPU time (``time.process_time``, all threads of this process),
the median of ``--repeats`` runs, the contenders interleaved in one process, so
that other load on the machine inflates both sides alike. BLAS and OpenMP are set
to one thread for everyone before numpy is imported.

    python bench/relax_throughput.py [--sizes 1000 10000 100000] [--kernel-sizes 100000 1000000] [--repeats 5]
    python bench/relax_throughput.py --sizes 1000000 --repeats 3     # the 10^6 target (about 3 minutes more)
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one BLAS thread for every contender

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from complexity_from_constraints.entities import (  # noqa: E402
    DirectedHingeCoupling,
    QuadraticCoupling,
    RelaxConfig,
    standard_array_system,
    standard_system,
)
from complexity_from_constraints.events import NullStore  # noqa: E402
from complexity_from_constraints.projectors import (  # noqa: E402
    CompiledSystem,
    compile_system,
    energy_and_gradient,
    relax,
)
from complexity_from_constraints.projectors._compile import clear_compile_cache  # noqa: E402

clock = time.process_time


class Lean:
    """The standard family's arrays with every constant folded: what the minimal loop reads."""

    def __init__(self, cs: CompiledSystem):
        (landau,) = cs.modules
        w = np.asarray(landau.weight)
        a, b, h = (w * np.asarray(landau.params[p]) for p in ("a", "b", "h"))
        self.a, self.b, self.h, self.a2, self.b4 = a, b, h, 2 * a, 4 * b
        groups = {g.cls: g for g in cs.couplings}
        q, hg = groups[QuadraticCoupling], groups[DirectedHingeCoupling]
        self.qi, self.qj, self.qw, self.qw2 = q.i, q.j, np.asarray(q.weight), 2 * np.asarray(q.weight)
        self.hi, self.hj, self.hw, self.hw2 = hg.i, hg.j, np.asarray(hg.weight), 2 * np.asarray(hg.weight)
        self.index = np.concatenate([self.qi, self.qj, self.hi, self.hj])
        self.nq = len(self.qi)
        self.values = np.empty(len(self.index))
        self.n = cs.n

    def energy_and_gradient(self, eta: np.ndarray) -> tuple[float, np.ndarray]:
        """𝓕 and ∇𝓕 fused: each term's energy from the same temporaries as its gradient."""
        e2 = eta * eta
        energy = float(np.dot(e2, self.a + self.b * e2) - np.dot(self.h, eta))
        grad = eta * (self.a2 + self.b4 * e2)
        grad -= self.h
        d = np.take(eta, self.qi)
        d -= np.take(eta, self.qj)
        wd = self.qw2 * d
        gap = np.take(eta, self.hj)
        gap -= np.take(eta, self.hi)
        np.maximum(gap, 0.0, out=gap)
        wg = self.hw2 * gap
        energy += 0.5 * (float(np.dot(wd, d)) + float(np.dot(wg, gap)))
        v, nq = self.values, self.nq
        v[:nq] = wd
        np.negative(wd, out=v[nq:2 * nq])
        nh = len(wg)
        np.negative(wg, out=v[2 * nq:2 * nq + nh])
        v[2 * nq + nh:] = wg
        grad += np.bincount(self.index, v, self.n)
        return energy, grad


def minimal_loop(lean: Lean, eta0: np.ndarray, steps: int, alpha: float) -> tuple[np.ndarray, float]:
    """η ← clip(η − α∇𝓕, 0, 1), evaluating 𝓕 and ∇𝓕 once per step (as ``relax`` does) and nothing else."""
    eta = eta0.copy()
    energy = 0.0
    for _ in range(steps):
        energy, g = lean.energy_and_gradient(eta)
        g *= alpha
        np.subtract(eta, g, out=eta)
        np.clip(eta, 0.0, 1.0, out=eta)
    return eta, energy


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median CPU time of each callable, run in turn ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def verdict(ratio: float, target: float) -> str:
    return f"{'PASS' if ratio <= target else 'FAIL'} (target <= {target:g}x)"


def throughput(n: int, steps: int, repeats: int) -> None:
    system = standard_system(n, seed=0)
    system.digest()  # computed once per System (RunStarted needs it); not a per-run cost
    cfg = RelaxConfig(steps=steps, step_size=0.05, eta0="uniform", tol=0.0)
    zero = cfg.evolve(steps=0)
    eta0 = np.random.default_rng(0).uniform(0.0, 1.0, n)
    lean = Lean(compile_system(system))

    def cold_relax():
        clear_compile_cache()
        relax(system, cfg, store=NullStore())

    def lean_with_arrays():
        clear_compile_cache()
        minimal_loop(Lean(compile_system(system)), eta0, steps, 0.05)

    t = interleaved({
        "minimal": lambda: minimal_loop(lean, eta0, steps, 0.05),
        "relax": lambda: relax(system, cfg, store=NullStore()),
        "relax0": lambda: relax(system, zero, store=NullStore()),
        "cold": cold_relax,
        "minimal+compile": lean_with_arrays,
    }, repeats)
    compile_system(system)  # leave the cache warm for the next size's neighbours
    ours, base = (t["relax"] - t["relax0"]) / steps, t["minimal"] / steps
    ours_c, base_c = t["cold"] / steps, t["minimal+compile"] / steps
    line = (f"N={n:>8,}: minimal loop {base * 1e3:8.3f} ms/step | relax {ours * 1e3:8.3f} ms/step | "
            f"ratio {ours / base:5.2f}x")
    if n >= 10**4:
        line += " " + verdict(ours / base, 1.3)
    print(line)
    print(f"{'':11s}including compile ({steps} steps): minimal {base_c * 1e3:8.3f} ms/step | relax {ours_c * 1e3:8.3f} "
          f"ms/step | ratio {ours_c / base_c:5.2f}x | relax(steps=0) warm {t['relax0'] * 1e3:6.1f} ms")


def kernel(n: int, repeats: int, calls: int) -> None:
    cs = compile_system(standard_array_system(n))
    lean = Lean(cs)
    eta = np.random.default_rng(2).uniform(0.0, 1.0, n)
    e_ours, g_ours = energy_and_gradient(cs, eta)
    e_lean, g_lean = lean.energy_and_gradient(eta)
    assert abs(e_ours - e_lean) <= 1e-9 * abs(e_ours) and np.allclose(g_ours, g_lean, rtol=1e-12, atol=1e-12)

    def many(fn):
        return lambda: [fn(eta) for _ in range(calls)]

    t = interleaved({"fused": many(lean.energy_and_gradient), "ours": many(lambda x: energy_and_gradient(cs, x))},
                    repeats)
    print(f"N={n:>9,}: fused numpy kernel {t['fused'] / calls * 1e3:8.3f} ms | energy_and_gradient "
          f"{t['ours'] / calls * 1e3:8.3f} ms | ratio {t['ours'] / t['fused']:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10**3, 10**4, 10**5])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kernel-sizes", type=int, nargs="*", default=[10**5, 10**6])
    ap.add_argument("--kernel-calls", type=int, default=10)
    args = ap.parse_args()
    print(f"CPU time (process_time), medians of {args.repeats}, contenders interleaved; "
          f"OPENBLAS/OMP/MKL_NUM_THREADS=1 for everyone; numpy {np.__version__}")
    print(f"1. per step, recording off, projected gradient, {args.steps} steps")
    for n in args.sizes:
        throughput(n, args.steps, args.repeats)
    if args.kernel_sizes:
        print(f"2. one energy_and_gradient call (mean of {args.kernel_calls} calls per repeat)")
        for n in args.kernel_sizes:
            kernel(n, args.repeats, args.kernel_calls)


if __name__ == "__main__":
    main()
