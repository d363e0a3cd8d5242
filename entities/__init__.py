"""Entities: versioned, frozen Pydantic models and each kind's energy formulas."""

from ._base import AbstractEntity, AbstractFrozen, KindRegistry, content_digest
from ._config import RelaxConfig
from ._couplings import (
    AbstractCoupling,
    DirectedHingeCoupling,
    GateBenefitCoupling,
    QuadraticCoupling,
    coupling_kinds,
)
from ._families import demo_system, standard_system
from ._errors import (
    CfcError,
    InvalidEntityError,
    LogIntegrityError,
    MissingDependencyError,
    SchemaVersionError,
    UnknownRunError,
    UnknownStepError,
)
from ._modules import AbstractModule, GateModule, LandauModule, module_kinds, softplus
from ._system import System

__all__ = [
    "AbstractCoupling",
    "AbstractEntity",
    "AbstractFrozen",
    "AbstractModule",
    "CfcError",
    "DirectedHingeCoupling",
    "GateBenefitCoupling",
    "GateModule",
    "InvalidEntityError",
    "KindRegistry",
    "LandauModule",
    "LogIntegrityError",
    "MissingDependencyError",
    "QuadraticCoupling",
    "RelaxConfig",
    "SchemaVersionError",
    "System",
    "UnknownRunError",
    "UnknownStepError",
    "content_digest",
    "coupling_kinds",
    "demo_system",
    "module_kinds",
    "softplus",
    "standard_system",
]
