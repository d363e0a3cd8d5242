"""Query time of ``v_entity_energy``: every module's local energy at every recorded step.

One run of N modules (default 1,000: Landau wells, gates, sequence, compression and
Legendre-polynomial modules in equal shares) relaxed for S steps (default 200) with η
recorded at every step, written to a DuckDB file; then the median over --repeats of

- ``sum``: ``SELECT count(*), sum(energy) FROM v_entity_energy`` (the view evaluated in full);
- ``fetch``: ``SELECT * FROM v_entity_energy`` into a Polars frame (N·(S+1) rows).

``--compare FILE`` also times another definition of the view (e.g. an older
``v_entity_energy.sql``, saved with ``git show REV:adapters/sql/v_entity_energy.sql``)
as a temporary view on the same connection, alternating with the packaged one,
so both see the same load on the machine; it checks that the two agree.

    python bench/entity_energy_view.py [--modules 1000] [--steps 200] [--repeats 5] [--compare FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import RelaxConfig, System
from complexity_from_constraints.projectors import relax


def mixed_system(n: int, seed: int = 0) -> System:
    """N modules, one fifth of each of five kinds, chained by quadratic couplings."""
    rng = np.random.default_rng(seed)
    modules = []
    for k in range(n):
        u = float(rng.uniform(0.1, 1.0))
        modules.append([
            {"kind": "landau", "a": -u, "b": 1.0, "h": 0.1 * u},
            {"kind": "gate", "a": 0.1 * u, "b": 0.1},
            {"kind": "sequence", "alpha": u, "beta": 0.5},
            {"kind": "compression", "a": u, "b": 0.2, "target": 0.4},
            {"kind": "polynomial", "coeffs": [0.0, 0.1 * u, 0.5, 0.0, 0.2]},
        ][k % 5] | {"id": f"m{k}", "weight": 1.0 + u})
    couplings = [{"kind": "quadratic", "id": f"c{k}", "i": f"m{k}", "j": f"m{k + 1}", "weight": 0.2}
                 for k in range(n - 1)]
    return System.model_validate({"id": f"mixed-{n}", "modules": modules, "couplings": couplings})


def timed(store: DuckDBStore, sql: str) -> float:
    start = time.perf_counter()
    store.query(sql)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, default=None, help="another definition of the view, timed alongside")
    args = parser.parse_args()
    views = {"v_entity_energy": "v_entity_energy"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        with DuckDBStore(path) as store:
            relax(mixed_system(args.modules), RelaxConfig(steps=args.steps, step_size=0.01), store=store)
        with DuckDBStore(path, read_only=True) as store:
            if args.compare is not None:
                store.query(f"CREATE TEMP VIEW compared AS {args.compare.read_text()}")
                views[str(args.compare)] = "compared"
                gap = store.query("SELECT max(abs(a.energy - b.energy)) AS gap, count(*) AS n FROM v_entity_energy AS a "
                                  "JOIN compared AS b USING (run_id, step, entity_id)").row(0)
                print(f"largest |difference| between the two views over {gap[1]} rows: {gap[0]:.3g}")
            rows, nulls = store.query("SELECT count(*) AS n, count(*) FILTER (WHERE energy IS NULL) AS nulls "
                                      "FROM v_entity_energy").row(0)
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.repeats):
                for label, view in views.items():
                    for what, sql in (("sum", f"SELECT count(*), sum(energy) FROM {view}"),
                                      ("fetch", f"SELECT * FROM {view}")):
                        times.setdefault((label, what), []).append(timed(store, sql))
    print(f"v_entity_energy over {args.modules} modules x {args.steps} steps: {rows} rows ({nulls} NULL); "
          f"median of {args.repeats}")
    for (label, what), ts in times.items():
        print(f"  {label:40s} {what:5s} {statistics.median(ts) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
