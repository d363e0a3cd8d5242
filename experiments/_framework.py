"""The study framework: a frozen config, a ``run`` that records its runs, a result that says whether it held.

A study is one module ``experiments/<name>.py`` exposing

- a frozen config model (a subclass of :class:`entities.AbstractFrozen`) whose
  defaults are the seed system's,
- ``run(config, store, progress=None) -> StudyResult``, which relaxes its
  Systems with ``projectors.relax(..., store=store)`` and reads every number it
  reports back through the store's SQL views,
- ``STUDY = Study(...)``, which an entry point of the group
  ``complexity_from_constraints.studies`` in ``pyproject.toml`` names
  (``name = "complexity_from_constraints.experiments.<name>:STUDY"``), so that
  ``cfc experiment <name>`` finds it without this package being imported by anyone.

Nothing here imports DuckDB: ``store`` is any object with ``query(sql, params)``
returning a Polars frame (``adapters.DuckDBStore``) that ``relax`` can record into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import polars as pl
from pydantic import Field

from complexity_from_constraints.entities import (
    AbstractFrozen,
    GateBenefitCoupling,
    GateModule,
    QuadraticCoupling,
    SequenceModule,
    System,
    monotonicity,
)

Scalar = float | int | bool | str | None


class StudyResult(AbstractFrozen):
    """What a study found: the hypothesis, the measured numbers, and whether the hypothesis held.

    ``held`` is ``None`` only for a study that measures without testing a
    yes/no claim. ``seed_result`` is the number the seed system recorded (or
    that a re-run of the seed produced), where there is one; ``notes`` say
    what this version does differently, especially where the seed's number
    came from a defect. ``metrics`` are the headline numbers, ``rows`` the
    per-run or per-cell detail, ``run_ids`` the runs in the store.
    """

    study: str
    hypothesis: str
    measured: str
    held: bool | None
    seed_result: str | None = None
    notes: str = ""
    metrics: dict[str, Scalar] = Field(default_factory=dict)
    rows: tuple[dict[str, Scalar], ...] = ()
    run_ids: tuple[str, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``"held"``, ``"did not hold"`` or ``"not a yes/no test"``."""
        return {True: "held", False: "did not hold", None: "not a yes/no test"}[self.held]


@dataclass(frozen=True)
class Study:
    """A registry entry: the study's name, a one-line title, its config model and its ``run``."""

    name: str
    title: str
    config: type[AbstractFrozen]
    run: Callable[..., StudyResult]


class Progress:
    """Units of work done by a study; ``listener(done, total, description)`` draws them (default: nothing).

    >>> seen = []
    >>> p = Progress(lambda done, total, what: seen.append((done, total, what)))
    >>> p.start(2, "runs"); p.advance(); p.advance()
    >>> seen
    [(0, 2, 'runs'), (1, 2, 'runs'), (2, 2, 'runs')]
    """

    def __init__(self, listener: Callable[[int, int, str], None] | None = None):
        self.listener = listener
        self.done, self.total, self.description = 0, 0, ""

    def start(self, total: int, description: str = "runs") -> None:
        self.done, self.total, self.description = 0, int(total), description
        self._tell()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._tell()

    def _tell(self) -> None:
        if self.listener is not None:
            self.listener(self.done, self.total, self.description)


# -- reading results back through the views -------------------------------------------------------

def query_runs(store: Any, sql: str, run_ids: Iterable[str], **params: Any) -> pl.DataFrame:
    """``store.query(sql)`` with ``$ids`` bound to the run ids (and any other named parameters)."""
    return store.query(sql, {"ids": list(run_ids), **params})


