"""Reliability targets of the event store, each printed with PASS or FAIL.

1. kill -9 × --kills (default 100): a child relaxing a 2000-module System with
   gates into one file is killed with SIGKILL at seeded random moments; after
   each kill: 0 acknowledged events lost, 0 torn batches, 0 torn steps, 0 bad
   replays, and the file reopens (read-only and read-write) every time.
2. Every damaged-file case of ``tests/reliability/corpus.py``: its typed error,
   the folder's bytes unchanged, the file released at once.
3. Two concurrent ``relax`` calls with the same System, config and seed into
   one store × --pairs (default 100): 0 mixed runs (each run holds exactly one
   computation's events, the ids differ).
4. --fuzz (default 5,000) fuzzed run files (``tests/reliability/test_fuzz.py``):
   0 untyped exceptions, 0 committed runs that fail to read back, 0 changes to
   other runs.

    python bench/reliability.py [--kills 100] [--pairs 100] [--fuzz 5000] [--seed 7]

The trials reuse the test suite's drivers (``tests/reliability``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reliability"))

from corpus import CASES, check, make_store, skipped  # noqa: E402
from trials import run_trials  # noqa: E402

from complexity_from_constraints.adapters import DuckDBStore  # noqa: E402
from complexity_from_constraints.entities import RelaxConfig, demo_system  # noqa: E402
from complexity_from_constraints.events import InMemoryStore  # noqa: E402
from complexity_from_constraints.projectors import relax  # noqa: E402


def line(ok: bool, target: str, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {target:<58} {detail}", flush=True)
    return ok


def kills(n: int, seed: int) -> list[bool]:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        findings, trials = run_trials(Path(folder), n, seed)
    killed = sum(t.killed for t in trials)
    acked = sum(sum(s + 1 for s in t.acked.values()) for t in trials if t.killed)
    spent = f"({killed} of {n} kills hit a live child, {acked} events acknowledged before them, " \
            f"{time.perf_counter() - start:.0f} s)"
    results = [
        line(findings.lost == 0, f"kill -9 x {n}: acknowledged events lost = 0", f"lost {findings.lost} {spent}"),
        line(findings.torn_batches == 0, f"kill -9 x {n}: torn batches = 0", f"torn {findings.torn_batches}"),
        line(findings.torn_steps == 0, f"kill -9 x {n}: torn steps = 0", f"torn {findings.torn_steps}"),
        line(findings.bad_replays == 0, f"kill -9 x {n}: every stored step replays", f"bad {findings.bad_replays}"),
        line(findings.reopen_failures == 0, f"kill -9 x {n}: {n} files reopen",
             f"{n - findings.reopen_failures} of {n} reopened"),
    ]
    for problem in findings.problems[:10]:
        print(f"      {problem}")
    return results


def damaged() -> list[bool]:
    results = []
    with tempfile.TemporaryDirectory() as root:
        base = make_store(Path(root) / "base.duckdb")
        for k, case in enumerate(CASES):
            folder = Path(root) / f"case{k}"
            folder.mkdir()
            reason = skipped(case, folder)
            if reason:
                print(f"SKIP  damaged file: {case.name:<44} {reason}")
                continue
            problem = check(case, base, folder)
            results.append(line(problem is None, f"damaged file: {case.name}",
                                problem or f"{case.error.__name__}, bytes unchanged, released"))
    return results


def pairs(n: int) -> list[bool]:
    system, config = demo_system(0), RelaxConfig(steps=30)
    ref_store = InMemoryStore()
    ref = relax(system, config, seed=1, store=ref_store)
    expected = [r.event for r in ref_store.read(ref.run_id)]
    mixed = failed = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, DuckDBStore(Path(folder) / "pairs.duckdb") as store:
        for _ in range(n):
            barrier, out = threading.Barrier(2), []

            def one():
                barrier.wait()
                try:
                    out.append(relax(system, config, seed=1, store=store, flush_every=8).run_id)
                except Exception:  # noqa: BLE001 - counted
                    out.append(None)

            threads = [threading.Thread(target=one) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if None in out or len(set(out)) != 2:
                failed += 1
                continue
            mixed += sum([r.event for r in store.read(run_id)] != expected for run_id in out)
    detail = f"mixed {mixed}, failed calls {failed} ({time.perf_counter() - start:.0f} s)"
    return [line(mixed == 0 and failed == 0, f"same System/config/seed, 2 threads x {n}: mixed runs = 0", detail)]


def fuzz(n: int) -> list[bool]:
    from hypothesis import HealthCheck, given, settings

    from test_fuzz import check_one, fuzz_store, run_files

    counts = {"refused": 0, "recorded": 0, "untyped": 0, "unreadable": 0}
    start = time.perf_counter()
    store = fuzz_store()

    @settings(max_examples=n, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(data=run_files())
    def one(data):
        try:
            counts[check_one(store, data)] += 1
        except AssertionError:
            counts["unreadable"] += 1
        except Exception:  # noqa: BLE001 - the count is the point
            counts["untyped"] += 1

    one()
    store.close()
    detail = (f"{counts['refused']} refused with a typed error, {counts['recorded']} recorded and read back "
              f"({time.perf_counter() - start:.0f} s)")
    return [line(counts["untyped"] == 0, f"{n} fuzzed inputs: untyped exceptions = 0", f"{counts['untyped']}; {detail}"),
            line(counts["unreadable"] == 0, f"{n} fuzzed inputs: unreadable runs or changed others = 0",
                 str(counts["unreadable"]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--fuzz", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    results = kills(args.kills, args.seed) + damaged() + pairs(args.pairs) + fuzz(args.fuzz)
    print(f"{sum(results)} of {len(results)} targets pass")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
