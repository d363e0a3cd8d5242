"""What recording every η costs, how compact it is, and how fast a step replays, on the standard problem family.

For each N (projected gradient, ``--steps`` steps, every η recorded):

1. **Recording vs off**: ``open + relax + close`` into a DuckDB file against
   ``relax`` into a ``NullStore``, CPU time of every thread of this process
   (DuckDB's and the writer's included) and wall time, medians of
   ``--repeats``, the two interleaved. The store file exists before the clock
   starts, as a user's ``runs.duckdb`` does (creating a new file and its views
   is a once-per-file cost, printed apart). Targets: ≤ 2× at N = 10⁴, ≤ 1.5× at
   N ≥ 10⁵.
2. **Bytes per η value**: the growth of the store's used blocks (``PRAGMA
   database_size``, checkpointed) over ``--storage-runs`` more recorded runs
   (the store file has its first runs already, so fixed per-table blocks are
   not counted), divided by the η values they recorded; the file's growth (which
   includes blocks DuckDB freed and will reuse) and the η blobs alone are
   printed beside it. Target: ≤ 6, lossless (the last run is read back and
   compared bit for bit with an in-memory log).
3. **Replay of step k**: ``replay(store, run, k)`` for k spread over the run
   (7 steps apart, so every position in a chain comes up), median wall time; ``v_eta`` for one step against the
   ``eta_values`` view it reads. Targets: ≤ 20 ms at N = 10⁵, ≤ 150 ms at 10⁶.

BLAS and OpenMP run one thread. Building a System of 10⁶ entities takes about a
minute before anything is timed; run that size with ``--repeats 1`` or 3.

    python bench/recording.py [--sizes 10000 100000] [--steps 100] [--repeats 5]
    python bench/recording.py --sizes 1000000 --repeats 1
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from complexity_from_constraints.adapters import DuckDBStore  # noqa: E402
from complexity_from_constraints.entities import RelaxConfig, standard_system  # noqa: E402
from complexity_from_constraints.events import InMemoryStore, NullStore  # noqa: E402
from complexity_from_constraints.projectors import compile_system, relax, replay  # noqa: E402


def verdict(value: float, target: float, unit: str = "x") -> str:
    return f"{'PASS' if value <= target else 'FAIL'} (target <= {target:g}{unit})"


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}.wal")) if p.exists())


def bench(n: int, steps: int, repeats: int, folder: Path, storage_runs: int) -> None:
    t0 = time.perf_counter()
    system = standard_system(n, seed=0)
    system.digest()  # once per System; RunStarted needs it, not a per-run cost
    compile_system(system)
    config = RelaxConfig(steps=steps, step_size=0.05, eta0="uniform", tol=0.0, snapshots=None)  # every η, at any N
    print(f"N={n:>9,}: System built and compiled in {time.perf_counter() - t0:.1f} s (not timed below)")
    path = folder / f"runs-{n}.duckdb"
    c_new, w_new = timed(lambda: DuckDBStore(path).close())
    relax(system, config, store=NullStore())  # warm every cache once

    def recorded():
        store = DuckDBStore(path)
        relax(system, config, store=store)
        store.close()

    cpu: dict[str, list[float]] = {"off": [], "on": []}
    wall: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(repeats):
        for name, fn in (("off", lambda: relax(system, config, store=NullStore())), ("on", recorded)):
            c, w = timed(fn)
            cpu[name].append(c)
            wall[name].append(w)
    off, on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    w_off, w_on = statistics.median(wall["off"]), statistics.median(wall["on"])
    target = 2.0 if n < 10**5 else 1.5
    print(f"{'':11s}1. recording: off {off * 1e3:9.1f} ms | every η, open + relax + close {on * 1e3:9.1f} ms CPU | "
          f"ratio {on / off:5.2f}x {verdict(on / off, target)}")
    print(f"{'':14s}wall: off {w_off * 1e3:9.1f} ms | on {w_on * 1e3:9.1f} ms | ratio {w_on / w_off:5.2f}x "
          f"{verdict(w_on / w_off, target)} | a new store file (tables, views): {w_new * 1e3:.0f} ms once")

    # 2. bytes per η value: the store's used blocks and its file, before and after --storage-runs more runs
    def footprint() -> tuple[int, int]:
        with DuckDBStore(path, read_only=True) as reader:
            size = reader.query("SELECT * FROM pragma_database_size() WHERE database_name = current_database()").row(
                0, named=True)
        return size["used_blocks"] * size["block_size"], size_on_disk(path)

    with DuckDBStore(path) as store:
        store.checkpoint()
    used0, file0 = footprint()
    values = 0
    for _ in range(storage_runs):
        store = DuckDBStore(path)
        run = relax(system, config, store=store)
        store.close(checkpoint=True)
        values += n * (steps + 1)
    used1, file1 = footprint()
    store = DuckDBStore(path, read_only=True)
    frames = store.read(run.run_id, types=["EtaRecorded"])
    assert sum(r.event.eta.size for r in frames) == n * (steps + 1)
    blobs = store.query("SELECT sum(octet_length(b.data)) FROM eta_blocks AS b JOIN runs AS r USING (run_key) "
                        "WHERE r.run_id = ?", [run.run_id]).item() / (n * (steps + 1))
    memory = InMemoryStore()
    ref = relax(system, config, store=memory)
    exact = all(a.event.eta.tobytes() == b.event.eta.tobytes()
                for a, b in zip(frames, memory.read(ref.run_id, types=["EtaRecorded"])))
    per = (used1 - used0) / values
    print(f"{'':11s}2. storage over {storage_runs} runs: used blocks grew {per:5.2f} B per η value "
          f"{verdict(per, 6.0, ' B')} | the file {(file1 - file0) / values:5.2f} B (DuckDB keeps freed blocks for reuse) "
          f"| η blobs alone {blobs:5.2f} B | read back bit for bit: {exact}")

    # 3. replay of step k, each position in a chain
    ks = list(range(3, steps + 1, 7))  # 7 steps apart: every position in a chain comes up
    times = []
    for _ in range(max(1, min(repeats, 3))):
        for k in ks:
            _, w = timed(lambda k=k: replay(store, run.run_id, k))
            times.append(w)
    state = replay(store, run.run_id, steps // 2)
    assert state.eta.tobytes() == replay(memory, ref.run_id, steps // 2).eta.tobytes()
    replay_target = 0.020 if n <= 10**5 else 0.150
    med, worst = statistics.median(times), max(times)
    line = f"{'':11s}3. replay of step k (k = 3, 10, ..., {ks[-1]}): median {med * 1e3:7.1f} ms, slowest {worst * 1e3:7.1f} ms"
    if n >= 10**5:
        line += f" {verdict(med * 1e3, replay_target * 1e3, ' ms')}"
    print(line)
    key = store.query("SELECT run_key FROM runs WHERE run_id = ?", [run.run_id]).item()
    sqls = {"v_eta": ("SELECT count(*), sum(eta) FROM v_eta WHERE run_id = ? AND step = ?", [run.run_id, steps // 2]),
            "eta_values": ("SELECT count(*), sum(eta) FROM eta_values WHERE run_key = ? AND step = ?", [key, steps // 2])}
    t = {}
    for name, (sql, params) in sqls.items():
        store.query(sql, params)
        t[name] = statistics.median(timed(lambda sql=sql, params=params: store.query(sql, params))[1] for _ in range(3))
    print(f"{'':14s}one step in SQL: v_eta {t['v_eta'] * 1e3:7.1f} ms | the eta_values it reads "
          f"{t['eta_values'] * 1e3:7.1f} ms | ratio {t['v_eta'] / t['eta_values']:5.2f}x")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10**4, 10**5])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--storage-runs", type=int, default=3)
    args = ap.parse_args()
    print(f"recording, storage and replay; medians of {args.repeats}; {args.steps} steps of projected gradient; "
          f"OPENBLAS/OMP/MKL_NUM_THREADS=1; numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench(n, args.steps, args.repeats, Path(tmp), args.storage_runs)


if __name__ == "__main__":
    main()