def run_summaries(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """One row per run: ``v_run_summary`` plus ΔF99 (``v_delta_f90``) and backtracks (``v_step_stats``)."""
    return query_runs(store, """
        SELECT s.run_id, s.status, s.steps, s.e0, s.final_energy, s.energy_drop, s.delta_f90, d.delta_f99,
               s.accepted_steps, s.rejected_steps, st.total_backtracks, s.gate_openings
        FROM v_run_summary AS s
        LEFT JOIN v_delta_f90 AS d ON d.run_id = s.run_id
        LEFT JOIN v_step_stats AS st ON st.run_id = s.run_id
        WHERE list_contains($ids, s.run_id)""", run_ids)


def final_eta(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """``(run_id, entity_id, eta)`` of the last recorded state of each run (``v_eta``)."""
    return query_runs(store, """
        SELECT run_id, entity_id, eta FROM v_eta
        WHERE list_contains($ids, run_id)
        QUALIFY step = max(step) OVER (PARTITION BY run_id)""", run_ids)


def eta_at(store: Any, run_ids: Iterable[str], step: int) -> pl.DataFrame:
    """``(run_id, entity_id, eta)`` recorded at ``step`` (step 0: the measured starting state)."""
    return query_runs(store, "SELECT run_id, entity_id, eta FROM v_eta WHERE list_contains($ids, run_id) AND step = $step",
                      run_ids, step=step)


def eta_traces(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """``(run_id, step, entity_id, eta)`` of every recorded state, ordered by run and step."""
    return query_runs(store, """
        SELECT run_id, step, entity_id, eta FROM v_eta WHERE list_contains($ids, run_id)
        ORDER BY run_id, step, entity_id""", run_ids)


def energy_traces(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """``(run_id, step, energy, delta_f)`` of every step (``v_delta_f_by_step``)."""
    return query_runs(store, """
        SELECT run_id, step, energy, delta_f FROM v_delta_f_by_step WHERE list_contains($ids, run_id)
        ORDER BY run_id, step""", run_ids)


def gating(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """``v_gating_metrics`` of the runs (gates, opened, closed, open_at_end, hazard_mean, μ̂, good/bad; see the view)."""
    return query_runs(store, "SELECT * FROM v_gating_metrics WHERE list_contains($ids, run_id)", run_ids)


def by_run(frame: pl.DataFrame, column: str = "run_id") -> dict[str, dict[str, Any]]:
    """Rows of ``frame`` keyed by ``column``."""
    return {row[column]: row for row in frame.iter_rows(named=True)}


def eta_table(frame: pl.DataFrame) -> dict[str, dict[str, float]]:
    """``{run_id: {entity_id: eta}}`` from a ``(run_id, entity_id, eta)`` frame."""
    out: dict[str, dict[str, float]] = {}
    for run_id, entity_id, eta in frame.select("run_id", "entity_id", "eta").iter_rows():
        out.setdefault(run_id, {})[entity_id] = eta
    return out


# -- small helpers ----------------------------------------------------------------------------------

def plain(value: Any, digits: int | None = None) -> Scalar:
    """A JSON-friendly scalar: numpy scalars unwrapped, NaN and ±inf as ``None``, floats optionally rounded."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    x = float(value)
    if not math.isfinite(x):
        return None
    return round(x, digits) if digits is not None else x


def row(**values: Any) -> dict[str, Scalar]:
    """A result row with every value made :func:`plain`."""
    return {k: plain(v) for k, v in values.items()}


def mean(values: Sequence[float]) -> float | None:
    """The mean, or ``None`` for no values."""
    return float(np.mean(values)) if len(values) else None


def fmt(value: Any, spec: str = ".4g") -> str:
    """A number for a sentence (``n/a`` for ``None``)."""
    return "n/a" if value is None else format(value, spec) if isinstance(value, float) else str(value)


def config_dict(config: AbstractFrozen) -> dict[str, Any]:
    return config.model_dump(mode="json")


def dipped_ramp(n: int, position: int, dip: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The seed's planted mistake: ``linspace(0, 1, n)`` with ``dip`` subtracted at ``position``, plus N(0, noise)."""
    values = np.linspace(0.0, 1.0, n)
    if 0 <= position < n:
        values[position] -= dip
    if noise > 0:
        values = values + rng.normal(0.0, noise, n)
    return values


def glitch_system(name: str, seed: int, noise: float, *, position: int, glitch: float, cost: float, k: float,
                  a: float, b: float, benefit: float, spring: float, weights: dict[str, float]) -> tuple[System, float]:
    """The seed demos' sequence + repair gate System and the Δ of its cumulative-max repair."""
    values = np.linspace(0.0, 1.0, 64)
    values[position] -= glitch
    values = np.clip(values + np.random.default_rng(seed).normal(0.0, noise, values.size), 0.0, 1.0)
    delta = max(0.0, monotonicity(np.maximum.accumulate(values)) - monotonicity(values))
    system = System(id=name, family_weights=weights, modules=[
        SequenceModule(id="sequence", observation=tuple(values.tolist())),
        GateModule(id="gate", gain=delta, cost=cost, k=k, a=a, b=b),
    ], couplings=[
        GateBenefitCoupling(id="benefit", i="gate", j="sequence", delta=delta, weight=benefit),
        QuadraticCoupling(id="spring", i="sequence", j="gate", weight=spring),
    ])
    return system, delta


def result(study: str, config: AbstractFrozen, *, hypothesis: str, measured: str, held: bool | None,
           seed_result: str | None = None, notes: str = "", metrics: Mapping[str, Any] | None = None,
           rows: Iterable[Mapping[str, Any]] = (), run_ids: Iterable[str] = ()) -> StudyResult:
    """Build a :class:`StudyResult` with every number made :func:`plain`."""
    return StudyResult(study=study, hypothesis=hypothesis, measured=measured, held=held, seed_result=seed_result,
                       notes=notes, metrics={k: plain(v) for k, v in (metrics or {}).items()},
                       rows=tuple({k: plain(v) for k, v in r.items()} for r in rows), run_ids=tuple(run_ids),
                       config=config_dict(config))

