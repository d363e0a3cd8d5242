"""Seeded problem families used by benchmarks, studies and tests."""

from __future__ import annotations

import numpy as np

from ._arrays import CouplingArray, ModuleArray
from ._errors import InvalidEntityError
from ._system import System


def standard_system(n: int, seed: int = 0, *, edges_per_module: int = 3) -> System:
    """The standard problem family: N Landau modules on a ring plus long-range edges.

    a ~ U[−1, 1], b ~ U[0.5, 1.5], h ~ U[−0.2, 0.2]; M = 3N couplings: the
    ring (N edges) plus random long-range pairs, two thirds quadratic and one
    third directed hinge, weights w ~ U[0.1, 1]. Everything from one seed.

    >>> s = standard_system(10, seed=1)
    >>> (len(s.modules), len(s.couplings))
    (10, 30)
    """
    if n < 3:
        raise InvalidEntityError("standard_system", None, "n", n, "needs at least 3 modules")
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, n).tolist()
    b = rng.uniform(0.5, 1.5, n).tolist()
    h = rng.uniform(-0.2, 0.2, n).tolist()
    m = edges_per_module * n
    src = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    hop = np.concatenate([np.ones(n, np.int64), rng.integers(1, n, m - n)])  # never a self-loop
    dst = (src + hop) % n
    w = rng.uniform(0.1, 1.0, m).tolist()
    hinge = (rng.permutation(m) < m // 3).tolist()
    ids = [f"m{k}" for k in range(n)]
    kinds = ("quadratic", "directed_hinge")
    modules = [{"kind": "landau", "id": ids[k], "a": a[k], "b": b[k], "h": h[k]} for k in range(n)]
    couplings = [{"kind": kinds[hinge[e]], "id": f"c{e}", "i": ids[src[e]], "j": ids[dst[e]], "weight": w[e]}
                 for e in range(m)]
    return System.model_validate({"id": f"standard-{n}-{seed}", "modules": modules, "couplings": couplings})


def standard_array_system(n: int, seed: int = 0, *, edges_per_module: int = 3) -> System:
    """:func:`standard_system` as array-backed entities: the same numbers, the same compiled arrays.

    One :class:`ModuleArray` ``m`` of N Landau wells (module ``k`` is ``"m/k"``)
    and one :class:`CouplingArray` per coupling kind (``quadratic``,
    ``directed_hinge``), in the order the kinds first appear, so relaxing it
    gives the very energies of :func:`standard_system`'s run. Building it costs
    a few arrays, not N + M entities.

    >>> s = standard_array_system(10, seed=1)
    >>> (s.n_modules, s.n_couplings, s.module_ids[3])
    (10, 30, 'm/3')
    >>> from complexity_from_constraints.projectors import compile_system, energy
    >>> import numpy as np
    >>> eta = np.linspace(0, 1, 10)
    >>> energy(compile_system(s), eta) == energy(compile_system(standard_system(10, seed=1)), eta)
    True
    """
    if n < 3:
        raise InvalidEntityError("standard_system", None, "n", n, "needs at least 3 modules")
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    a, b, h = rng.uniform(-1.0, 1.0, n), rng.uniform(0.5, 1.5, n), rng.uniform(-0.2, 0.2, n)
    m = edges_per_module * n
    src = np.concatenate([np.arange(n), rng.integers(0, n, m - n)])
    hop = np.concatenate([np.ones(n, np.int64), rng.integers(1, n, m - n)])
    dst = (src + hop) % n
    w = rng.uniform(0.1, 1.0, m)
    hinge = rng.permutation(m) < m // 3
    kinds = ("quadratic", "directed_hinge")
    first = int(hinge[0])
    couplings = []
    for code in (first, 1 - first):
        pick = hinge == bool(code)
        if pick.any():
            couplings.append(CouplingArray(id=kinds[code], member_kind=kinds[code], i=src[pick], j=dst[pick],
                                           values={"weight": w[pick]}))
    lattice = ModuleArray(id="m", member_kind="landau", n=n, values={"a": a, "b": b, "h": h})
    return System(id=f"standard-{n}-{seed}", module_arrays=(lattice,), coupling_arrays=tuple(couplings))


def demo_system(seed: int = 0) -> System:
    """A small seeded system in which a predicted benefit pulls a closed gate open.

    Four Landau modules form a chain ``s0 → s1 → s2 → s3`` (quadratic
    agreement plus a directed hinge). Two hazard gates start closed
    (η₀ ≈ 0.27 < 0.5): ``repair`` has a gate-benefit coupling to ``s2`` whose
    predicted benefit Δ = 0.3 outweighs its opening cost, so relaxation opens
    it; ``idle`` has no benefit and stays closed.

    >>> s = demo_system(seed=0)
    >>> [m.id for m in s.modules]
    ['s0', 's1', 's2', 's3', 'repair', 'idle']
    """
    _check_seed(seed)
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, -0.2, 4).tolist()
    b = rng.uniform(0.8, 1.2, 4).tolist()
    modules: list[dict] = [{"kind": "landau", "id": f"s{k}", "a": a[k], "b": b[k], "eta0": 0.1 + 0.2 * k} for k in range(4)]
    modules += [{"kind": "gate", "id": "repair", "gain": 0.0, "cost": 0.1, "k": 10.0},
                {"kind": "gate", "id": "idle", "gain": 0.0, "cost": 0.1, "k": 10.0}]
    couplings = [{"kind": "quadratic", "id": f"q{k}", "i": f"s{k}", "j": f"s{k + 1}", "weight": 0.5} for k in range(3)]
    couplings += [{"kind": "directed_hinge", "id": "h03", "i": "s3", "j": "s0", "weight": 1.0},
                  {"kind": "gate_benefit", "id": "wormhole", "i": "repair", "j": "s2", "delta": 0.3, "weight": 1.0}]
    return System.model_validate({"id": f"demo-{seed}", "modules": modules, "couplings": couplings})


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidEntityError("System", None, "seed", seed, "a seed is an integer ≥ 0 (it seeds numpy's generators)")
