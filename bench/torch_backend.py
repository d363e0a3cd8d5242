"""The torch backend against numpy on the standard problem family: time per step and peak memory.

For each N in --sizes (default 10^4 10^5) and each configuration (numpy, torch
on the CPU, torch on CUDA when a GPU is present; float64 unless --dtype), one
subprocess builds ``standard_system(N, seed=0)`` and then:

- time per step: ``relax`` with recording off (``events.NullStore``),
  per-step = (T(steps) − T(0)) / steps with medians of --repeats runs, so
  compiling the System and the first device synchronisation are not charged
  to the steps (a warm-up run comes first);
- peak memory of one ``relax`` of --steps steps (compile included): host peak
  RSS above the RSS before the run (Linux: the high-water mark is reset
  through /proc/self/clear_refs; elsewhere the ``resource.getrusage`` max-RSS
  delta, which misses peaks below the build's own), and on CUDA
  ``torch.cuda.max_memory_allocated``. tracemalloc is not used: it does not
  see torch's allocations.

The table gives each configuration's ratio to numpy at the same N (time < 1
means faster than numpy). Building ``standard_system(10**6)`` costs about 25 s
of Pydantic validation per configuration, so N = 10^6 is opt-in
(``--sizes 10000 100000 1000000``); N = 10^7 runs only where a GPU is present.

    python bench/torch_backend.py [--sizes 10000 100000] [--steps 50] [--repeats 3] [--dtype float64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(n: int, backend: str, device: str, dtype: str, steps: int, repeats: int) -> dict:
    """One configuration, in its own process: per-step time and peak memory."""
    from complexity_from_constraints.entities import RelaxConfig, standard_system
    from complexity_from_constraints.events import NullStore
    from complexity_from_constraints.projectors import relax
    from complexity_from_constraints.projectors._backend import make_backend

    system = standard_system(n, seed=0)
    system.digest()  # computed once per System; not a per-run cost
    be = make_backend(backend, device=device, dtype=dtype)  # imports torch (and starts CUDA) before measuring
    cuda = backend == "torch" and be.device.type == "cuda"  # type: ignore[attr-defined]
    sync = be.xp.cuda.synchronize if cuda else (lambda: None)
    cfg = RelaxConfig(steps=steps, step_size=0.05, eta0="uniform", tol=0.0)
    zero = cfg.evolve(steps=0)

    relax(system, zero, store=NullStore(), backend=be)  # warm-up: lazy initialisation, kernels
    sync()
    exact = _reset_hwm()
    rss0 = _rss_kib() if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        be.xp.cuda.reset_peak_memory_stats()
    relax(system, cfg, store=NullStore(), backend=be)
    sync()
    peak = (_hwm_kib() or 0) if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu_mib = be.xp.cuda.max_memory_allocated() / 2**20 if cuda else None

    def timed(config) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            relax(system, config, store=NullStore(), backend=be)
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    t_full, t_zero = timed(cfg), timed(zero)
    return {"n": n, "backend": backend, "device": device, "dtype": dtype,
            "ms_per_step": max(t_full - t_zero, 0.0) / steps * 1e3, "setup_ms": t_zero * 1e3,
            "host_peak_mib": max(peak - rss0, 0) / 1024, "gpu_peak_mib": gpu_mib, "exact_rss": exact}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_config(n: int, backend: str, device: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), backend, device, "--dtype", args.dtype,
           "--steps", str(args.steps), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{backend}/{device} at N={n} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--child", nargs=3, metavar=("N", "BACKEND", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        n, backend, device = args.child
        print(json.dumps(child(int(n), backend, device, args.dtype, args.steps, args.repeats)))
        return

    cuda = _cuda_available()
    configs = [("numpy", "cpu")]
    if _has_torch():
        configs.append(("torch", "cpu"))
        if cuda:
            configs.append(("torch", "cuda"))
    else:
        print("torch is not installed: pip install torch (numpy only)")
    threads = ""
    if _has_torch():
        import torch

        threads = f", torch {torch.__version__} with {torch.get_num_threads()} CPU threads"
    print(f"standard_system(N), {args.steps} steps, {args.dtype}, recording off, medians of {args.repeats} runs"
          f"{threads}{', GPU: ' + torch.cuda.get_device_name() if cuda else ', no GPU'}")
    header = f"{'N':>9} {'backend':<11} {'ms/step':>10} {'vs numpy':>9} {'setup ms':>10} {'host peak MiB':>14} {'vs numpy':>9} {'GPU peak MiB':>13}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        if n >= 10**7 and not cuda:
            print(f"{n:>9} skipped: N >= 10^7 runs only where a GPU is present")
            continue
        base = None
        for backend, device in configs:
            r = run_config(n, backend, device, args)
            base = base or r
            t_ratio = r["ms_per_step"] / base["ms_per_step"] if base["ms_per_step"] else float("nan")
            m_ratio = r["host_peak_mib"] / base["host_peak_mib"] if base["host_peak_mib"] else float("nan")
            gpu = f"{r['gpu_peak_mib']:13.1f}" if r["gpu_peak_mib"] is not None else f"{'-':>13}"
            name = backend if backend == "numpy" else f"torch/{device}"
            print(f"{n:>9} {name:<11} {r['ms_per_step']:10.3f} {t_ratio:8.2f}x {r['setup_ms']:10.1f} "
                  f"{r['host_peak_mib']:14.1f} {m_ratio:8.2f}x {gpu}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
