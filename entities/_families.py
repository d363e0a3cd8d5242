"""Seeded problem families used by benchmarks, studies and tests."""

from __future__ import annotations

import numpy as np

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
        raise ValueError(f"standard_system needs n >= 3, got {n}")
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
