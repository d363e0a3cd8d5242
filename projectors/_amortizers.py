"""Warm starts: amortizers propose η₀ and an active set before a run.

A proposal is a :class:`~entities.WarmStart`; ``relax(..., amortizer=a)``
writes it into the run's recorded config, so the log says where the run
started and why, and a re-run repeats it without the amortizer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError, RelaxConfig, System, WarmStart

from ._compile import compile_system, energy_and_gradient
from ._coordinator import initial_eta


class AbstractAmortizer:
    """Proposes where a run starts: ``propose(system, config, seed) -> WarmStart``."""

    def propose(self, system: System, config: RelaxConfig, seed: int) -> WarmStart:  # pragma: no cover - abstract
        raise NotImplementedError


def _start(system: System, config: RelaxConfig, seed: int) -> np.ndarray:
    return initial_eta(compile_system(system), config.evolve(warm_start=None), seed)


class TopKAmortizer(AbstractAmortizer):
    r"""η₀ as the config would start, and the ``k`` modules with the largest projected gradient.

    Score :math:`|η_i - \mathrm{clip}(η_i - ∂_i𝓕)|` (ties by module order);
    with ``neighbours`` the modules coupled to a chosen one join the set.
    Only those move for the first ``active_steps`` steps.

    >>> from complexity_from_constraints.entities import System, LandauModule, QuadraticCoupling, RelaxConfig
    >>> s = System(id="s", modules=[LandauModule(id="a", eta0=0.9), LandauModule(id="b"), LandauModule(id="c")],
    ...            couplings=[QuadraticCoupling(id="ab", i="a", j="b")])
    >>> TopKAmortizer(k=1, neighbours=True).propose(s, RelaxConfig(), 0).active
    ('a', 'b')
    """

    def __init__(self, k: int = 10, *, neighbours: bool = False, active_steps: int = 20):
        if k < 1:
            raise InvalidEntityError("TopKAmortizer", None, "k", k, "must be ≥ 1")
        self.k, self.neighbours, self.active_steps = k, neighbours, active_steps

    def active_set(self, system: System, eta: np.ndarray) -> tuple[str, ...]:
        cs = compile_system(system)
        _, grad = energy_and_gradient(cs, eta)
        score = np.abs(eta - np.clip(eta - grad, 0.0, 1.0))
        chosen = set(np.argsort(-score, kind="stable")[: self.k].tolist())
        if self.neighbours:
            ids = {cs.ids[i] for i in chosen}
            for c in system.couplings:
                if c.i in ids or c.j in ids:
                    chosen.update((cs.index_of(c.i), cs.index_of(c.j)))
        return tuple(cs.ids[i] for i in sorted(chosen))

    def propose(self, system: System, config: RelaxConfig, seed: int) -> WarmStart:
        eta = _start(system, config, seed)
        return WarmStart(source="top_k", eta0=tuple(eta.tolist()), active=self.active_set(system, eta),
                         active_steps=self.active_steps)


class CachedAmortizer(AbstractAmortizer):
    r"""Reuse the result of a similar earlier run as the start.

    The signature of a System is its starting η (as the config would start)
    scaled to unit length, per tuple of module ids. :meth:`remember` stores a
    finished run's returned η under its signature (at most ``size`` entries,
    least recently used dropped). :meth:`propose` starts from the stored η
    whose signature lies within ``threshold`` (Euclidean) of the new one,
    with confidence :math:`1 - d/\text{threshold}`; on a miss it asks
    ``fallback`` (default :class:`TopKAmortizer`).
    """

    def __init__(self, size: int = 32, threshold: float = 0.05, fallback: AbstractAmortizer | None = None):
        self.size, self.threshold = size, threshold
        self.fallback = fallback or TopKAmortizer()
        self.cache: OrderedDict[tuple[tuple[str, ...], bytes], tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = OrderedDict()

    @staticmethod
    def signature(system: System, config: RelaxConfig, seed: int) -> np.ndarray:
        eta = _start(system, config, seed)
        n = np.linalg.norm(eta)
        return eta / n if n > 0 else eta

    def remember(self, system: System, config: RelaxConfig, seed: int, eta: np.ndarray,
                 active: tuple[str, ...] = ()) -> None:
        """Store a finished run's returned η (e.g. ``RunResult.eta``) for later proposals."""
        sig = self.signature(system, config, seed)
        key = (system.module_ids, sig.tobytes())
        self.cache[key] = (sig, np.array(eta, dtype=np.float64), active)
        self.cache.move_to_end(key)
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)

    def propose(self, system: System, config: RelaxConfig, seed: int) -> WarmStart:
        sig = self.signature(system, config, seed)
        digest = hashlib.sha256(sig.tobytes()).hexdigest()[:16]
        best, best_d = None, np.inf
        for key, (cached, eta, active) in self.cache.items():
            if key[0] == system.module_ids:
                d = float(np.linalg.norm(sig - cached))
                if d <= self.threshold and d < best_d:
                    best, best_d = key, d
        if best is None:
            fresh = self.fallback.propose(system, config, seed)
            return WarmStart.model_validate(fresh.model_dump() | {"signature": digest})
        self.cache.move_to_end(best)
        _, eta, active = self.cache[best]
        confidence = 1 - best_d / self.threshold if self.threshold > 0 else 1.0
        return WarmStart(source="cache", signature=digest, eta0=tuple(eta.tolist()), active=active,
                         active_steps=20 if active else 0, confidence=confidence)
