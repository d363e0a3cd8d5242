"""Every solver against a lean scipy L-BFGS-B on the standard problem family.

The reference is run as someone who wants it to win would run it:
``scipy.optimize.minimize(method="L-BFGS-B")`` on a lean numpy energy and
gradient of its own (the fused kernel of ``bench/relax_throughput.py``: constants
folded, one scatter-add), the box as numpy ``Bounds``, its arrays built outside
its clock, and one BLAS/OpenMP thread for everyone (set before numpy is
imported: on a machine with few cores the default thread pool costs L-BFGS-B
2-35x). It runs to convergence (``ftol = gtol = 0``, at most ``--steps``
iterations); **the target is the energy it ends at**, and every contender's
time is the CPU time until its energy first comes within ``--rtol`` (relative,
default 1e-6) of that target.

A second reference runs the same scipy call on ``energy_and_gradient`` (the
project's energy), so the table separates what our energy costs from what the
``lbfgsb`` wrapper and the coordinator add.

Each preset runs the coordinator's event generator (events are produced, none
is stored). Times are reported twice: excluding compile (the compile cache is
warm, the arrays of the lean reference are built before its clock starts) and
including it (the cache is cleared first; the reference pays for building its
arrays from the System, done with ``compile_system`` as the quickest way to read
them). A run stops at ``--steps`` steps or after ``--budget`` CPU seconds.

Target (issue 16): the fastest preset, including compile, within 1.0x of the
lean L-BFGS-B at N = 10^4 and 10^5. Solvers that settle in a different local
minimum never reach the target and say so.

Times are CPU time (``time.process_time``), medians over ``--repeats`` runs
(the trajectories are identical; only the clock varies), contenders interleaved.

    python bench/solvers.py [--n 10000] [--steps 1000] [--budget 2] [--repeats 3] [--only accelerated lbfgsb]
    python bench/solvers.py --n 100000 --budget 30 --only accelerated coordinate proximal lbfgsb   # the 10^5 target
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy (and scipy's BLAS) is imported, for every contender

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import Bounds, minimize  # noqa: E402

from complexity_from_constraints.entities import RelaxConfig, StabilityConfig, standard_system  # noqa: E402
from complexity_from_constraints.events import StepCommitted  # noqa: E402
from complexity_from_constraints.projectors import (  # noqa: E402
    compile_system,
    energy_and_gradient,
    initial_eta,
    relaxation,
)
from complexity_from_constraints.projectors._compile import clear_compile_cache  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relax_throughput import Lean  # noqa: E402

clock = time.process_time
REFERENCE = "scipy L-BFGS-B (lean)"
OUR_ENERGY = "scipy L-BFGS-B (our energy)"  # the same, on energy_and_gradient: what is the energy's share

PRESETS: dict[str, dict] = {
    "projected_gradient": dict(solver="projected_gradient", step_size=0.05),
    "projected_gradient+armijo": dict(solver="projected_gradient", line_search="armijo", step_size=1.0),
    "projected_gradient+stability": dict(solver="projected_gradient", step_size=10.0,
                                         stability=StabilityConfig(cap_fraction=0.99)),
    "accelerated": dict(solver="accelerated", step_size=1.0),
    "accelerated+stability": dict(solver="accelerated", step_size=10.0, stability=StabilityConfig(cap_fraction=0.99)),
    "coordinate": dict(solver="coordinate"),
    "adaptive": dict(solver="adaptive", line_search="armijo", step_size=1.0),
    "proximal": dict(solver="proximal", proximal={"tau": 0.2}),
    "proximal+star": dict(solver="proximal", proximal={"tau": 0.2, "block": "star"}),
    "admm": dict(solver="admm", admm={"rho": 1.0, "step_size": 0.1}),
    "lbfgsb": dict(solver="lbfgsb"),
}

Trace = list[tuple[float, float]]  # (CPU seconds since the clock started, energy)


def trace_of(system, preset: dict, steps: int, seed: int, budget: float, cold: bool) -> tuple[Trace, str]:
    """Energy after step 0 and each accepted step; ``cold``: the compile is inside the clock."""
    config = RelaxConfig(steps=steps, tol=0.0, **preset)
    if cold:
        clear_compile_cache()
    else:
        compile_system(system)
    t0 = clock()
    loop = relaxation(compile_system(system), config, seed)
    trace: Trace = []
    try:
        while True:
            event = next(loop)
            if isinstance(event, StepCommitted) and event.accepted:
                now = clock() - t0
                trace.append((now, event.energy))
                if now > budget:
                    loop.close()
                    return trace, "budget"
    except StopIteration as stop:
        return trace, stop.value.status


def scipy_trace(system, seed: int, steps: int, budget: float, cold: bool, ours: bool = False) -> tuple[Trace, str]:
    """Lean L-BFGS-B: its own fused energy and gradient (``ours``: ``energy_and_gradient``), numpy Bounds;
    ``cold``: building its arrays is timed."""
    if not cold:
        compile_system(system)
        t0 = clock()
    else:
        clear_compile_cache()
        t0 = clock()
    cs = compile_system(system)
    fun = (lambda x: energy_and_gradient(cs, x)) if ours else Lean(cs).energy_and_gradient
    x0 = initial_eta(cs, RelaxConfig(), seed)
    if not cold:
        t0 = clock()
    bounds = Bounds(np.zeros(cs.n), np.ones(cs.n))
    trace: Trace = [(clock() - t0, fun(x0)[0])]

    def callback(intermediate_result):
        trace.append((clock() - t0, float(intermediate_result.fun)))
        if trace[-1][0] > budget:
            raise StopIteration

    result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                      options={"maxiter": steps, "maxfun": 20 * steps, "ftol": 0.0, "gtol": 0.0})
    return trace, "budget" if trace[-1][0] > budget else ("converged" if result.success else "max_steps")


def median_trace(runs: list[tuple[Trace, str]]) -> tuple[Trace, str]:
    """One trace whose times are the per-point medians of identical repeated runs."""
    length = min(len(tr) for tr, _ in runs)  # a budget may cut repeats at different points
    times = np.median(np.array([[t for t, _ in tr[:length]] for tr, _ in runs]), axis=0)
    return [(float(t), e) for t, (_, e) in zip(times, runs[0][0][:length])], runs[0][1]


def time_to(trace: Trace, target: float, rtol: float) -> float:
    bound = target + rtol * abs(target)
    return next((t for t, e in trace if e <= bound), math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=2.0, help="CPU seconds per run before it is cut off")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="preset names (default: all)")
    args = parser.parse_args()

    system = standard_system(args.n, args.seed)
    system.digest()
    names = [name for name in PRESETS if not args.only or name in args.only]
    runs: dict[tuple[str, bool], list] = {}
    for _ in range(args.repeats):  # interleaved: every contender once per round
        for cold in (False, True):
            runs.setdefault((REFERENCE, cold), []).append(
                scipy_trace(system, args.seed, args.steps, args.budget, cold))
            runs.setdefault((OUR_ENERGY, cold), []).append(
                scipy_trace(system, args.seed, args.steps, args.budget, cold, ours=True))
            for name in names:
                runs.setdefault((name, cold), []).append(
                    trace_of(system, PRESETS[name], args.steps, args.seed, args.budget, cold))
    traces = {key: median_trace(value) for key, value in runs.items()}
    target = traces[(REFERENCE, False)][0][-1][1]
    reference = {cold: time_to(traces[(REFERENCE, cold)][0], target, args.rtol) for cold in (False, True)}
    print(f"standard_system({args.n}, seed={args.seed}); target = lean L-BFGS-B's final energy = {target:.12g}; "
          f"rtol {args.rtol:g}; CPU time, medians of {args.repeats}; OPENBLAS/OMP/MKL_NUM_THREADS=1 for everyone; "
          f"budget {args.budget:g} s, at most {args.steps} steps")
    print(f"{'solver':30s} {'final energy':>18s} {'accepted':>9s} {'status':>10s} "
          f"{'to target, excl. compile':>25s} {'incl. compile':>21s}")
    for name in [REFERENCE, OUR_ENERGY, *names]:
        trace, status = traces[(name, False)]
        cells = []
        for cold in (False, True):
            t = time_to(traces[(name, cold)][0], target, args.rtol)
            cells.append(f"{t:8.3f} s {t / reference[cold]:6.2f}x" if math.isfinite(t) else "not reached")
        print(f"{name:30s} {trace[-1][1]:18.12g} {len(trace) - 1:9d} {status:>10s} {cells[0]:>25s} {cells[1]:>21s}")
    for cold, label in ((True, "including compile"), (False, "excluding compile")):
        best = min(((time_to(traces[(name, cold)][0], target, args.rtol), name) for name in names),
                   default=(math.inf, "-"))
        ratio = best[0] / reference[cold]
        verdict = "PASS" if ratio <= 1.0 else "FAIL"
        shown = f"{best[0]:.3f} s = {ratio:.2f}x" if math.isfinite(best[0]) else "never"
        line = f"fastest of ours, {label}: {best[1]} at {shown} the lean L-BFGS-B ({reference[cold]:.3f} s)"
        if cold and args.n in (10**4, 10**5):
            line += f": {verdict} (target <= 1.00x at N = {args.n:,})"
        print(line)


if __name__ == "__main__":
    main()
