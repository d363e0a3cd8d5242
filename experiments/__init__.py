"""Scripted studies: each is a frozen config model plus a ``run`` function; nothing imports them.

Every study records its runs to an event store and reads its numbers back
through the SQL views; run one with ``cfc experiment <name> [--option value …]``
or ``python -m complexity_from_constraints.experiments.<name>`` (see ``experiments/README.md``). The
command line imports this package lazily, by name.
"""

from __future__ import annotations

import importlib

from ._framework import Progress, Study, StudyResult

STUDIES: tuple[str, ...] = (
    "landau_sweep",
    "landau_plot",
    "non_local_connectivity_threshold_shift",
    "sequence_redemption",
    "sequence_gating_hypothesis",
    "energy_gated_expansion",
    "branching_coexistence",
    "emergent_nash_learning",
    "wormhole_demo",
    "apc_vs_legendre",
    "polynomial_rhs_probe",
    "coupling_gate_cost_sweep",
    "multi_module_scaling",
    "auto_balance_demo",
    "agm_phase_demo",
    "benchmark_delta_f90",
)
"""Every registered study, by module name, in the order the README lists them."""


def load(name: str) -> Study:
    """The :class:`Study` registered as ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return importlib.import_module(f"{__name__}.{name}").STUDY


__all__ = ["STUDIES", "Progress", "Study", "StudyResult", "load"]
