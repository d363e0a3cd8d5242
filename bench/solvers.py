"""Every solver against scipy's L-BFGS-B on the standard problem family.

For each preset, the coordinator's event generator runs on
``standard_system(N, seed)`` (N = 10^4 by default) and the wall time of
every accepted step is noted (events are produced, nothing is stored). The
target is the lowest energy any run finds; each preset's time to come within
``--rtol`` (relative, default 1e-6) of it is printed next to plain
``scipy.optimize.minimize(method="L-BFGS-B")`` on the same energy and
gradient, timed in the same process. Solvers that settle in a different local
minimum never reach the target and say so.

Times are medians over ``--repeats`` runs (the trajectories are identical;
only the clock varies).

    python bench/solvers.py [--n 10000] [--seed 0] [--steps 3000] [--rtol 1e-6] [--repeats 3] [--only accelerated lbfgsb]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import minimize

from complexity_from_constraints.entities import RelaxConfig, StabilityConfig, standard_system
from complexity_from_constraints.events import StepCommitted
from complexity_from_constraints.projectors import compile_system, energy_and_gradient, initial_eta, relaxation

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


def trace_of(system, preset: dict, steps: int, seed: int) -> tuple[list[tuple[float, float]], str]:
    """(seconds since start, energy) after step 0 and each accepted step, and the final status."""
    config = RelaxConfig(steps=steps, tol=0.0, **preset)
    t0 = time.perf_counter()
    loop = relaxation(compile_system(system), config, seed)
    trace = []
    try:
        while True:
            event = next(loop)
            if isinstance(event, StepCommitted) and event.accepted:
                trace.append((time.perf_counter() - t0, event.energy))
    except StopIteration as stop:
        return trace, stop.value.status


def scipy_trace(system, seed: int, steps: int) -> list[tuple[float, float]]:
    """Plain scipy L-BFGS-B on the compiled energy: the reference, with nothing of ours but 𝓕 and ∇𝓕."""
    t0 = time.perf_counter()
    cs = compile_system(system)
    x0 = initial_eta(cs, RelaxConfig(), seed)
    trace = [(time.perf_counter() - t0, energy_and_gradient(cs, x0)[0])]

    def fun(x):
        return energy_and_gradient(cs, x)

    last = {}

    def fun_cached(x):
        e, g = fun(x)
        last["e"] = e
        return e, g

    minimize(fun_cached, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * cs.n,
             callback=lambda xk: trace.append((time.perf_counter() - t0, last["e"])),
             options={"maxiter": steps, "maxfun": 20 * steps, "ftol": 0.0, "gtol": 0.0})
    return trace


def median_trace(repeats: list[tuple[list[tuple[float, float]], str]]) -> tuple[list[tuple[float, float]], str]:
    """One trace whose times are the per-point medians of identical repeated runs."""
    traces = [tr for tr, _ in repeats]
    times = np.median(np.array([[t for t, _ in tr] for tr in traces]), axis=0)
    return [(float(t), e) for t, (_, e) in zip(times, traces[0])], repeats[0][1]


def time_to(trace: list[tuple[float, float]], target: float, rtol: float) -> float:
    bound = target + rtol * abs(target)
    return next((t for t, e in trace if e <= bound), math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="preset names (default: all)")
    args = parser.parse_args()

    system = standard_system(args.n, args.seed)
    runs = {"scipy L-BFGS-B (plain)": median_trace([(scipy_trace(system, args.seed, args.steps), "-")
                                                     for _ in range(args.repeats)])}
    for name, preset in PRESETS.items():
        if args.only and name not in args.only:
            continue
        runs[name] = median_trace([trace_of(system, preset, args.steps, args.seed) for _ in range(args.repeats)])
    target = min(tr[-1][1] for tr, _ in runs.values())
    reference = time_to(runs["scipy L-BFGS-B (plain)"][0], target, args.rtol)
    print(f"standard_system({args.n}, seed={args.seed}); target = lowest energy found = {target:.12g}; "
          f"rtol {args.rtol:g}")
    print(f"{'solver':32s} {'final energy':>18s} {'accepted':>9s} {'status':>10s} {'to target (s)':>14s} {'÷ scipy':>8s}")
    for name, (trace, status) in runs.items():
        t = time_to(trace, target, args.rtol)
        ratio = t / reference if math.isfinite(t) else math.inf
        shown = f"{t:14.3f}" if math.isfinite(t) else f"{'not reached':>14s}"
        print(f"{name:32s} {trace[-1][1]:18.12g} {len(trace) - 1:9d} {status:>10s} {shown} {ratio:8.2f}")
    ours = min((time_to(tr, target, args.rtol), name) for name, (tr, _) in runs.items() if not name.startswith("scipy"))
    print(f"fastest of ours: {ours[1]} at {ours[0]:.3f} s = {ours[0] / reference:.2f}× plain L-BFGS-B "
          f"(target ≤ 1.00×)")


if __name__ == "__main__":
    main()
