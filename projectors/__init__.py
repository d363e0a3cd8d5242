"""Projectors: compile a System into arrays, relax it, fold the log back into state."""

from ._backend import AbstractBackend, NumpyBackend
from ._compile import (
    CompiledSystem,
    CouplingGroup,
    ModuleGroup,
    compile_system,
    energy,
    energy_and_gradient,
    hessian_diagonal,
)
from ._coordinator import (
    STEP_RULES,
    Outcome,
    Proposal,
    initial_eta,
    projected_gradient_norm,
    relaxation,
    state_digest,
    step_armijo,
    step_fixed,
)
from ._replay import RunState, StreamDifference, apply, first_difference, fold, replay, rerun
from ._run import RunResult, package_version, relax

__all__ = [
    "STEP_RULES",
    "AbstractBackend",
    "CompiledSystem",
    "CouplingGroup",
    "ModuleGroup",
    "NumpyBackend",
    "Outcome",
    "Proposal",
    "RunResult",
    "RunState",
    "StreamDifference",
    "apply",
    "compile_system",
    "energy",
    "energy_and_gradient",
    "first_difference",
    "fold",
    "hessian_diagonal",
    "initial_eta",
    "package_version",
    "projected_gradient_norm",
    "relax",
    "relaxation",
    "replay",
    "rerun",
    "state_digest",
    "step_armijo",
    "step_fixed",
]
