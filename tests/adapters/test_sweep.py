"""Sweeps: points and ids follow from the spec, engines agree bit for bit, a sweep resumes, failures are clean."""

from __future__ import annotations

import json

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._sweep import (
    FAULTS_ENV,
    GridAxis,
    ListAxis,
    RandomAxis,
    SweepSpec,
    sweep,
)
from complexity_from_constraints.entities import InvalidEntityError, LandauModule, QuadraticCoupling, RelaxConfig, System
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import relax

SYSTEM = System(id="pair", modules=[LandauModule(id="x", a=-1.0, b=1.0), LandauModule(id="y", a=0.5, b=1.0)],
                couplings=[QuadraticCoupling(id="xy", i="x", j="y", weight=0.5)])


def _spec(**changes) -> SweepSpec:
    base = dict(name="pair-sweep", system=SYSTEM, config=RelaxConfig(steps=60, eta0="uniform"),
                axes=[ListAxis(path="step_size", values=[0.05, 0.2]), GridAxis(path="system.x.a", start=-1.0, stop=-0.5, num=2)],
                seeds=[0, 1, 2])
    return SweepSpec(**(base | changes))


def _events(store, run_id):
    return [r.event for r in store.read(run_id)]


@pytest.fixture
def db(tmp_path):
    with DuckDBStore(tmp_path / "sweep.duckdb") as store:
        yield store


def test_points_are_the_product_of_axes_and_seeds_with_ids_from_the_digest():
    spec = _spec()
    points = spec.points()
    assert len(points) == 2 * 2 * 3
    assert points[0].values == {"step_size": 0.05, "system.x.a": -1.0, "seed": 0}
    assert len({p.run_id for p in points}) == len(points)
    assert [p.run_id for p in _spec().points()] == [p.run_id for p in points]  # the same spec, the same ids
    assert _spec(name="other").points()[0].run_id != points[0].run_id
    system, config, seed = spec.build(points[-1])
    assert (config.step_size, system.modules[0].a, seed) == (0.2, -0.5, 2)
    assert RandomAxis(path="tol", low=1e-6, high=1e-3, n=4, log=True, seed=3).values_() == \
        RandomAxis(path="tol", low=1e-6, high=1e-3, n=4, log=True, seed=3).values_()


@pytest.mark.parametrize("changes, field", [
    (dict(axes=[ListAxis(path="step_size", values=[0.1]), ListAxis(path="step_size", values=[0.2])]), "axes"),
    (dict(axes=[ListAxis(path="system.nobody.a", values=[0.1])]), "axes.system.nobody.a"),
    (dict(axes=[ListAxis(path="stepsize", values=[0.1])]), "axes"),
    (dict(axes=[ListAxis(path="step_size", values=["fast"])]), "step_size"),
    (dict(seeds=[-1]), "seeds"),
])
def test_a_bad_spec_is_refused_before_anything_runs(changes, field):
    with pytest.raises(InvalidEntityError) as info:
        _spec(**changes)
    assert field in str(info.value)


