"""Entities: versioned, frozen Pydantic models and each kind's energy formulas."""

from ._base import AbstractEntity, AbstractFrozen, KindRegistry, content_digest
from ._config import Candidate, ExpansionConfig, RelaxConfig, Revision
from ._couplings import (
    AbstractCoupling,
    AsymmetricHingeCoupling,
    DampedGateBenefitCoupling,
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
from ._measures import (
    MAX_DEGREE,
    action_payoffs,
    apc_basis,
    count_inversions,
    grid_bond_percolation,
    largest_component_fraction,
    legendre_monomials,
    monotonicity,
    nash_eta,
    regret,
    replicator_step,
)
from ._modules import AbstractModule, GateModule, LandauModule, module_kinds, softplus
from ._system import System
from ._vocabulary import (
    CompressionModule,
    ConnectivityModule,
    NashModule,
    PolynomialModule,
    SequenceModule,
)

__all__ = [
    "AbstractCoupling",
    "AbstractEntity",
    "AbstractFrozen",
    "AbstractModule",
    "AsymmetricHingeCoupling",
    "Candidate",
    "CfcError",
    "CompressionModule",
    "ConnectivityModule",
    "DampedGateBenefitCoupling",
    "DirectedHingeCoupling",
    "ExpansionConfig",
    "GateBenefitCoupling",
    "GateModule",
    "InvalidEntityError",
    "KindRegistry",
    "LandauModule",
    "LogIntegrityError",
    "MAX_DEGREE",
    "MissingDependencyError",
    "NashModule",
    "PolynomialModule",
    "QuadraticCoupling",
    "RelaxConfig",
    "Revision",
    "SchemaVersionError",
    "SequenceModule",
    "System",
    "UnknownRunError",
    "UnknownStepError",
    "action_payoffs",
    "apc_basis",
    "content_digest",
    "count_inversions",
    "coupling_kinds",
    "demo_system",
    "grid_bond_percolation",
    "largest_component_fraction",
    "legendre_monomials",
    "module_kinds",
    "monotonicity",
    "nash_eta",
    "regret",
    "replicator_step",
    "softplus",
    "standard_system",
]
