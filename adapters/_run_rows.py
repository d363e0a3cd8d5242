"""A run's rows for the DuckDB store, built without a connection.

The store's own append builds a batch's rows here, and so does a sweep's worker
for a whole finished run (:func:`encode_run`): the worker compresses η and
serialises payloads in parallel with the other workers, and the driver, the
store's single writer, only inserts Arrow tables
(:meth:`DuckDBStore.append_runs`), many runs per statement.

>>> from complexity_from_constraints.entities import RelaxConfig, standard_system
>>> from complexity_from_constraints.events import InMemoryStore
>>> from complexity_from_constraints.projectors import relax
>>> memory = InMemoryStore()
>>> run_id = relax(standard_system(100, seed=0), RelaxConfig(steps=5), store=memory).run_id
>>> rows = encode_run(run_id, memory.read(run_id))
>>> rows.last_seq + 1 == rows.events.num_rows + rows.frames.num_rows, rows.eta_values
(True, 600)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from complexity_from_constraints.entities import LogIntegrityError
from complexity_from_constraints.events import (
    EtaRecorded,
    Recorded,
    RunFinished,
    RunStarted,
    encode,
)

from . import _eta_codec as codec
from ._run_params import run_params

PIECE = 4000  # bytes of an η blob per row of eta_blocks (see :func:`pieces`)

Chain = tuple  # (base step, position in the chain, η₋₁, η₋₂)
NEW_CHAIN: Chain = (0, codec.CHAIN, None, None)


def payload(event) -> str:
    """An event's stored payload; a System is stored once per digest in ``systems``, so RunStarted leaves it out."""
    if isinstance(event, RunStarted):
        return event.model_dump_json(exclude={"system"})
    return encode(event)


def event_rows(run_id: str, records: Sequence[Recorded]) -> pa.Table:
    """``events`` rows of records that are not η frames."""
    return pa.table({
        "run_id": pa.array([run_id] * len(records), pa.string()),
        "seq": pa.array([r.seq for r in records], pa.int64()),
        "type": pa.array([r.event.type for r in records], pa.string()),
        "schema_version": pa.array([r.event.schema_version for r in records], pa.int32()),
        "step": pa.array([r.step for r in records], pa.int32()),
        "payload": pa.array([payload(r.event) for r in records], pa.string()),
    })


def frame_rows(run_id: str, frames: Sequence[Recorded]) -> pa.Table:
    """``eta_frames`` rows of η frame records."""
    return pa.table({
        "run_id": pa.array([run_id] * len(frames), pa.string()),
        "seq": pa.array([r.seq for r in frames], pa.int64()),
        "step": pa.array([r.event.step for r in frames], pa.int32()),
        "schema_version": pa.array([EtaRecorded.schema_version] * len(frames), pa.int32()),
        "n": pa.array([r.event.eta.size for r in frames], pa.int32()),
    })


def compress(frames: Sequence[tuple[int, np.ndarray]], chain: Chain = NEW_CHAIN) -> tuple[pa.Table, Chain]:
    """Each frame compressed against the frames of its chain: ``(step, base, part, data)`` rows, and the chain after.

    A chain is at most ``codec.CHAIN`` consecutive frames of one size; it starts
    again after a size change (expansion). ``base`` is the step of its key frame.
    """
    base, pos, prev1, prev2 = chain
    steps, bases, blobs = [], [], []
    for step, eta in frames:
        pos += 1
        if pos >= codec.CHAIN or prev1 is None or prev1.size != eta.size:
            base, pos, prev1, prev2 = step, 0, None, None
        blobs.append(codec.encode(eta, codec.predict(prev1, prev2)))
        steps.append(step)
        bases.append(base)
        prev1, prev2 = eta, prev1
    return pieces(steps, bases, blobs), (base, pos, prev1, prev2)


