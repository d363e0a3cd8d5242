"""complexity-from-constraints: energy-based micro-modules relaxed by an event-sourced coordinator.

The everyday API lives here, so a script reads::

    import complexity_from_constraints as cfc

    system = cfc.System(id="s", modules=[cfc.LandauModule(id="x", a=-1.0, b=1.0)])
    with cfc.DuckDBStore("runs.duckdb") as store:
        result = cfc.relax(system, cfc.RelaxConfig(steps=50), seed=0, store=store)

Everything else stays in the layer packages, which import in one direction only::

    complexity_from_constraints.entities     versioned Pydantic models: kinds, System, configs
    complexity_from_constraints.events       the event union, the log interface, hook signals
    complexity_from_constraints.projectors   compile, relax, replay, re-run, fork, diff
    complexity_from_constraints.adapters     DuckDB store and views, export, plots, torch, CLI
    complexity_from_constraints.experiments  scripted studies (leaves; nothing imports them)

>>> import complexity_from_constraints as cfc
>>> r = cfc.relax(cfc.System(id="s", modules=[cfc.LandauModule(id="x", a=-1.0, b=1.0)]), cfc.RelaxConfig(steps=20))
>>> r.status in {"converged", "max_steps", "stalled"}
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    **dict.fromkeys(
        ("AbstractCoupling", "AbstractModule", "AsymmetricHingeCoupling", "CfcError", "CompressionModule",
         "ConnectivityModule", "DampedGateBenefitCoupling", "DirectedHingeCoupling", "GateBenefitCoupling",
         "GateModule", "LandauModule", "NashModule", "PolynomialModule", "QuadraticCoupling", "RelaxConfig",
         "SequenceModule", "System", "demo_system", "standard_system"), "entities"),
    "hooks": "events",
    **dict.fromkeys(("diff_runs", "first_difference", "fork", "relax", "replay", "rerun"), "projectors"),
    "DuckDBStore": "adapters",
}

if TYPE_CHECKING:  # pragma: no cover
    from complexity_from_constraints.adapters import DuckDBStore
    from complexity_from_constraints.entities import (
        AbstractCoupling, AbstractModule, AsymmetricHingeCoupling, CfcError, CompressionModule, ConnectivityModule,
        DampedGateBenefitCoupling, DirectedHingeCoupling, GateBenefitCoupling, GateModule, LandauModule, NashModule,
        PolynomialModule, QuadraticCoupling, RelaxConfig, SequenceModule, System, demo_system, standard_system)
    from complexity_from_constraints.events import hooks
    from complexity_from_constraints.projectors import diff_runs, first_difference, fork, relax, replay, rerun


def __getattr__(name: str) -> Any:
    # Imported on first use (PEP 562): `cfc --help` imports this package too, and must stay quick.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "AbstractCoupling",
    "AbstractModule",
    "AsymmetricHingeCoupling",
    "CfcError",
    "CompressionModule",
    "ConnectivityModule",
    "DampedGateBenefitCoupling",
    "DirectedHingeCoupling",
    "DuckDBStore",
    "GateBenefitCoupling",
    "GateModule",
    "LandauModule",
    "NashModule",
    "PolynomialModule",
    "QuadraticCoupling",
    "RelaxConfig",
    "SequenceModule",
    "System",
    "demo_system",
    "diff_runs",
    "first_difference",
    "fork",
    "hooks",
    "relax",
    "replay",
    "rerun",
    "standard_system",
]
