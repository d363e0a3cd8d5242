"""A kind defined outside the package works through every feature, as the kinds that ship with it do.

The kinds are defined the way a user would define them (one class each, in their own code): a
double-well module, a lagging hinge coupling that declares its closed-form prox, and a quadratic
gate benefit. A System of them is relaxed by every solver, under the stability guard, read through
the views, re-run, forked, exported and imported, and re-run by ``cfc`` in another process. The
registries are global, so the kinds are defined by a fixture and removed after each test.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from typing import Literal

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore, export_runs, import_runs
from complexity_from_constraints.entities import (
    AbstractModule,
    GateModule,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    RelaxConfig,
    StabilityConfig,
    System,
    coupling_kinds,
    module_kinds,
)
from complexity_from_constraints.events import EtaRecorded
from complexity_from_constraints.projectors import (
    SOLVERS,
    compile_system,
    diff_runs,
    energy,
    first_difference,
    fork,
    relax,
    rerun,
)
from complexity_from_constraints.projectors._prox import PairEdges, gate_pull


def define_kinds():
    """Define the three kinds (self-contained: a plugin module for another process is this function's source)."""
    from typing import ClassVar, Literal

    from pydantic import Field

    from complexity_from_constraints.entities import AbstractCoupling, AbstractModule, SquaredHinge

    class DoubleWellModule(AbstractModule):
        r"""Two wells at η = 0 and 1: :math:`f = dη^2(1-η)^2 - sη`.

        .. math:: f' = 2dη(1-η)(1-2η) - s, \qquad f'' = d(2 - 12η + 12η^2), \qquad |f''| ≤ 2d \text{ on } [0, 1]
        """

        kind: Literal["double_well"] = "double_well"
        params: ClassVar[tuple[str, ...]] = ("depth", "tilt")
        depth: float = Field(1.0, ge=0)
        tilt: float = 0.0
        eta0: float = Field(0.5, ge=0, le=1)

        @staticmethod
        def energy_grad(xp, eta, p):
            d, s = p["depth"], p["tilt"]
            u = eta * (1 - eta)
            return d * u * u - s * eta, 2 * d * u * (1 - 2 * eta) - s

        @staticmethod
        def hessian_diagonal(xp, eta, p):
            return p["depth"] * (2 - 12 * eta + 12 * eta * eta)

        @staticmethod
        def curvature_bound(xp, one, p):
            return 2 * p["depth"] * one

        def initial_eta(self) -> float:
            return self.eta0

    class LaggingHingeCoupling(AbstractCoupling):
        r"""η_i should keep up with β·η_j: :math:`φ = \max(0, βη_j - η_i)^2` (a squared hinge, exact prox)."""

        kind: Literal["lagging_hinge"] = "lagging_hinge"
        params: ClassVar[tuple[str, ...]] = ("beta",)
        beta: float = Field(0.8, ge=0)

        @staticmethod
        def energy_grad(xp, eta_i, eta_j, p):
            gap = p["beta"] * eta_j - eta_i
            g = xp.where(gap > 0, gap, 0 * gap)
            return g * g, -2 * g, 2 * p["beta"] * g

        @staticmethod
        def hessian_diagonal(xp, eta_i, eta_j, p):
            active = p["beta"] * eta_j - eta_i > 0
            zero = 0 * eta_i
            return xp.where(active, 2 + zero, zero), xp.where(active, 2 * p["beta"] ** 2 + zero, zero)

        @staticmethod
        def curvature_bound(xp, one, p):
            beta = p["beta"] * one
            return 2 * one, 2 * beta * beta, 2 * beta

        @classmethod
        def prox_form(cls, p):
            return SquaredHinge(alpha=1.0, beta=p["beta"])

    class SquareBenefitCoupling(AbstractCoupling):
        r"""A benefit that grows as gate ``i`` opens: :math:`φ = -Δη_i^2`, a gate benefit without a closed form."""

        kind: Literal["square_benefit"] = "square_benefit"
        params: ClassVar[tuple[str, ...]] = ("delta",)
        source_kinds: ClassVar[frozenset[str] | None] = frozenset({"gate"})
        gate_benefit: ClassVar[bool] = True
        delta: float = 0.0

        @staticmethod
        def energy_grad(xp, eta_i, eta_j, p):
            return -p["delta"] * eta_i * eta_i, -2 * p["delta"] * eta_i, 0 * eta_j

        @staticmethod
        def hessian_diagonal(xp, eta_i, eta_j, p):
            return -2 * p["delta"] + 0 * eta_i, 0 * eta_j

        @staticmethod
        def curvature_bound(xp, one, p):
            return 2 * abs(p["delta"]) * one, 0 * one, 0 * one

    return DoubleWellModule, LaggingHingeCoupling, SquareBenefitCoupling


@pytest.fixture
def kinds():
    """The kinds, registered for one test and removed afterwards (other suites enumerate the registries)."""
    yield define_kinds()
    for kind in ("double_well",):
        module_kinds.unregister(kind)
    for kind in ("lagging_hinge", "square_benefit"):
        coupling_kinds.unregister(kind)


@pytest.fixture
def db(tmp_path):
    """The one DuckDB store of a test."""
    store = DuckDBStore(tmp_path / "runs.duckdb")
    yield store
    store.close()


@pytest.fixture
def system(kinds) -> System:
    well, hinge, benefit = kinds
    return System(
        id="custom",
        modules=[
            well(id="w0", depth=2.0, tilt=0.05, eta0=0.3),
            well(id="w1", depth=1.0, tilt=-0.1, eta0=0.7),
            well(id="w2", depth=1.5, eta0=0.45),
            LandauModule(id="l", a=-0.5, b=1.0, eta0=0.2),
            GateModule(id="g", gain=0.0, cost=0.1, k=10.0),
        ],
        couplings=[
            hinge(id="h01", i="w0", j="w1", beta=0.9, weight=0.8),
            hinge(id="h12", i="w2", j="w1", beta=0.5),
            QuadraticCoupling(id="q", i="l", j="w2", weight=0.5),
            benefit(id="b", i="g", j="w0", delta=0.6),
        ],
        family_weights={"double_well": 1.5},
    )


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_every_solver_relaxes_a_custom_kind(system, db, solver):
    result = relax(system, RelaxConfig(solver=solver, steps=40), store=db)
    start = energy(compile_system(system), np.array([m.initial_eta() for m in system.modules]))
    assert result.status != "incomplete"
    assert np.isfinite(result.energy) and result.energy < start


def test_the_proximal_solvers_treat_the_custom_hinge_exactly(system):
    cs = compile_system(system)
    edges = PairEdges.of(cs)
    assert edges.hinge.tolist() == [False, True, True]  # the quadratic edge, then both lagging hinges
    assert edges.beta.tolist() == [1.0, 0.9, 0.5] and edges.alpha.tolist() == [1.0, 1.0, 1.0]
    assert not gate_pull(cs).any()  # the square benefit has no closed form: it is stepped explicitly


def test_the_stability_guard_bounds_a_custom_kind_and_names_one_without_a_bound(system, kinds, db):
    guarded = relax(system, RelaxConfig(steps=20, stability=StabilityConfig()), store=db)
    assert np.isfinite(guarded.energy)

    class BoundlessModule(AbstractModule):
        kind: Literal["boundless"] = "boundless"

        @staticmethod
        def energy_grad(xp, eta, p):
            return eta * eta, 2 * eta

        @staticmethod
        def hessian_diagonal(xp, eta, p):
            return 2 + 0 * eta

        def initial_eta(self) -> float:
            return 0.5

    try:
        lone = System(id="lone", modules=[BoundlessModule(id="x")])
        relax(lone, RelaxConfig(steps=3))  # without the guard it relaxes
        with pytest.raises(InvalidEntityError) as info:
            relax(lone, RelaxConfig(steps=3, stability=StabilityConfig()))
    finally:
        module_kinds.unregister("boundless")
    message = str(info.value)
    assert "'boundless'" in message and "curvature_bound" in message and "BoundlessModule" in message


def _frames(store, run_id):
    return {r.event.step: r.event.eta for r in store.read(run_id, types=["EtaRecorded"])
            if isinstance(r.event, EtaRecorded)}


def test_the_views_evaluate_a_custom_kind_with_its_own_formula(system, kinds, db):
    well, _, benefit = kinds
    result = relax(system, RelaxConfig(steps=30), store=db)
    rows = db.query("SELECT step, entity_id, energy, f, weight FROM v_entity_energy WHERE run_id = ? "
                    "AND kind = 'double_well' ORDER BY step, entity_id", [result.run_id])
    frames = _frames(db, result.run_id)
    assert rows.height == 3 * len(frames) and rows["energy"].null_count() == 0
    position = {m.id: k for k, m in enumerate(system.modules)}
    members = {m.id: m for m in system.modules}
    for step, entity_id, value, f, weight in rows.iter_rows():
        m = members[entity_id]
        expected = well.energy_grad(np, frames[step][position[entity_id]], well.parameter_arrays([m]))[0][0]
        assert f == pytest.approx(expected, abs=1e-15)
        assert weight == 1.5 * m.weight and value == pytest.approx(weight * expected, abs=1e-15)

    (gate,) = db.query("SELECT benefit_start, benefit_final, redemption FROM v_gate_redemption "
                       "WHERE run_id = ? AND gate_id = 'g'", [result.run_id]).iter_rows()
    edge = system.couplings[-1]
    last = max(frames)
    phi = [benefit.energy_grad(np, frames[s][position["g"]], frames[s][position["w0"]],
                               benefit.parameter_arrays([edge]))[0] for s in (0, last)]
    assert gate[0] == pytest.approx(phi[0]) and gate[1] == pytest.approx(phi[1])
    assert gate[2] == pytest.approx(phi[0] - phi[1])


def test_a_read_only_store_evaluates_the_custom_kind_too(system, tmp_path):
    path = tmp_path / "read_only.duckdb"
    with DuckDBStore(path) as store:
        relax(system, RelaxConfig(steps=5), store=store)
    with DuckDBStore(path, read_only=True) as store:
        assert store.query("SELECT count(energy) AS n FROM v_entity_energy WHERE kind = 'double_well'")["n"][0] == 18


def test_rerun_fork_and_export_keep_a_custom_kind(system, db, tmp_path):
    parent = relax(system, RelaxConfig(steps=25, step_size=0.02), store=db)
    again = rerun(db, parent.run_id)
    assert first_difference(db, parent.run_id, again.run_id) is None

    child = fork(db, parent.run_id, 10, {"step_size": 0.05})
    assert diff_runs(db, parent.run_id, child.run_id).first_divergence == 11

    export_runs(db, tmp_path / "export", [parent.run_id, child.run_id])
    with DuckDBStore(tmp_path / "imported.duckdb") as target:
        assert sorted(import_runs(target, tmp_path / "export")) == sorted([parent.run_id, child.run_id])
        sql = "SELECT run_id, step, entity_id, energy FROM v_entity_energy ORDER BY ALL"
        imported = target.query(sql)
        assert first_difference(target, parent.run_id, rerun(target, parent.run_id).run_id) is None
    original = db.query(sql).filter(db.query(sql)["run_id"].is_in([parent.run_id, child.run_id]))
    assert imported.equals(original) and imported["energy"].null_count() == 0


def test_cfc_reruns_and_forks_a_custom_kind_once_the_process_defines_it(system, db, tmp_path, cli):
    run = relax(system, RelaxConfig(steps=8), store=db)
    db.close()
    path = tmp_path / "runs.duckdb"
    code, out, _ = cli("rerun", run.run_id, "--db", path)  # this process defines the kinds
    assert code == 0 and "identical" in out
    code, out, _ = cli("fork", run.run_id, "--step", 4, "--set", "step_size=0.02", "--db", path)
    assert code == 0 and f"of {run.run_id} at step 4" in out

    plugin = tmp_path / "plugin" / "lab_kinds.py"
    plugin.parent.mkdir()
    plugin.write_text(textwrap.dedent(inspect.getsource(define_kinds)) + "\n\ndefine_kinds()\n")
    env = {k: v for k, v in os.environ.items() if k != "CFC_KINDS"}
    command = [sys.executable, "-c", "from complexity_from_constraints.adapters.cli import main; raise SystemExit(main())",
               "rerun", run.run_id, "--db", str(path)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "unknown module kind" in refused.stderr and "CFC_KINDS" in refused.stderr

    env |= {"CFC_KINDS": "lab_kinds", "PYTHONPATH": os.pathsep.join([str(plugin.parent), *sys.path])}
    accepted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    assert "identical" in accepted.stdout
