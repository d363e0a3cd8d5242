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
from ._weighting import AbstractWeighting, WeightingContext, phase_metrics, register_weighting
from ._amortizers import AbstractAmortizer, CachedAmortizer, TopKAmortizer
from ._coordinator import Outcome, initial_eta, projected_gradient_norm, relaxation, state_digest
from ._objective import Evaluation, LipschitzRows, Objective, lipschitz_rows, term_breakdown
from ._solvers import SOLVERS, AbstractSolver, Proposal, State, StepContext, register_solver
from ._diff import RunDiff, diff_runs
from ._fork import fork
from ._replay import RunState, StreamDifference, apply, first_difference, fold, replay, rerun
from ._run import ForkPoint, RunResult, current_labels, labelled, package_version, relax

__all__ = [
    "SOLVERS",
    "AbstractAmortizer",
    "AbstractBackend",
    "AbstractSolver",
    "AbstractWeighting",
    "WeightingContext",
    "CachedAmortizer",
    "CompiledSystem",
    "CouplingGroup",
    "Evaluation",
    "ForkPoint",
    "LipschitzRows",
    "ModuleGroup",
    "NumpyBackend",
    "Objective",
    "Outcome",
    "Proposal",
    "RunDiff",
    "RunResult",
    "RunState",
    "State",
    "StepContext",
    "StreamDifference",
    "TopKAmortizer",
    "apply",
    "backend_names",
    "compile_system",
    "diff_runs",
    "energy",
    "energy_and_gradient",
    "first_difference",
    "fold",
    "fork",
    "hessian_diagonal",
    "initial_eta",
    "current_labels",
    "labelled",
    "lipschitz_rows",
    "make_backend",
    "package_version",
    "phase_metrics",
    "projected_gradient_norm",
    "register_weighting",
    "register_backend",
    "register_solver",
    "relax",
    "relaxation",
    "replay",
    "rerun",
    "state_digest",
    "term_breakdown",
]