def test_a_spec_reads_from_toml(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('name = "t"\nseeds = [0, 1]\n[system]\nid = "s"\n[[system.modules]]\nkind = "landau"\nid = "m"\n'
                    '[config]\nsteps = 5\n[[axes]]\nkind = "grid"\npath = "step_size"\nstart = 0.1\nstop = 0.3\nnum = 3\n')
    spec = SweepSpec.load(path)
    assert len(spec.points()) == 6 and spec.config.steps == 5


def test_each_point_is_the_run_relax_would_record(db):
    spec = _spec()
    result = sweep(spec, store=db, engine="serial")
    assert result.count("complete") == 12
    point = spec.points()[7]
    system, config, seed = spec.build(point)
    alone = InMemoryStore()
    r = relax(system, config, seed=seed, store=alone)
    assert _events(db, point.run_id) == _events(alone, r.run_id)
    meta = db.run_meta(point.run_id)
    assert meta.sweep == spec.sweep_id() and meta.name == "pair-sweep/p7" and meta.tags["step_size"] == "0.2"


def test_the_process_pool_stores_the_same_runs_bit_for_bit(db, tmp_path):
    spec = _spec(seeds=[0, 1])
    sweep(spec, store=db, engine="serial")
    with DuckDBStore(tmp_path / "local.duckdb") as other:
        result = sweep(spec, store=other, engine="local", workers=2)
        assert result.count("complete") == 8
        for point in spec.points():
            assert _events(other, point.run_id) == _events(db, point.run_id)


def test_an_interrupted_sweep_resumes_where_it_stopped(db):
    spec = _spec()

    def stop_after_five(done, total, what):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, store=db, engine="serial", progress=stop_after_five)
    assert len(db.runs()) == 5 and all(info.complete for info in db.runs())
    again = sweep(spec, store=db, engine="serial")
    assert (again.count("skipped"), again.count("complete")) == (5, 7)
    assert db.query("SELECT complete, pending FROM v_sweeps").row(0) == (12, 0)


def test_a_killed_worker_is_retried_and_its_point_completes(db, tmp_path, monkeypatch):
    spec = _spec(seeds=[0])
    victim = spec.points()[1]
    (tmp_path / f"{victim.run_id}.kill").touch()
    monkeypatch.setenv(FAULTS_ENV, str(tmp_path))
    result = sweep(spec, store=db, engine="local", workers=2)
    assert not (tmp_path / f"{victim.run_id}.kill").exists(), "the worker never picked up the marker"
    assert result.count("complete") == 4 and result.attempts[victim.run_id] == 2
    assert db.is_complete(victim.run_id)


def test_a_failing_point_is_marked_with_its_reason_and_leaves_no_run(db):
    spec = _spec(axes=[ListAxis(path="system.x.b", values=[1.0, -1.0])], seeds=[0])  # b must be > 0
    result = sweep(spec, store=db, engine="serial")
    bad = spec.points()[1].run_id
    assert result.status[bad] == "failed" and "b" in result.reasons[bad]
    assert bad not in {info.run_id for info in db.runs()}
    row = db.query("SELECT status, reason FROM v_sweep_points WHERE run_id = ?", [bad]).row(0)
    assert row[0] == "failed" and "InvalidEntityError" in row[1]


def test_the_summary_view_is_mean_and_sd_over_seeds(db):
    spec = _spec()
    sweep(spec, store=db, engine="serial")
    summary = db.query("SELECT axes, n, final_energy_mean, final_energy_sd FROM v_sweep_summary")
    assert len(summary) == 4 and set(summary["n"]) == {3}
    axes = json.dumps({"step_size": 0.2, "system.x.a": -0.5})
    runs = [p.run_id for p in spec.points() if p.values["step_size"] == 0.2 and p.values["system.x.a"] == -0.5]
    energies = db.query("SELECT final_energy FROM v_runs WHERE list_contains(?, run_id)", [runs])["final_energy"].to_numpy()
    row = summary.filter(summary["axes"] == axes).row(0)
    assert row[2] == pytest.approx(energies.mean(), rel=1e-12) and row[3] == pytest.approx(energies.std(ddof=1), rel=1e-9)


def test_the_ray_engine_stores_the_same_runs(db, tmp_path, require):
    require("ray")
    spec = _spec(seeds=[0])
    sweep(spec, store=db, engine="serial")
    with DuckDBStore(tmp_path / "ray.duckdb") as other:
        result = sweep(spec, store=other, engine="ray", workers=2)
        assert result.count("complete") == 4
        for point in spec.points():
            assert _events(other, point.run_id) == _events(db, point.run_id)


