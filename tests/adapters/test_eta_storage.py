"""η frames are stored compressed and read back bit for bit, through replay, read and the views."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.adapters import _eta_codec as codec
from complexity_from_constraints.entities import RelaxConfig, StoreError, UnknownRunError, standard_system
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import relax, replay


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), frames=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-12, 1e-3, 0.3, 1.0, 1e300]))
def test_any_chain_of_frames_decodes_to_the_same_bits(n, frames, seed, scale):
    rng = np.random.default_rng(seed)
    chain = [rng.uniform(0.0, 1.0, n)]
    for _ in range(frames - 1):
        chain.append(chain[-1] + scale * rng.normal(size=n))
    chain[-1][: n // 3] = chain[0][: n // 3]  # converged modules repeat their value
    special = np.array([0.0, -0.0, 1.0, 5e-324, -1.5, 2.0**-1074, 1e308])
    chain[0][: min(n, special.size)] = special[: min(n, special.size)]
    decoded = codec.decode_chain(codec.encode_chain(chain))
    assert [a.tobytes() for a in decoded] == [b.tobytes() for b in chain]


def test_work_arrays_are_reused_without_leaking_between_frames_sizes_or_threads():
    """encode and decode reuse this thread's work arrays: a blob never depends on what was coded before it."""
    import threading

    rng = np.random.default_rng(7)
    big = [rng.uniform(0.0, 1.0, 5000) + 1e-6 * k for k in range(6)]
    small = [rng.uniform(0.0, 1.0, 300) for _ in range(4)]
    alone = [codec.encode_chain(chain) for chain in (big, small)]
    mixed = [codec.encode_chain(big), codec.encode_chain(small), codec.encode_chain(big)]  # a smaller size, then larger
    assert mixed == [alone[0], alone[1], alone[0]]
    assert [a.tobytes() for a in codec.decode_chain(mixed[0])] == [b.tobytes() for b in big]
    results: dict[int, list[bool]] = {}

    def worker(k: int) -> None:  # threads coding chains of two sizes at once, each with its own work arrays
        which = k % 2
        results[k] = [codec.encode_chain((big, small)[which]) == alone[which] for _ in range(20)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(all(v) for v in results.values()) and len(results) == 4


def test_a_relaxation_is_stored_in_under_six_bytes_per_value_and_reads_back_exactly():
    system = standard_system(3000, seed=0)
    config = RelaxConfig(steps=60, step_size=0.05, eta0="uniform", tol=0.0)
    with DuckDBStore(":memory:") as store:
        reference = InMemoryStore()
        r = relax(system, config, store=store, flush_every=7)  # chains cross batch boundaries
        ref = relax(system, config, store=reference)
        stored = store.query("SELECT sum(octet_length(data)) AS b, count(*) AS f FROM eta_blocks").row(0)
        values = 3000 * stored[1]
        assert stored[0] / values < 6.0, f"{stored[0] / values:.2f} bytes per η value"
        mine = [x.event.eta for x in store.read(r.run_id, types=["EtaRecorded"])]
        theirs = [x.event.eta for x in reference.read(ref.run_id, types=["EtaRecorded"])]
        assert [a.tobytes() for a in mine] == [b.tobytes() for b in theirs]
        for step in (0, 1, 7, 8, 9, 33, 60):
            state = replay(store, r.run_id, step)
            assert state.eta.tobytes() == replay(reference, ref.run_id, step).eta.tobytes()
            view = store.query("SELECT entity_id, eta FROM v_eta WHERE run_id = ? AND step = ? ORDER BY entity_id",
                               [r.run_id, step])
            expected = sorted(zip(state.ids, state.eta.tolist()))
            assert list(zip(view["entity_id"], view["eta"])) == expected


def test_a_chain_restarts_when_expansion_changes_the_frame_size():
    from complexity_from_constraints.entities import Candidate, ExpansionConfig, LandauModule

    newcomer = Candidate(module=LandauModule(id="new", a=-1.0, b=1.0, eta0=0.5))
    config = RelaxConfig(steps=20, step_size=0.05, tol=0.0,
                         expansion=ExpansionConfig(every=6, local_steps=30, candidates=(newcomer,)))
    system = standard_system(200, seed=3)  # frames of 200 values: the plane coding, not the small raw one
    with DuckDBStore(":memory:") as store:
        reference = InMemoryStore()
        r = relax(system, config, store=store, flush_every=3)
        ref = relax(system, config, store=reference)
        sizes = [x.event.eta.size for x in store.read(r.run_id, types=["EtaRecorded"])]
        assert sizes[0] == 200 and sizes[-1] == 201, "the run did not expand"
        mine, theirs = store.read(r.run_id), reference.read(ref.run_id)
        assert [(x.seq, x.event) for x in mine] == [(x.seq, x.event) for x in theirs]
        assert replay(store, r.run_id).eta.tobytes() == r.eta.tobytes()


class CountingStore(InMemoryStore):
    def __init__(self):
        super().__init__()
        self.id_reads = 0

    def module_ids(self, run_id):
        self.id_reads += 1
        return super().module_ids(run_id)


def test_replay_reads_the_module_ids_only_when_they_are_used(toy_system):
    store = CountingStore()
    r = relax(toy_system, RelaxConfig(steps=10), store=store)
    state = replay(store, r.run_id, 5)
    assert store.id_reads == 0 and len(state.ids) == 4
    assert tuple(state.ids) == ("a", "b", "c", "gate") and state.eta_of("b") == state.eta[1]
    assert store.id_reads == 1


def test_ids_of_a_replayed_state_are_refused_clearly_once_the_store_is_closed(toy_system):
    store = DuckDBStore(":memory:")
    r = relax(toy_system, RelaxConfig(steps=3), store=store)
    state = replay(store, r.run_id)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        list(state.ids)


def test_frames_read_a_few_at_a_time_are_read_only_and_match_every_store(tmp_path):
    """etas_at and latest_eta share the chain the store decoded last; frames are read-only, so sharing is safe."""
    system = standard_system(200, seed=1)
    config = RelaxConfig(steps=20, step_size=0.05, eta0="uniform", tol=0.0)
    memory = InMemoryStore()
    ref = relax(system, config, store=memory)
    with DuckDBStore(tmp_path / "few.duckdb") as store:
        r = relax(system, config, store=store)
        want = {rec.event.step: rec.event.eta for rec in memory.read(ref.run_id, types=["EtaRecorded"])}
        first = store.latest_eta(r.run_id, 14)
        assert first.step == 14 and first.eta.tobytes() == want[14].tobytes()
        with pytest.raises(ValueError, match="read-only"):
            first.eta[:] = -1.0
        got = store.etas_at(r.run_id, [13, 14, 99])  # from the chain decoded above
        assert sorted(got) == [13, 14] and all(got[s].eta.tobytes() == want[s].tobytes() for s in got)
        assert not got[13].eta.flags.writeable
        assert store.etas_at(r.run_id, [2, 19])[19].eta.tobytes() == want[19].tobytes()  # another chain
        assert {s: f.eta.tobytes() for s, f in memory.etas_at(ref.run_id, [13, 14, 99]).items()} == \
            {s: want[s].tobytes() for s in (13, 14)}
        assert store.etas_at(r.run_id, []) == {}
        store.delete_runs([r.run_id])
        with pytest.raises(UnknownRunError):
            store.etas_at(r.run_id, [13])


def test_a_store_file_keeps_small_row_groups_so_checkpoints_do_not_rewrite_blobs(tmp_path):
    """Row groups of ROW_GROUP_SIZE rows: a checkpoint rewrote a partly filled default-size one (up to ~500 MB of
    η blobs at 10^5 modules) whole, every time."""
    from complexity_from_constraints.adapters._duckdb_host import ROW_GROUP_SIZE

    path = tmp_path / "groups.duckdb"
    with DuckDBStore(path) as store:
        store._execute("CREATE TABLE probe AS SELECT range AS x FROM range(5000)")
        store.checkpoint()
        groups = store.query("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('probe')").item()
        assert groups == -(-5000 // ROW_GROUP_SIZE) >= 3
        assert store.query("SELECT current_database()").item() == "cfc_store"
    with DuckDBStore(path, read_only=True) as store:  # read-only opens attach the same way
        assert store.query("SELECT count(*) FROM probe").item() == 5000


def test_blob_columns_skip_duckdbs_compression_analysis(tmp_path):
    """η blobs and System arrays are compressed already: DuckDB's analysis of them cost ~10x the write itself
    and then kept them uncompressed. Both columns are declared uncompressed, and the other columns are not."""
    from complexity_from_constraints.entities import standard_array_system

    with DuckDBStore(tmp_path / "blobs.duckdb") as store:
        relax(standard_array_system(3000, seed=1), RelaxConfig(steps=12, tol=0.0), store=store)
        store.checkpoint()
        for table in ("eta_blocks", "system_arrays"):
            sql = store.query("SELECT sql FROM duckdb_tables() WHERE database_name = current_database() "
                              "AND table_name = ?", [table]).item()
            assert "data BLOB USING COMPRESSION Uncompressed" in sql.replace('"', "")
            methods = dict(store.query(f"SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info('{table}') "
                                       "GROUP BY ALL").iter_rows())
            assert set(methods["data"]) <= {"Uncompressed", "Constant"}, methods
        methods = dict(store.query("SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info('eta_blocks') "
                                   "GROUP BY ALL").iter_rows())
        assert "Uncompressed" not in methods["step"]  # the small columns keep DuckDB's choice


def test_blob_inserts_fill_whole_row_groups_and_the_filler_is_seen_by_no_reader(tmp_path):
    """An insert of η blobs that spans row groups is padded to whole ones: DuckDB wrote the rest as a partly filled
    row group that every checkpoint's vacuum rewrote (100-200 ms per run of 10^5 modules)."""
    from complexity_from_constraints.adapters._duckdb_host import ROW_GROUP_SIZE
    from complexity_from_constraints.entities import standard_array_system

    system = standard_array_system(20_000, seed=3)
    config = RelaxConfig(steps=100, step_size=0.05, eta0="uniform", tol=0.0, snapshots=None)
    memory = InMemoryStore()
    want = relax(system, config, store=memory)
    with DuckDBStore(tmp_path / "padded.duckdb") as store:
        runs = [relax(system, config, store=store, flush_values=1 << 30, flush_every=1 << 30, pipelined=False)
                for _ in range(2)]  # one batch of η per run, more than a row group of pieces
        store.checkpoint()
        rows = store.query("SELECT count(*) FROM eta_blocks WHERE run_key > 0 GROUP BY run_key")[:, 0].to_list()
        assert len(rows) == 2 and min(rows) > ROW_GROUP_SIZE and max(rows) % ROW_GROUP_SIZE
        groups = store.query("SELECT row_group_id, any_value(count) AS n FROM pragma_storage_info('eta_blocks') "
                             "WHERE column_name = 'run_key' GROUP BY ALL ORDER BY ALL")["n"].to_list()
        assert groups == [ROW_GROUP_SIZE] * (sum(-(-r // ROW_GROUP_SIZE) for r in rows)), groups
        filler = store.query("SELECT count(*), min(part), max(part), max(octet_length(data)) FROM eta_blocks "
                             "WHERE run_key = 0").rows()[0]
        assert filler == (sum(-r % ROW_GROUP_SIZE for r in rows), -1, -1, 0)
        for run in runs:  # every reader sees the run's frames only
            frames = store.read(run.run_id, types=["EtaRecorded"])
            assert [f.event.eta.tobytes() for f in frames] == [
                f.event.eta.tobytes() for f in memory.read(want.run_id, types=["EtaRecorded"])]
            assert store.query("SELECT count(*) FROM v_eta WHERE run_id = ?", [run.run_id]).item() == 20_000 * 101
            assert replay(store, run.run_id, 37).eta.tobytes() == replay(memory, want.run_id, 37).eta.tobytes()
        assert store.query("SELECT count(DISTINCT run_key) FROM eta_values").item() == 2
        store.delete_runs([runs[0].run_id])
        assert store.query("SELECT count(*) FROM eta_values").item() == 20_000 * 101


@pytest.mark.parametrize("n, padded", [(8_000, True), (1_000, False)])
def test_blob_inserts_under_a_row_group_are_padded_from_a_quarter_of_one(tmp_path, n, padded):
    """A run of 10^4 modules inserts ~1,400 rows of blobs: appended to the last row group, they made every
    checkpoint rewrite it (10-15 ms per run); from a quarter of a row group an insert is padded to a whole one. A
    run of 10^3 (a few hundred rows) is appended as it is."""
    from complexity_from_constraints.adapters._duckdb_host import ROW_GROUP_SIZE
    from complexity_from_constraints.entities import standard_array_system

    system = standard_array_system(n, seed=3)
    config = RelaxConfig(steps=100, step_size=0.05, eta0="uniform", tol=0.0, snapshots=None)
    memory = InMemoryStore()
    want = relax(system, config, store=memory)
    with DuckDBStore(tmp_path / "small.duckdb") as store:
        runs = [relax(system, config, store=store) for _ in range(3)]
        store.checkpoint()
        rows = store.query("SELECT count(*) FROM eta_blocks WHERE run_key > 0 GROUP BY run_key")[:, 0].to_list()
        assert len(rows) == 3 and (ROW_GROUP_SIZE // 4 <= min(rows) < ROW_GROUP_SIZE if padded
                                   else max(rows) < ROW_GROUP_SIZE // 4), rows
        groups = store.query("SELECT row_group_id, any_value(count) AS n FROM pragma_storage_info('eta_blocks') "
                             "WHERE column_name = 'run_key' GROUP BY ALL ORDER BY ALL")["n"].to_list()
        filler = store.query("SELECT count(*) FROM eta_blocks WHERE run_key = 0").item()
        if padded:
            assert groups == [ROW_GROUP_SIZE] * 3 and filler == sum(ROW_GROUP_SIZE - r for r in rows), groups
        else:
            assert groups == [sum(rows)] and filler == 0, groups
        for run in runs:
            assert replay(store, run.run_id, 37).eta.tobytes() == replay(memory, want.run_id, 37).eta.tobytes()
