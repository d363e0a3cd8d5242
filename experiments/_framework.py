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

from complexity_from_constraints.adapters import Job
from complexity_from_constraints.entities import (
    AbstractFrozen,
    CfcError,
    GateBenefitCoupling,
    GateModule,
    QuadraticCoupling,
    SequenceModule,
    System,
    monotonicity,
)

from ._evidence import Check, Verdict

Scalar = float | int | bool | str | None


class StudyResult(AbstractFrozen):
    """What a study found: the hypothesis, its decision rule, the measured numbers and the verdict.

    ``verdict`` is ``held``, ``did not hold``, ``inconclusive`` (``reason`` says why,
    e.g. ``not converged: 7/10 runs converged``) or ``measured`` for a study that
    measures without testing a yes/no claim; ``rule`` is the one-line decision rule
    the verdict applies. ``checks`` put theory (a closed form, an expected value)
    beside the measurement. ``seeds`` is how many seeds each cell ran.
    ``seed_result`` is what the earlier system recorded, where there is one;
    ``notes`` say what this version does differently. ``metrics`` are the headline
    numbers (each quantity over seeds as mean, sd, n), ``rows`` the per-cell detail,
    ``run_ids`` the runs in the store.
    """

    study: str
    hypothesis: str
    measured: str
    verdict: Verdict
    rule: str = ""
    reason: str = ""
    seeds: int = 1
    checks: tuple[Check, ...] = ()
    seed_result: str | None = None
    notes: str = ""
    metrics: dict[str, Scalar] = Field(default_factory=dict)
    rows: tuple[dict[str, Scalar], ...] = ()
    run_ids: tuple[str, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def held(self) -> bool | None:
        """``True`` (held), ``False`` (did not hold) or ``None`` (inconclusive, or only measured)."""
        return {"held": True, "did not hold": False}.get(self.verdict)


@dataclass(frozen=True)
class Study:
    """A registry entry: the study's name, a one-line title, its config model, its ``run`` and, optionally,
    ``figures(result) -> {name: matplotlib Figure}`` drawn from the result's rows."""

    name: str
    title: str
    config: type[AbstractFrozen]
    run: Callable[..., StudyResult]
    figures: Callable[[StudyResult], dict[str, Any]] | None = None

    def load_result(self, text: str) -> StudyResult:
        """A result as recorded (``v_study_results.result``, JSON) back as a :class:`StudyResult`, so that a
        report can draw ``figures`` from it without importing this package."""
        return StudyResult.model_validate_json(text)


# -- running a study's relaxations: on the sweep engine ---------------------------------------

class StudyRunError(CfcError):
    """Some of a study's relaxations failed (each reason is listed); the study cannot judge without them."""


def relax_all(name: str, jobs: Sequence[Job], store: Any, progress: Progress | None = None) -> list[str]:
    """Relax every job through the sweep engine chosen by ``adapters.running_on``; the run ids, in job order.

    The jobs form one :class:`~complexity_from_constraints.adapters.JobList` named ``name``, so each
    run's id follows from the list and its index: the same study run again into the same store
    finds its runs complete and does not repeat them, and a study killed half way resumes.

    >>> from complexity_from_constraints.adapters import DuckDBStore
    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> jobs = [Job(system=System(id="w", modules=[LandauModule(id="m", a=-1.0, b=1.0)]), config=RelaxConfig(steps=3),
    ...             seed=s, labels={"seed": s}) for s in range(2)]
    >>> with DuckDBStore(":memory:") as store:
    ...     ids = relax_all("doc-wells", jobs, store)
    ...     again = relax_all("doc-wells", jobs, store)
    ...     n = len(store.query("SELECT * FROM v_runs"))
    >>> ids == again, n
    (True, 2)
    """
    from complexity_from_constraints.adapters import JobList, engine_choice, sweep

    plan = JobList(name=name, jobs=tuple(jobs))
    choice = engine_choice()  # None outside a running_on block: serial
    engine, workers, address = (choice.engine, choice.workers, choice.address) if choice else ("serial", None, None)
    progress = progress or Progress()
    progress.start(len(plan.jobs), "runs")
    seen = [0]

    def tell(done: int, total: int, what: str) -> None:
        progress.advance(done - seen[0])
        seen[0] = done

    outcome = sweep(plan, store=store, engine=engine, workers=workers, address=address,
                    progress=tell)
    failed = {r: why for r, why in outcome.reasons.items()}
    if failed:
        first = next(iter(failed.items()))
        raise StudyRunError(f"{len(failed)} of {len(plan.jobs)} runs of {name} failed; first: {first[0]}: {first[1]}")
    return [p.run_id for p in plan.points()]


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


def returned_eta(store: Any, run_ids: Iterable[str]) -> pl.DataFrame:
    """``(run_id, step, entity_id, eta)`` of the state each run returned (``RunFinished.best_step``: the best accepted
    state, which under a weighting need not be the last one)."""
    return query_runs(store, """
        WITH best AS (SELECT run_id, (payload->>'$.best_step')::BIGINT AS best_step FROM events
                      WHERE type = 'RunFinished' AND list_contains($ids, run_id))
        SELECT v.run_id, v.step, v.entity_id, v.eta FROM v_eta AS v JOIN best USING (run_id)
        WHERE v.step <= best.best_step
        QUALIFY v.step = max(v.step) OVER (PARTITION BY v.run_id)""", run_ids)


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


def fixed_energy_traces(store: Any, runs: Mapping[str, System]) -> dict[str, list[tuple[int, float]]]:
    """``{run_id: [(step, U)]}``: the energy of every recorded state (``v_eta``) on its System's own, fixed objective.

    A weighting changes the objective while it runs, so the energies it records are of a moving
    objective; this evaluates each recorded η under the configured weights instead, the one energy that
    compares runs with different weightings (steps without a recorded state kept the previous one).
    """
    from complexity_from_constraints.projectors import compile_system, energy

    traces = eta_traces(store, runs)
    out: dict[str, list[tuple[int, float]]] = {}
    for (run_id,), frame in traces.group_by("run_id", maintain_order=True):
        system = runs[run_id]
        compiled, order = compile_system(system), [m.id for m in system.modules]
        wide = frame.pivot(on="entity_id", index="step", values="eta").sort("step")
        etas = wide.select(order).to_numpy()
        out[run_id] = [(int(k), float(energy(compiled, eta))) for k, eta in zip(wide["step"].to_list(), etas)]
    return out


def first_step_at_or_below(trace: Sequence[tuple[int, float]], target: float) -> int | None:
    """The first step of a ``[(step, energy)]`` trace whose energy is at most ``target`` (``None``: never).

    >>> first_step_at_or_below([(0, 1.0), (1, 0.5), (3, 0.1)], 0.2)
    3
    """
    return next((k for k, e in trace if e <= target), None)


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


def gate_minimum(a: float, b: float, pull: float) -> float:
    """η* of a gate's energy aη² + bη⁴ − pull·η on [0, 1] (a, b ≥ 0): the real root of 2aη + 4bη³ = pull, clipped.

    A gate pulled by a gate-benefit coupling (pull = wΔ) feels nothing else, so relaxation ends here; it is
    open (η* ≥ θ) exactly when wΔ ≥ 2aθ + 4bθ³ (:func:`opening_pull`).

    >>> round(gate_minimum(0.2, 0.3, opening_pull(0.2, 0.3, 0.5)), 12)
    0.5
    >>> gate_minimum(0.2, 0.3, 0.0), gate_minimum(0.2, 0.3, 10.0)
    (0.0, 1.0)
    """
    if pull <= 0:
        return 0.0
    if 2 * a + 4 * b <= pull:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):  # bisection: 2aη + 4bη³ increases with η
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 2 * a * mid + 4 * b * mid ** 3 < pull else (lo, mid)
    return 0.5 * (lo + hi)


