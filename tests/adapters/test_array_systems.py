"""A System of array-backed entities in the DuckDB store: stored compactly, read back equal, and every user
feature (views, replay, re-run, fork, diff, export/import) names the members by their ids."""

from __future__ import annotations

import numpy as np

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters._export import export_runs, import_runs
from complexity_from_constraints.entities import (
    CouplingArray,
    LandauModule,
    ModuleArray,
    QuadraticCoupling,
    RelaxConfig,
    System,
    standard_array_system,
)
from complexity_from_constraints.projectors import diff_runs, fork, relax, replay, rerun


def lattice_system(a_last: float = 0.4) -> System:
    a = np.linspace(-1.0, a_last, 50)
    return System(id="lat", modules=[LandauModule(id="hub", a=-0.5)],
                  module_arrays=[ModuleArray(id="w", member_kind="landau", n=50, values={"a": a, "h": 0.01})],
                  coupling_arrays=[CouplingArray(id="e", member_kind="directed_hinge", i=np.arange(49),
                                                 j=np.arange(1, 50), values={"weight": 0.3})],
                  couplings=[QuadraticCoupling(id="spoke", i="w/7", j="hub")])


def test_the_system_is_stored_as_skeleton_and_bytes_and_read_back_equal(tmp_path):
    s = lattice_system()
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run = relax(s, RelaxConfig(steps=5, step_size=0.05), store=store)
        relax(s, RelaxConfig(steps=3, step_size=0.05), store=store)  # the same System: its arrays stored once
        text = store.query("SELECT system_json FROM systems")["system_json"].to_list()
        arrays = store.query("SELECT array_digest, octet_length(data) AS size FROM system_arrays")
    assert len(text) == 1 and "base64" not in text[0] and len(text[0]) < 2000
    assert sorted(arrays["size"].to_list()) == sorted(a.nbytes for a in s.arrays().values())
    with DuckDBStore(tmp_path / "runs.duckdb", read_only=True) as store:
        started = store.read(run.run_id, types=["RunStarted"])[0].event
        assert started.system == s and started.system.digest() == s.digest() == started.system_digest
        ids = store.query("SELECT module_id, kind FROM run_modules WHERE run_key = 1 ORDER BY idx")
        assert ids["module_id"].to_list() == list(s.module_ids) and set(ids["kind"]) == {"landau"}
        eta = store.query("SELECT entity_id, eta FROM v_eta WHERE run_id = ? AND step = 5", [run.run_id])
        assert dict(zip(eta["entity_id"], eta["eta"])) == run.as_dict()
        assert replay(store, run.run_id, 5).eta_of("w/7") == run.eta_of("w/7")


def test_rerun_fork_diff_and_export_of_an_array_system(tmp_path):
    config = RelaxConfig(steps=8, step_size=0.05)
    with DuckDBStore(tmp_path / "a.duckdb") as store:
        a = relax(lattice_system(), config, store=store)
        again = rerun(store, a.run_id)
        assert again.energy == a.energy and np.array_equal(again.eta, a.eta)
        forked = fork(store, a.run_id, 4, {"steps": 10})
        assert diff_runs(store, a.run_id, forked.run_id).first_divergence is None or \
            diff_runs(store, a.run_id, forked.run_id).first_divergence > 4
        b = relax(lattice_system(a_last=0.45), config, store=store)
        d = diff_runs(store, a.run_id, b.run_id)
        assert list(d.entities) == ["w"] and d.entities["w"]["values.a[1]"][0] != d.entities["w"]["values.a[1]"][1]
        export_runs(store, tmp_path / "out", [a.run_id])
    with DuckDBStore(tmp_path / "b.duckdb") as other:
        assert import_runs(other, tmp_path / "out") == [a.run_id]
        started = other.read(a.run_id, types=["RunStarted"])[0].event
        assert started.system == lattice_system()
        assert rerun(other, a.run_id).energy == a.energy


def test_a_hundred_thousand_members_cost_arrays_not_json(tmp_path):
    s = standard_array_system(100_000, seed=1)
    with DuckDBStore(tmp_path / "big.duckdb") as store:
        run = relax(s, RelaxConfig(steps=2, step_size=0.05), store=store)
        size = store.query("SELECT strlen(system_json) AS n FROM systems")["n"][0]
        last = store.query("SELECT module_id FROM run_modules WHERE idx = 99999")["module_id"][0]
        assert store.read(run.run_id, types=["RunStarted"])[0].event.system.digest() == s.digest()
    assert size < 4000 and last == "m/99999"