def pieces(steps: Sequence[int], bases: Sequence[int], blobs: Sequence[bytes]) -> pa.Table:
    """Each frame's blob cut into rows of at most :data:`PIECE` bytes (``part`` 0, 1, …).

    DuckDB keeps values above a few kB apart, in blocks of their own, and its
    checkpoint copies them: the file grew by twice the bytes of large blobs.
    """
    lengths = np.fromiter((len(blob) for blob in blobs), np.int64, len(blobs))
    counts = np.maximum(1, -(-lengths // PIECE))
    starts = np.zeros(len(blobs), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    first = np.zeros(len(blobs), np.int64)  # each blob's first row
    np.cumsum(counts[:-1], out=first[1:])
    rows = int(counts.sum())
    part = np.arange(rows, dtype=np.int64) - np.repeat(first, counts)
    total = int(lengths.sum())
    offsets = np.empty(rows + 1, np.int64)  # each row's piece of the blobs, joined once: no Python object per piece
    offsets[:-1] = np.minimum(np.repeat(starts, counts) + part * PIECE, np.repeat(starts + lengths, counts))
    offsets[-1] = total
    kind, width = (pa.binary(), np.int32) if total < 2**31 else (pa.large_binary(), np.int64)
    data = pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(offsets.astype(width)), pa.py_buffer(b"".join(blobs))])
    return pa.table({"step": pa.array(np.repeat(np.asarray(steps, np.int32), counts), pa.int32()),
                     "base": pa.array(np.repeat(np.asarray(bases, np.int32), counts), pa.int32()),
                     "part": pa.array(part.astype(np.int32), pa.int32()),
                     "data": data})


def with_key(blocks: pa.Table, key: int) -> pa.Table:
    """``blocks`` with its run's ``run_key`` as the first column (the layout of ``eta_blocks``)."""
    return blocks.add_column(0, "run_key", pa.array(np.full(blocks.num_rows, key, np.int32)))


def padded(blocks: pa.Table, group: int) -> pa.Table:
    """``eta_blocks`` rows (``run_key`` first) as one chunk, padded with filler rows to a multiple of ``group`` rows.

    DuckDB appends an insert smaller than a row group to the table's last row
    group, and writes one of at least a row group straight into the file as whole
    row groups and the rest as a partly filled one; either way the next
    checkpoint rewrites the partly filled group (its blobs: up to 8 MB) together
    with its neighbours: 100–200 ms per run of 10⁵ modules, 10–15 ms per run of
    10⁴, more than the insert itself. An insert of at least a quarter of a row
    group is padded, so it fills whole ones of its own; a smaller one (a run of
    10³ modules: a few hundred kB) is appended as it is, where a rewrite costs
    little and padding would mostly add filler. A filler row belongs to no run
    (``run_key`` 0, ``part`` −1, no data), so no reader meets it: every read of
    η selects a run's key, and a frame's first row has ``part`` 0.

    >>> import pyarrow as pa
    >>> rows = pa.table({"run_key": [1] * 5, "step": [0] * 5, "base": [0] * 5, "part": list(range(5)),
    ...                  "data": [b"x"] * 5})
    >>> padded(rows, 4).num_rows, padded(rows, 4).column("part").to_pylist()[-4:], padded(rows, 8).num_rows
    (8, [4, -1, -1, -1], 8)
    >>> padded(rows, 32).num_rows  # under a quarter of a row group: appended as it is
    5
    """
    rows = blocks.num_rows
    pad = -rows % group
    if 4 * rows < group or not pad:
        return blocks.combine_chunks()
    fill = pa.table({"run_key": pa.array(np.zeros(pad, np.int32)), "step": pa.array(np.zeros(pad, np.int32)),
                     "base": pa.array(np.zeros(pad, np.int32)), "part": pa.array(np.full(pad, -1, np.int32)),
                     "data": pa.array([b""] * pad, blocks.schema.field("data").type)})
    return pa.concat_tables([blocks, fill.cast(blocks.schema)]).combine_chunks()


def ids_arrow(ids) -> pa.Array:
    """Module ids as one Arrow string array: each array's members by one vectorised concatenation, not a Python loop."""
    segments = getattr(ids, "segments", None)
    if segments is None:
        return pa.array(list(ids), pa.string())
    parts = []
    for seg in segments:
        if len(seg) == 3 and isinstance(seg[1], int) and not isinstance(seg[2], str):
            numbers = pa.array(np.arange(seg[1], seg[2], dtype=np.int64)).cast(pa.string())
            parts.append(pc.binary_join_element_wise(f"{seg[0]}/", numbers, ""))
        else:
            parts.append(pa.array(seg, pa.string()))
    return pa.concat_arrays([p.cast(pa.string()) for p in parts]) if parts else pa.array([], pa.string())


def module_rows(system) -> pa.Table:
    """A System's modules as rows (without ``system_digest`` or ``run_key``): position, id and kind."""
    n = system.n_modules
    codes, kinds = system.kind_codes()
    return pa.table({
        "idx": pa.array(np.arange(n, dtype=np.int32)),
        "module_id": ids_arrow(system.module_ids),
        "kind": pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(kinds, pa.string())).cast(pa.string()),
    })


