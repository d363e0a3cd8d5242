"""Projectors: compile a System into arrays, relax it, fold the log back into state."""

from ._backend import AbstractBackend, NumpyBackend, backend_names, make_backend, register_backend
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
from ._diff import RunDiff, diff_runs
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
    "RunDiff",
    "RunResult",
    "RunState",
    "StreamDifference",
    "apply",
    "backend_names",
    "compile_system",
    "diff_runs",
    "energy",
    "energy_and_gradient",
    "first_difference",
    "fold",
    "hessian_diagonal",
    "initial_eta",
    "make_backend",
    "package_version",
    "projected_gradient_norm",
    "register_backend",
    "relax",
    "relaxation",
    "replay",
    "rerun",
    "state_digest",
    "step_armijo",
    "step_fixed",
]
