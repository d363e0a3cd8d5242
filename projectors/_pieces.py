"""The maths behind three of the loop's pieces: homotopy ramps, noise, diagnostics.

Each is configured by one model of :mod:`entities._settings` and keeps the
little state it needs; the pieces that drive them in the loop
(:mod:`projectors._controls`, :mod:`projectors._observers`) turn what they
compute into events.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping

import numpy as np

from complexity_from_constraints.entities import DiagnosticsConfig, HomotopyConfig, InvalidEntityError, NoiseConfig

from ._solvers import State

NOISE_STREAM = 0x6E6F69  # the noise generator is seeded with (run seed, this constant)


class Homotopy:
    r"""Linear ramps :math:`s(t) = s_0 + (1 - s_0)\min(1, t/T)` with oscillation back-off.

    Scale keys: ``couplings`` (every coupling kind), ``kind:<kind>`` and
    ``entity:<id>``.
    """

    def __init__(self, config: HomotopyConfig):
        self.config = config
        self.starts: dict[str, float] = {}
        if config.coupling_start is not None:
            self.starts["couplings"] = config.coupling_start
        self.starts.update({f"kind:{k}": v for k, v in config.kind_starts.items()})
        self.starts.update({f"entity:{k}": v for k, v in config.entity_starts.items()})
        self.rejections = 0

    def check(self, system, candidates=()) -> None:
        """Refuse a start naming no kind or entity of ``system`` or of its expansion ``candidates``: it would do nothing."""
        entities = [*system.modules, *system.couplings]
        for c in candidates:
            entities += [c.module, *c.couplings]
        arrays = [*system.module_arrays, *system.coupling_arrays]
        kinds = {e.kind for e in entities} | {a.member_kind for a in arrays}
        for field, names, known in (("kind_starts", self.config.kind_starts, kinds),
                                    ("entity_starts", self.config.entity_starts, {e.id for e in entities})):
            unknown = sorted(n for n in set(names) - known if field == "kind_starts" or system.array_of(n) is None)
            if unknown:
                raise InvalidEntityError("HomotopyConfig", None, field, unknown[0], f"names no {field[:-7]} of the System")

    def scales(self, step: int) -> dict[str, float]:
        """Every ramp's scale at ``step``."""
        t = min(1.0, step / self.config.steps)
        return {k: s0 + (1 - s0) * t for k, s0 in self.starts.items()}

    def ramping(self, step: int) -> bool:
        return step < self.config.steps

    def rejected(self) -> bool:
        """Count a rejected step during the ramp; True when the starts backed off."""
        self.rejections += 1
        if self.rejections < self.config.patience:
            return False
        self.rejections = 0
        cfg = self.config
        self.starts = {k: max(cfg.min_start, v * cfg.backoff_factor) for k, v in self.starts.items()}
        return True

    @staticmethod
    def split(scales: Mapping[str, float], coupling_kinds: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
        """Scales as per-kind multipliers and per-entity scales."""
        kinds: dict[str, float] = {}
        entities: dict[str, float] = {}
        for key, s in scales.items():
            if key == "couplings":
                for k in coupling_kinds:
                    kinds[k] = kinds.get(k, 1.0) * s
            elif key.startswith("kind:"):
                kinds[key[5:]] = kinds.get(key[5:], 1.0) * s
            else:
                entities[key[7:]] = s
        return kinds, entities


class Noise:
    r"""Gradient-orthogonal noise of norm :math:`m_t` from the run's seeded generator (see :class:`~entities.NoiseConfig`)."""

    def __init__(self, config: NoiseConfig, seed: int, curvature_floor: float = 1e-3):
        if seed < 0:
            raise InvalidEntityError("relax", None, "seed", seed, "must be ≥ 0: it seeds the noise generator")
        self.config = config
        self.rng = np.random.default_rng([seed, NOISE_STREAM])
        self.floor = curvature_floor
        self.previous_grad: np.ndarray | None = None

    def magnitude(self, step: int, grad: np.ndarray, backtracks: int, drop_ratio: float) -> float:
        """:math:`m_t = m_0 · \\text{decay}^t`, times the controller's scale when one is configured."""
        m = self.config.magnitude * self.config.decay ** step
        c = self.config.controller
        if c is not None:
            rotation = 0.0
            if self.previous_grad is not None:
                na, nb = np.linalg.norm(grad), np.linalg.norm(self.previous_grad)
                if na > 0 and nb > 0:
                    rotation = 0.5 * (1 - float(grad @ self.previous_grad) / (na * nb))
            rate = max(0.0, 1 - 10 * drop_ratio)
            s = c.w_rate * rate + c.w_backtrack * float(backtracks > 0) + c.w_rotation * rotation
            m *= min(c.max_scale, max(c.min_scale, s))
        self.previous_grad = grad
        return m

    def vector(self, magnitude: float, grad: np.ndarray, curvature: np.ndarray | None,
               mask: np.ndarray | None) -> np.ndarray | None:
        """A vector of norm ``magnitude`` orthogonal to ``grad`` (in the metric for ``mode="metric"``)."""
        z = self.rng.standard_normal(grad.shape[0])  # drawn every step, so the stream never depends on m_t
        if magnitude <= 0:
            return None
        g = grad if mask is None else grad * mask
        if mask is not None:
            z = z * mask
        metric = np.ones_like(g) if self.config.mode == "tangent" else np.maximum(np.abs(curvature), self.floor)
        gg = float(np.sum(metric * g * g))
        if gg > 0:
            z = z - (float(np.sum(metric * z * g)) / gg) * g
        norm = float(np.linalg.norm(z))
        return None if norm == 0 else z * (magnitude / norm)


class Watch:
    """Sensitivity dispersion, confidence and escape detection (see :class:`~entities.DiagnosticsConfig`)."""

    def __init__(self, config: DiagnosticsConfig, initial_energy: float):
        self.config = config
        self.window: deque[np.ndarray] = deque(maxlen=config.window)
        self.energies: deque[float] = deque(maxlen=config.window)
        self.e0 = initial_energy

    def observe(self, eta: np.ndarray, energy: float) -> dict[str, float]:
        """Add an accepted state; the dispersion and confidence after it.

        When the System grew (expansion), earlier states are extended with the
        newcomers' η at arrival, so a new module's dispersion starts at 0.
        """
        if self.window and len(eta) > len(self.window[-1]):
            self.window = deque((np.append(w, eta[len(w):]) for w in self.window), maxlen=self.config.window)
        self.window.append(eta)
        self.energies.append(energy)
        cfg = self.config
        dispersion = float(np.mean(np.std(np.stack(self.window), axis=0))) if len(self.window) > 1 else 0.0
        r = (self.energies[0] - energy) / max(self.e0 - energy, 1e-12) if len(self.energies) > 1 else 1.0
        x = cfg.confidence_a * (cfg.confidence_rho_max - r) - cfg.confidence_b * dispersion
        return {"dispersion": dispersion, "confidence": 1 / (1 + math.exp(-x)) if x > -700 else 0.0}

    def escape(self, noise: float, previous: State, current: State, be: Any) -> dict[str, float] | None:
        """The escape measurements when the step from ``previous`` to ``current`` was one, else ``None``."""
        cfg = self.config
        if noise < cfg.escape_noise_min:
            return None
        d = be.to_numpy(current.eta) - be.to_numpy(previous.eta)
        g = be.to_numpy(previous.grad)
        nd, ng = float(np.linalg.norm(d)), float(np.linalg.norm(g))
        drop = previous.energy - current.energy
        if nd < cfg.escape_displacement_min or drop < cfg.escape_drop_min:
            return None
        cosine = float(-(d @ g) / (nd * ng)) if ng > 0 else 0.0
        if cosine > cfg.escape_cosine_max:
            return None
        return {"noise": noise, "displacement": nd, "cosine": cosine, "drop": drop}