def system_form(system) -> tuple[str, dict[str, np.ndarray]]:
    """What ``systems`` (and ``system_arrays``) keep of a System: its JSON, or its skeleton and its arrays by digest."""
    if not system.has_arrays:
        return system.canonical_json(), {}
    return json.dumps(system.skeleton(), sort_keys=True), system.arrays()


@dataclass(frozen=True)
class EncodedRun:
    """A whole run as the store's rows, ready to insert (``run_key`` is given by the store that takes it)."""

    run_id: str
    system_id: str
    system_digest: str
    seed: int
    n_modules: int
    package_version: str
    system_json: str
    system_arrays: dict[str, np.ndarray]
    modules: pa.Table  # idx, module_id, kind of the System's modules (stored once per System digest)
    added: pa.Table  # idx, module_id, kind of the modules expansion added during the run
    params: pa.Table  # key, value
    events: pa.Table  # the events table's rows
    frames: pa.Table  # the eta_frames table's rows
    blocks: pa.Table  # step, base, part, data
    last_seq: int
    eta_values: int
    finished: bool


def encode_run(run_id: str, records: Sequence[Recorded]) -> EncodedRun:
    """The rows of a whole run, from its records as a store reads them back (its append checked every event).

    The run's shape is checked again, since these rows bypass that append.

    Raises:
        LogIntegrityError: seqs not ``0, 1, …`` without gaps, no RunStarted first, RunStarted later, or
            events after RunFinished.
    """
    if not records or not isinstance(records[0].event, RunStarted):
        raise LogIntegrityError(f"run {run_id!r} must start with RunStarted")
    for k, rec in enumerate(records):
        if rec.seq != k:
            raise LogIntegrityError(f"run {run_id!r}: expected seq {k}, got {rec.seq}")
        if k and isinstance(rec.event, RunStarted):
            raise LogIntegrityError(f"run {run_id!r}: RunStarted may only be the first event")
        if isinstance(rec.event, RunFinished) and k != len(records) - 1:
            raise LogIntegrityError(f"run {run_id!r} is finished; its log is closed")
    started: RunStarted = records[0].event  # type: ignore[assignment]
    frames = [r for r in records if isinstance(r.event, EtaRecorded)]
    others = [r for r in records if not isinstance(r.event, EtaRecorded)]
    system = started.system
    added = [r.event.module for r in others if r.event.type == "ModuleAdded"]
    n = system.n_modules
    params = run_params(started)
    blocks, _ = compress([(r.event.step, r.event.eta) for r in frames])
    system_json, arrays = system_form(system)
    return EncodedRun(
        run_id=run_id, system_id=system.id, system_digest=started.system_digest, seed=started.seed,
        n_modules=system.n_modules, package_version=started.package_version, system_json=system_json,
        system_arrays=arrays, modules=module_rows(system),
        added=pa.table({"idx": pa.array(np.arange(n, n + len(added), dtype=np.int32)),
                        "module_id": pa.array([m["id"] for m in added], pa.string()),
                        "kind": pa.array([m["kind"] for m in added], pa.string())}),
        params=pa.table({"key": pa.array([k for k, _ in params], pa.string()),
                         "value": pa.array([v for _, v in params], pa.string())}),
        events=event_rows(run_id, others), frames=frame_rows(run_id, frames), blocks=blocks,
        last_seq=records[-1].seq, eta_values=sum(r.event.eta.size for r in frames),
        finished=isinstance(records[-1].event, RunFinished))
