"""Run diff: two runs compared as a person reads them.

Config and entity differences, the seed, the first step at which the η
trajectories part by more than a tolerance, the energy traces side by side, and
the gate events one run has and the other has not.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from complexity_from_constraints.entities import CouplingArray, ModuleArray, System, UnknownRunError, flatten_fields
from complexity_from_constraints.events import AbstractEventStore, EtaRecorded, GateClosed, GateOpened, RunStarted, StepCommitted

Pair = tuple[Any, Any]
GateKey = tuple[str, int, str]  # (gate_id, step, 'opened' | 'closed')


@dataclass(frozen=True)
class RunDiff:
    """How run B differs from run A (every pair is ``(value in A, value in B)``).

    Attributes:
        run_a, run_b: the run ids compared.
        tol: the tolerance on |η_a − η_b| and |E_a − E_b|.
        config: flattened ``RelaxConfig`` keys (``"eta0"``, ``"steps"``, …) that differ.
        seed: ``(seed_a, seed_b)``, or ``None`` when equal.
        system: flattened System-level fields that differ (``"id"``, ``"family_weights.gate"``, …).
        only_in_a, only_in_b: entity ids (modules and couplings) present in one System only.
        entities: for entities present in both, ``{entity id: {field: (a, b)}}`` of the fields that differ
            (an absent field is ``None``).
        first_divergence: the first step at which max |η_a − η_b| over the common module ids exceeds
            ``tol`` (each run's η is the last frame recorded at or before the step; a run that ended
            keeps its final state), or ``None`` if never. A run in snapshot mode knows η only at its
            recorded steps (every k, and where η did not change since one): steps where either run's
            η was not recorded are skipped, so a divergence shows at the next step both recorded
            (``first_energy_difference`` still compares every step).
        max_eta_gap: max |η_a − η_b| at ``first_divergence`` (``None`` with it).
        first_energy_difference: the first step whose energies differ by more than ``tol`` or that
            only one run has, or ``None``.
        energy: ``(step, e_a, e_b)`` for every step of either run (``None`` where a run has no such step).
        gates_only_in_a, gates_only_in_b: gate events ``(gate_id, step, event)`` in one run only.
    """

    run_a: str
    run_b: str
    tol: float
    config: dict[str, Pair] = field(default_factory=dict)
    seed: Pair | None = None
    system: dict[str, Pair] = field(default_factory=dict)
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()
    entities: dict[str, dict[str, Pair]] = field(default_factory=dict)
    first_divergence: int | None = None
    max_eta_gap: float | None = None
    first_energy_difference: int | None = None
    energy: tuple[tuple[int, float | None, float | None], ...] = ()
    gates_only_in_a: tuple[GateKey, ...] = ()
    gates_only_in_b: tuple[GateKey, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when the runs agree on everything compared (their ids aside)."""
        return not (self.config or self.seed or self.system or self.only_in_a or self.only_in_b or self.entities
                    or self.gates_only_in_a or self.gates_only_in_b) \
            and self.first_divergence is None and self.first_energy_difference is None

    def mirror(self) -> RunDiff:
        """The diff of B against A: every pair swapped, every "only in" exchanged."""
        return RunDiff(
            run_a=self.run_b, run_b=self.run_a, tol=self.tol,
            config=_swap(self.config),
            seed=None if self.seed is None else (self.seed[1], self.seed[0]),
            system=_swap(self.system),
            only_in_a=self.only_in_b, only_in_b=self.only_in_a,
            entities={k: _swap(v) for k, v in self.entities.items()},
            first_divergence=self.first_divergence, max_eta_gap=self.max_eta_gap,
            first_energy_difference=self.first_energy_difference,
            energy=tuple((s, b, a) for s, a, b in self.energy),
            gates_only_in_a=self.gates_only_in_b, gates_only_in_b=self.gates_only_in_a,
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (pairs become two-element lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["is_empty"] = self.is_empty
        return json.loads(json.dumps(out, default=list))

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`as_dict` as a JSON string."""
        return json.dumps(self.as_dict(), indent=indent)


def diff_runs(store: AbstractEventStore, run_a: str, run_b: str, *, tol: float = 1e-9) -> RunDiff:
    """Compare two runs of one store.

    Args:
        store: the event store holding both runs.
        run_a, run_b: the run ids; a pair in the result is ``(value in A, value in B)``.
        tol: the largest |η_a − η_b| (and |E_a − E_b|) still counted as equal.

    Returns:
        A :class:`RunDiff`; ``diff_runs(s, a, b).mirror() == diff_runs(s, b, a)``.

    Raises:
        UnknownRunError: a run id the store does not hold.

    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> from complexity_from_constraints.events import InMemoryStore
    >>> from complexity_from_constraints.projectors import relax
    >>> store = InMemoryStore()
    >>> s = System(id="s", modules=[LandauModule(id="m", a=-1.0, eta0=0.2)])
    >>> a = relax(s, RelaxConfig(steps=20), store=store).run_id
    >>> b = relax(s, RelaxConfig(steps=20, step_size=0.1), store=store).run_id
    >>> d = diff_runs(store, a, b)
    >>> d.config, d.first_divergence
    ({'step_size': (0.05, 0.1)}, 1)
    >>> diff_runs(store, a, a).is_empty
    True
    """
    start_a, start_b = _started(store, run_a), _started(store, run_b)
    config = _pairs(flatten_fields(start_a.config.model_dump(mode="json")), flatten_fields(start_b.config.model_dump(mode="json")))
    seed = None if start_a.seed == start_b.seed else (start_a.seed, start_b.seed)
    system, only_a, only_b, entities = _system_diff(start_a.system, start_b.system)
    events_a = store.read(run_a, types=["StepCommitted", "EtaRecorded", "GateOpened", "GateClosed", "ModuleAdded"])
    events_b = store.read(run_b, types=["StepCommitted", "EtaRecorded", "GateOpened", "GateClosed", "ModuleAdded"])
    divergence, gap = _first_divergence(events_a, store.module_ids(run_a), events_b, store.module_ids(run_b), tol)
    energy, first_energy = _energy(events_a, events_b, tol)
    gates_a, gates_b = _gate_events(events_a), _gate_events(events_b)
    return RunDiff(
        run_a=run_a, run_b=run_b, tol=tol, config=config, seed=seed, system=system,
        only_in_a=only_a, only_in_b=only_b, entities=entities,
        first_divergence=divergence, max_eta_gap=gap, first_energy_difference=first_energy, energy=energy,
        gates_only_in_a=tuple(sorted(gates_a - gates_b, key=_gate_order)),
        gates_only_in_b=tuple(sorted(gates_b - gates_a, key=_gate_order)),
    )


def _started(store: AbstractEventStore, run_id: str) -> RunStarted:
    started = store.read(run_id, types=["RunStarted"])
    if not started:
        raise UnknownRunError(f"no run {run_id!r} in this store")
    return started[0].event  # type: ignore[return-value]


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Pair]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k) or (k in a) != (k in b)}


def _swap(pairs: dict[str, Pair]) -> dict[str, Pair]:
    return {k: (b, a) for k, (a, b) in pairs.items()}


def _system_diff(a: System, b: System):
    if a.digest() == b.digest():
        return {}, (), (), {}
    entity_fields = {"modules", "couplings", "module_arrays", "coupling_arrays"}
    top_a = flatten_fields(a.model_dump(mode="json", exclude=entity_fields))
    top_b = flatten_fields(b.model_dump(mode="json", exclude=entity_fields))
    ents_a = {e.id: e for e in (*a.modules, *a.couplings, *a.module_arrays, *a.coupling_arrays)}
    ents_b = {e.id: e for e in (*b.modules, *b.couplings, *b.module_arrays, *b.coupling_arrays)}
    only_a = tuple(sorted(ents_a.keys() - ents_b.keys()))
    only_b = tuple(sorted(ents_b.keys() - ents_a.keys()))
    entities = {}
    for key in sorted(ents_a.keys() & ents_b.keys()):
        if ents_a[key] != ents_b[key] and isinstance(ents_a[key], (ModuleArray, CouplingArray)):
            changed = _array_pairs(ents_a[key], ents_b[key])
            if changed:
                entities[key] = changed
        elif ents_a[key] != ents_b[key]:
            changed = _pairs(flatten_fields(ents_a[key].model_dump(mode="json")), flatten_fields(ents_b[key].model_dump(mode="json")))
            if changed:
                entities[key] = changed
    return _pairs(top_a, top_b), only_a, only_b, entities


def _array_pairs(a, b, shown: int = 3) -> dict[str, Pair]:
    """Two versions of an array entity: its scalar fields, then the first ``shown`` members that differ per array."""
    if type(a) is not type(b):
        return {"kind": (a.kind, b.kind)}
    out = _pairs(flatten_fields(a.model_dump(mode="json", exclude={"values", "i", "j"})),
                 flatten_fields(b.model_dump(mode="json", exclude={"values", "i", "j"})))
    names = sorted(set(a._arrays()) | set(b._arrays()))
    for name in names:
        x = a._arrays().get(name, a.column(name.removeprefix("values.")) if name.startswith("values.") else None)
        y = b._arrays().get(name, b.column(name.removeprefix("values.")) if name.startswith("values.") else None)
        if x is None or y is None or x.shape != y.shape:
            out[name] = (None if x is None else f"{x.size} values", None if y is None else f"{y.size} values")
            continue
        for k in np.flatnonzero(x != y)[:shown]:
            out[f"{name}[{k}]"] = (x[k].item(), y[k].item())
    return out


def _frames(events, ids: tuple[str, ...], common: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and η of the common ids, one row per frame; NaN where a module did not exist yet."""
    frames = [r.event for r in events if isinstance(r.event, EtaRecorded)]
    steps = np.array([f.step for f in frames], dtype=np.int64)
    sizes = np.array([f.eta.size for f in frames], dtype=np.int64)
    grid = np.full((len(frames), max(len(ids), int(sizes.max(initial=0)))), np.nan)
    if len(frames) and np.all(sizes == sizes[0]):
        grid[:, : sizes[0]] = np.stack([f.eta for f in frames])
    else:  # expansion grew the System during the run: frames have different lengths
        rows = np.repeat(np.arange(len(frames)), sizes)
        cols = np.concatenate([np.arange(n) for n in sizes]) if len(frames) else np.zeros(0, np.int64)
        grid[rows, cols] = np.concatenate([f.eta for f in frames]) if len(frames) else []
    return steps, grid[:, np.array([ids.index(m) for m in common], dtype=np.int64)]


def _first_divergence(events_a, ids_a, events_b, ids_b, tol: float) -> tuple[int | None, float | None]:
    common = sorted(set(ids_a) & set(ids_b))
    steps_a, eta_a = _frames(events_a, ids_a, common)
    steps_b, eta_b = _frames(events_b, ids_b, common)
    if not common or not len(steps_a) or not len(steps_b):
        return None, None
    steps = np.union1d(steps_a, steps_b)
    steps = steps[steps >= max(steps_a[0], steps_b[0])]  # both runs have a state from here on
    # η in force at each step: the last frame recorded at or before it (frames come in step order).
    row_a = np.searchsorted(steps_a, steps, side="right") - 1
    row_b = np.searchsorted(steps_b, steps, side="right") - 1
    # In snapshot mode a frame is η at its own step only: a later step that changed η has none. Compare where both know η.
    known = (steps_a[row_a] >= _last_change(events_a, steps)) & (steps_b[row_b] >= _last_change(events_b, steps))
    steps, at_a, at_b = steps[known], eta_a[row_a[known]], eta_b[row_b[known]]
    has_a, has_b = ~np.isnan(at_a), ~np.isnan(at_b)
    # A module present in one run only at that step differs infinitely; absent from both, not at all.
    gaps = np.where(has_a & has_b, np.abs(at_a - at_b), np.where(has_a ^ has_b, np.inf, 0.0)).max(axis=1)
    over = np.flatnonzero(gaps > tol)
    if not len(over):
        return None, None
    return int(steps[over[0]]), float(gaps[over[0]])


def _last_change(events, steps: np.ndarray) -> np.ndarray:
    """For each of ``steps``, the last step at or before it that changed η (an accepted step, a module added)."""
    changes = np.array(sorted({r.event.step for r in events if (isinstance(r.event, StepCommitted) and r.event.accepted)
                               or r.event.type == "ModuleAdded"}), dtype=np.int64)
    at = np.searchsorted(changes, steps, side="right") - 1
    return np.where(at >= 0, changes[np.maximum(at, 0)] if len(changes) else -1, -1)


def _energy(events_a, events_b, tol: float):
    ea = {r.event.step: r.event.energy for r in events_a if isinstance(r.event, StepCommitted)}
    eb = {r.event.step: r.event.energy for r in events_b if isinstance(r.event, StepCommitted)}
    trace = tuple((s, ea.get(s), eb.get(s)) for s in sorted(ea.keys() | eb.keys()))
    first = next((s for s, a, b in trace if a is None or b is None or not _close(a, b, tol)), None)
    return trace, first


def _close(a: float, b: float, tol: float) -> bool:
    return a == b or abs(a - b) <= tol or (math.isnan(a) and math.isnan(b))


def _gate_events(events) -> set[GateKey]:
    out = set()
    for r in events:
        if isinstance(r.event, GateOpened):
            out.add((r.event.gate_id, r.event.step, "opened"))
        elif isinstance(r.event, GateClosed):
            out.add((r.event.gate_id, r.event.step, "closed"))
    return out


def _gate_order(key: GateKey) -> tuple[int, str, str]:
    return key[1], key[0], key[2]