def test_cfc_sweep_run_and_show(cli, tmp_path):
    spec = _spec(seeds=[0, 1])
    path = tmp_path / "spec.json"
    path.write_text(spec.model_dump_json())
    db = tmp_path / "cli.duckdb"
    code, out, err = cli("sweep", "run", path, "--db", db, "--engine", "serial", "--quiet")
    assert code == 0, err
    assert "8 run, 0 already complete, 0 failed" in out
    code, out, _ = cli("sweep", "run", path, "--db", db, "--engine", "serial", "--quiet")
    assert code == 0 and "0 run, 8 already complete" in out
    code, out, _ = cli("sweep", "show", spec.name, "--db", db, "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 and all(r["n"] == 2 for r in rows)
    assert np.isfinite([r["final_energy_mean"] for r in rows]).all()


def _jobs(**changes):
    from complexity_from_constraints.adapters import Job, JobList

    jobs = [Job(system=SYSTEM.evolve(id=f"pair-{k}"), config=RelaxConfig(steps=20 + k, eta0="uniform"), seed=s,
                labels={"k": k}) for k in range(2) for s in range(2)]
    return JobList(**({"name": "pairs", "jobs": jobs} | changes))


def test_a_job_list_runs_each_job_as_relax_would_and_resumes(db, tmp_path):
    plan = _jobs()
    points = plan.points()
    assert [p.values for p in points] == [{"seed": s, "k": k} for k in range(2) for s in range(2)]
    assert len({p.run_id for p in points}) == 4 and plan.points() == points  # ids follow from the list
    first = sweep(plan, store=db, engine="serial")
    assert first.count("complete") == 4
    for point, job in zip(points, plan.jobs):
        expected = InMemoryStore()
        run_id = relax(job.system, job.config, seed=job.seed, store=expected).run_id
        assert _events(db, point.run_id) == _events(expected, run_id)
    again = sweep(plan, store=db, engine="serial")
    assert again.count("skipped") == 4 and again.count("complete") == 0


def test_a_job_list_on_the_process_pool_gives_the_same_events(db, tmp_path):
    plan = _jobs()
    sweep(plan, store=db, engine="local", workers=2)
    with DuckDBStore(tmp_path / "serial.duckdb") as serial:
        sweep(plan, store=serial, engine="serial")
        for point in plan.points():
            assert _events(db, point.run_id) == _events(serial, point.run_id)


def test_a_failing_job_is_reported_and_a_study_refuses_to_judge_without_it(db):
    from complexity_from_constraints.adapters import Job
    from complexity_from_constraints.experiments._framework import StudyRunError, relax_all

    good = Job(system=SYSTEM, config=RelaxConfig(steps=5))
    bad = Job(system=SYSTEM, config=RelaxConfig(steps=5, solver="no_such_solver"))
    with pytest.raises(StudyRunError, match=r"1 of 2 runs of mixed failed; first: .*no_such_solver"):
        relax_all("mixed", [good, bad], db)
    assert len(db.query("SELECT * FROM v_runs")) == 1  # the good run is kept; the bad one left nothing


def test_runs_are_stored_in_groups_and_a_refused_run_fails_alone(db, monkeypatch):
    from complexity_from_constraints.entities import LogIntegrityError

    plan = _jobs()
    victim = plan.points()[2].run_id
    append_runs = db.append_runs
    groups = []

    def refusing(runs):
        groups.append(len(runs))
        if any(run.run_id == victim for run, _ in runs):
            raise LogIntegrityError(f"run {victim!r} refused")
        return append_runs(runs)

    monkeypatch.setattr(db, "append_runs", refusing)
    result = sweep(plan, store=db, engine="serial")
    assert result.count("complete") == 3 and result.status[victim] == "failed"
    assert "refused" in result.reasons[victim]
    stored = set(db.query("SELECT run_id FROM v_runs")["run_id"])
    assert stored == {p.run_id for p in plan.points()} - {victim}  # the group rolled back, then each alone
    assert groups == [4, 1, 1, 1, 1]
    assert db.query("SELECT status FROM v_sweep_points WHERE run_id = ?", [victim])["status"][0] == "failed"
