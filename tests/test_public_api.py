"""Pin each layer's public names, so an accidental addition or removal is a visible change."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "events": {
        "EVENT_TYPES", "AbstractEvent", "AbstractEventStore", "EntityRevised", "Event", "EtaRecorded",
        "ExpansionRejected", "GateClosed", "GateOpened", "ModuleAdded",
        "HookFailure", "HookSignal", "InMemoryStore", "ModelEvent", "NullStore", "Recorded", "RunFinished", "RunInfo",
        "RunStarted", "StepCommitted", "WarmStartProposed", "StabilityBounded", "CouplingsCapped", "MarginWarning",
        "ObjectiveScaled", "HomotopyBackedOff", "WeightsAdapted", "SolverSwitched", "EscapeDetected", "TermsRecorded",
        "current_version", "decode", "encode", "hooks", "register_upcaster", "upcast",
    },
    "projectors": {
        "AbstractAmortizer", "AbstractSolver", "AbstractWeightAdapter", "AdaptContext", "CachedAmortizer", "Evaluation", "ForkPoint",
        "LipschitzRows", "Objective", "SOLVERS", "State", "StepContext", "TopKAmortizer", "lipschitz_rows",
        "phase_metrics", "register_adapter", "register_solver", "term_breakdown", "AbstractBackend", "CompiledSystem", "CouplingGroup", "ModuleGroup", "NumpyBackend", "Outcome",
        "Proposal", "RunDiff", "RunResult", "RunState", "StreamDifference", "apply", "backend_names", "make_backend", "register_backend", "compile_system", "diff_runs", "energy",
        "energy_and_gradient", "first_difference", "fold", "fork", "hessian_diagonal", "initial_eta", "package_version",
        "projected_gradient_norm", "relax", "relaxation", "replay", "rerun", "state_digest",
    },
    "adapters": {
        "DuckDBStore", "EnergyRegularizedAttention", "ExportError", "GspoTokenWeightAdapter", "TorchBackend", "attention_ablation", "ProgressMirror", "StoreBusyError", "export_runs", "follow_lines", "import_runs",
        "plot_energy", "plot_eta_heatmap", "plot_gate_timeline", "view_sql",
    },
}
CORE_ENTITIES = {
    "AbstractCoupling", "AbstractEntity", "AbstractFrozen", "AbstractModule", "CfcError", "DirectedHingeCoupling",
    "Candidate", "ExpansionConfig", "Revision", "GateBenefitCoupling", "GateModule", "InvalidEntityError", "KindRegistry", "LandauModule", "LogIntegrityError",
    "MissingDependencyError", "QuadraticCoupling", "RelaxConfig", "SchemaVersionError", "System", "UnknownRunError",
    "UnknownStepError", "content_digest", "coupling_kinds", "demo_system", "module_kinds", "softplus", "standard_system",
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_api_is_pinned(package):
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert all(hasattr(module, name) for name in module.__all__)


def test_entities_export_the_core_vocabulary():
    import entities

    assert CORE_ENTITIES <= set(entities.__all__)
    assert all(hasattr(entities, name) for name in entities.__all__)
    assert list(entities.__all__) == sorted(entities.__all__)