def gate_energy(a: float, b: float, pull: float, eta: float) -> float:
    """aη² + bη⁴ − pull·η: a gate's energy plus its gate-benefit pull."""
    return a * eta ** 2 + b * eta ** 4 - pull * eta


def opening_pull(a: float, b: float, theta: float) -> float:
    """2aθ + 4bθ³: the least pull w·Δ that holds a gate open at its threshold θ."""
    return 2 * a * theta + 4 * b * theta ** 3


def result(study: str, config: AbstractFrozen, *, hypothesis: str, measured: str, verdict: Verdict, rule: str = "", reason: str = "", seeds: int = 1, checks: Iterable[Check] = (),
           seed_result: str | None = None, notes: str = "", metrics: Mapping[str, Any] | None = None,
           rows: Iterable[Mapping[str, Any]] = (), run_ids: Iterable[str] = ()) -> StudyResult:
    """Build a :class:`StudyResult` with every number made :func:`plain`."""
    return StudyResult(study=study, hypothesis=hypothesis, measured=measured, verdict=verdict, rule=rule,
                       reason=reason, seeds=seeds, checks=tuple(checks), seed_result=seed_result, notes=notes,
                       metrics={k: plain(v) for k, v in (metrics or {}).items()},
                       rows=tuple({k: plain(v) for k, v in r.items()} for r in rows), run_ids=tuple(run_ids),
                       config=config_dict(config))


def stat_metrics(prefix: str, s: Any) -> dict[str, Scalar]:
    """A :class:`~._evidence.Stat` as flat metrics ``prefix_mean``, ``prefix_sd``, ``prefix_n``, ``prefix_lo``,
    ``prefix_hi``."""
    return {f"{prefix}_mean": plain(s.mean), f"{prefix}_sd": plain(s.sd), f"{prefix}_n": s.n,
            f"{prefix}_lo": plain(s.lo), f"{prefix}_hi": plain(s.hi)}
