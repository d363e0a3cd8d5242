"""The process a crash trial kills: relax a few-thousand-module System into a store file, announcing acknowledgements.

``python -u crash_child.py serve`` imports everything once and prints ``ready``;
then each stdin line ``run PATH RUNS`` forks a child that opens the store at
PATH and relaxes :func:`system` under :data:`CONFIG` with seed :data:`SEED`,
``RUNS`` times. The server prints ``pid N`` after each fork and ``exit N STATUS``
once it has reaped the child; the child prints ``ack RUN_ID SEQ`` from a hook
for every event whose hook fired (that is, every *acknowledged* event: its
batch was committed) and ``done`` when it has closed the store. Forking from a
warm server keeps each trial's cost to the relaxation itself.
"""

from __future__ import annotations

import os
import sys

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import (
    GateBenefitCoupling,
    GateModule,
    RelaxConfig,
    System,
    standard_system,
)
from complexity_from_constraints.events import hooks
from complexity_from_constraints.projectors import relax

CONFIG = RelaxConfig(steps=25, step_size=0.05)
SEED = 3
FLUSH_EVERY = 3  # small batches: many commits for a kill to land between (or inside)


def system(modules: int = 2000, gates: int = 12) -> System:
    """``standard_system(modules)`` plus closed gates whose predicted benefits open them at different steps."""
    base = standard_system(modules, seed=5)
    gate_modules = [GateModule(id=f"gate{k}", gain=0.0, cost=0.1, k=10.0, a=0.1, b=0.1) for k in range(gates)]
    benefits = [GateBenefitCoupling(id=f"benefit{k}", i=f"gate{k}", j=base.modules[k].id, delta=0.3 + 0.05 * k)
                for k in range(gates)]
    return System(id="crash", modules=[*base.modules, *gate_modules], couplings=[*base.couplings, *benefits])


def child(path: str, runs: int) -> None:
    def ack(run_id, event, seq):
        sys.stdout.write(f"ack {run_id} {seq}\n")
        sys.stdout.flush()

    connected = [(sig, ack) for sig in hooks.SIGNALS.values()]
    for sig, fn in connected:
        sig.connect(fn)
    s = system()
    with DuckDBStore(path) as store:
        for _ in range(runs):
            relax(s, CONFIG, seed=SEED, store=store, flush_every=FLUSH_EVERY)
    print("done", flush=True)


def serve() -> None:
    system()  # warm every import and cache before the first fork
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            return
        _, path, runs = words
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                child(path, int(runs))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the trial
                print(f"error {type(exc).__name__}: {exc}", flush=True)
                code = 1
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {status}", flush=True)


if __name__ == "__main__":
    serve()
