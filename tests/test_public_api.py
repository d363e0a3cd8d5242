"""Pin each layer's public names, so an accidental addition or removal is a visible change."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "events": {
        "EVENT_TYPES", "AbstractEvent", "AbstractEventStore", "EntityRevised", "Event", "EtaRecorded",
        "ExpansionRejected", "GateClosed", "GateOpened", "ModuleAdded",
        "HookFailure", "HookSignal", "InMemoryStore", "ModelEvent", "NullStore", "Recorded", "RunFinished", "RunInfo",
        "RunMeta", "RunStarted", "StepCommitted", "WarmStartProposed", "StabilityBounded", "CouplingsCapped", "MarginWarning",
        "ObjectiveScaled", "HomotopyBackedOff", "WeightsAdapted", "SolverSwitched", "EscapeDetected", "TermsRecorded", "LoopSnapshotted",
        "current_version", "decode", "encode", "hooks", "register_upcaster", "upcast",
    },
    "projectors": {
        "AbstractAmortizer", "AbstractSolver", "AbstractWeighting", "WeightingContext", "CachedAmortizer", "Evaluation", "ForkPoint",
        "LipschitzRows", "Objective", "SOLVERS", "State", "StepContext", "TopKAmortizer", "lipschitz_rows",
        "current_labels", "labelled", "phase_metrics", "register_weighting", "register_solver", "term_breakdown", "AbstractBackend", "CompiledSystem", "CouplingGroup", "ModuleGroup", "NumpyBackend", "Outcome",
        "Proposal", "RunDiff", "RunResult", "RunState", "StreamDifference", "apply", "backend_names", "make_backend", "register_backend", "compile_system", "diff_runs", "energy",
        "energy_and_gradient", "first_difference", "fold", "fork", "hessian_diagonal", "initial_eta", "package_version",
        "projected_gradient_norm", "relax", "relaxation", "replay", "rerun", "state_digest",
    },
    "adapters": {
        "DuckDBStore", "EnergyRegularizedAttention", "ExportError", "GspoToken", "TorchBackend", "attention_ablation", "ProgressMirror", "StoreBusyError", "export_runs", "follow_lines", "import_runs",
        "plot_energy", "plot_eta_heatmap", "plot_gate_timeline", "report", "view_sql",
        "sweep", "SweepSpec", "SweepResult", "ListAxis", "GridAxis", "RandomAxis", "Job", "JobList", "running_on",
        "engine_choice",
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
    from complexity_from_constraints import entities

    assert CORE_ENTITIES <= set(entities.__all__)
    assert all(hasattr(entities, name) for name in entities.__all__)
    assert list(entities.__all__) == sorted(entities.__all__)


def test_the_root_re_exports_the_everyday_api():
    import complexity_from_constraints as cfc
    from complexity_from_constraints import adapters, entities, events, projectors

    everyday = {"System", "RelaxConfig", "relax", "replay", "rerun", "fork", "diff_runs", "DuckDBStore", "hooks"}
    registries = (entities.module_kinds, entities.coupling_kinds)
    classes = [registry[kind] for registry in registries for kind in registry.kinds()]
    kinds = {cls.__name__ for cls in classes if cls.__module__.startswith(entities.__name__)}  # not a test's own
    assert len(kinds) >= 12
    assert everyday | kinds <= set(cfc.__all__)
    assert list(cfc.__all__) == sorted(cfc.__all__)
    for name in cfc.__all__:  # the same objects as in the layers, not copies
        homes = [getattr(layer, name) for layer in (entities, events, projectors, adapters) if hasattr(layer, name)]
        assert homes and all(getattr(cfc, name) is home for home in homes), name
