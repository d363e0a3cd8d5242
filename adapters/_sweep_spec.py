"""A sweep as data: a base System and config, axes over config fields, entity parameters and seeds.

See :mod:`complexity_from_constraints.adapters._sweep` for how a sweep runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import Field, JsonValue, PrivateAttr, model_validator

from complexity_from_constraints.entities import (
    AbstractFrozen,
    InvalidEntityError,
    RelaxConfig,
    System,
    content_digest,
)

FAULTS_ENV = "CFC_SWEEP_FAULTS"
"""Test hook, read by the driver when a sweep starts: a folder; a file ``<run_id>.kill`` in it makes
the worker that picks up that point kill itself once (the file is removed first), as a crashed worker would."""


class _Axis(AbstractFrozen):
    path: str = Field(pattern=r"^(seed|system\.[A-Za-z0-9_.:\-]+\.[a-z_][a-z0-9_]*|[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*)$")

    def values_(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class ListAxis(_Axis):
    """The listed values, in order."""

    kind: Literal["list"] = "list"
    values: tuple[JsonValue, ...] = Field(min_length=1)

    def values_(self) -> list[Any]:
        return list(self.values)


class GridAxis(_Axis):
    """``num`` evenly spaced values from ``start`` to ``stop`` (geometrically with ``log``)."""

    kind: Literal["grid"] = "grid"
    start: float
    stop: float
    num: int = Field(ge=1, le=100_000)
    log: bool = False

    @model_validator(mode="after")
    def _check_log(self):
        if self.log and (self.start <= 0 or self.stop <= 0):
            raise InvalidEntityError("GridAxis", None, "start", self.start, "a log grid needs start, stop > 0")
        return self

    def values_(self) -> list[Any]:
        grid = np.geomspace(self.start, self.stop, self.num) if self.log else np.linspace(self.start, self.stop, self.num)
        return [float(v) for v in grid]


class RandomAxis(_Axis):
    """``n`` seeded uniform draws in [low, high] (log-uniform with ``log``; integers with ``integer``)."""

    kind: Literal["random"] = "random"
    low: float
    high: float
    n: int = Field(ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _check_range(self):
        if self.high < self.low:
            raise InvalidEntityError("RandomAxis", None, "high", self.high, f"must be ≥ low ({self.low})")
        if self.log and self.low <= 0:
            raise InvalidEntityError("RandomAxis", None, "low", self.low, "a log axis needs low > 0")
        return self

    def values_(self) -> list[Any]:
        rng = np.random.default_rng(self.seed)
        if self.integer:
            return [int(v) for v in rng.integers(int(self.low), int(self.high) + 1, self.n)]
        if self.log:
            return [float(v) for v in np.exp(rng.uniform(math.log(self.low), math.log(self.high), self.n))]
        return [float(v) for v in rng.uniform(self.low, self.high, self.n)]


Axis = Annotated[Union[ListAxis, GridAxis, RandomAxis], Field(discriminator="kind")]


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index, the value of every axis (``seed`` included) and its run id."""

    index: int
    values: dict[str, Any]
    run_id: str

    @property
    def seed(self) -> int:
        return int(self.values["seed"])


class _OnceJson:
    """A frozen plan's JSON and digest, computed once (a sweep asks for them many times; a plan can be large)."""

    def canonical_json(self) -> str:
        if self._json is None:
            self._json = super().canonical_json()  # type: ignore[misc]
        return self._json

    def __eq__(self, other: object) -> bool:  # content only: the cached JSON is not content
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in type(self).model_fields)

    def __hash__(self) -> int:
        return hash(self.digest())


class SweepSpec(_OnceJson, AbstractFrozen):
    """A validated sweep: a base System and config, axes, seeds. TOML or JSON on disk; identified by :meth:`digest`.

    ``name`` labels the sweep (and its runs); ``max_retries`` bounds how often a
    point whose worker died is tried again.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)
    system: System
    config: RelaxConfig = RelaxConfig()
    axes: tuple[Axis, ...] = ()
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    max_retries: int = Field(2, ge=0, le=10)
    _json: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check_axes(self):
        paths = [a.path for a in self.axes]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise InvalidEntityError("SweepSpec", None, "axes", dupes[0], "is swept twice")
        if "seed" in paths and self.seeds != (0,):
            raise InvalidEntityError("SweepSpec", None, "seeds", list(self.seeds), "give seeds either here or as an axis")
        if any(s < 0 for s in self.seeds):
            raise InvalidEntityError("SweepSpec", None, "seeds", list(self.seeds), "seeds must be ≥ 0")
        ids = {m.id for m in self.system.modules} | {c.id for c in self.system.couplings}
        for axis in self.axes:
            if axis.path.startswith("system."):
                entity, _, name = axis.path[len("system."):].rpartition(".")
                if entity not in ids:
                    raise InvalidEntityError("SweepSpec", None, f"axes.{axis.path}", entity, "is not an entity of the System")
            elif axis.path != "seed":
                _check_config_path(axis.path)
        for point in self.points()[:1]:  # one point built in full: a bad value type shows here, not in a worker
            self.build(point)
        return self

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a ``.toml`` or ``.json`` file (errors name the file and the field)."""
        from ._run_file import read_document

        return cls.model_validate(read_document(path, "sweep spec"))

    def sweep_id(self) -> str:
        """A readable id from the name and the digest: equal specs, equal ids."""
        return f"{self.name}-{self.digest()[:8]}"

    def points(self) -> list[Point]:
        """Every point, axes varying slowest first, then the seeds."""
        axes = [(a.path, a.values_()) for a in self.axes]
        if not any(p == "seed" for p, _ in axes):
            axes.append(("seed", list(self.seeds)))
        stem = self.digest()[:10]
        out = []
        for index, combo in enumerate(product(*(values for _, values in axes))):
            values = dict(zip((p for p, _ in axes), combo))
            out.append(Point(index, values, f"{stem}-{content_digest(values)[:10]}"))
        return out

    def build(self, point: Point) -> tuple[System, RelaxConfig, int]:
        """The System, config and seed of ``point`` (each validated)."""
        config = self.config.model_dump(mode="json")
        changed: dict[str, dict[str, Any]] = {}
        for path, value in point.values.items():
            if path == "seed":
                continue
            if path.startswith("system."):
                entity, _, name = path[len("system."):].rpartition(".")
                changed.setdefault(entity, {})[name] = value
            else:
                _set(config, path.split("."), value)
        system = self.system
        if changed:
            system = System.model_validate(self.system.model_dump(mode="json") | {
                "modules": [_changed(m, changed) for m in self.system.modules],
                "couplings": [_changed(c, changed) for c in self.system.couplings],
            })
        return system, RelaxConfig.model_validate(config), point.seed


class Job(AbstractFrozen):
    """One relaxation of a job list: a System, a config, a seed, and labels that say which cell it belongs to.

    ``labels`` (JSON values) become the run's tags and the point's axis values, e.g. ``{"a": -0.5}``.
    """

    system: System
    config: RelaxConfig = RelaxConfig()
    seed: int = Field(0, ge=0)
    labels: dict[str, JsonValue] = Field(default_factory=dict)


class JobList(_OnceJson, AbstractFrozen):
    """Relaxations that share no base: each job brings its own System, config and seed (a study's runs).

    It runs through the same driver and engines as a :class:`SweepSpec` (``sweep(jobs, store=…)``), so a
    job list resumes, retries a dead worker's job and never stores half a run. A job's run id follows from
    the list's digest and the job's index, so the same list run again finds its runs complete.

    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> jobs = JobList(name="wells", jobs=[Job(system=System(id=f"w{a}", modules=[LandauModule(id="m", a=a, b=1)]),
    ...                                        config=RelaxConfig(steps=5), labels={"a": a}) for a in (-1.0, 1.0)])
    >>> [p.values for p in jobs.points()]
    [{'seed': 0, 'a': -1.0}, {'seed': 0, 'a': 1.0}]
    """

    kind: Literal["jobs"] = "jobs"  # first field: a worker tells a job list's JSON from a sweep spec's by its start
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)
    jobs: tuple[Job, ...] = Field(min_length=1)
    max_retries: int = Field(2, ge=0, le=10)
    _json: str | None = PrivateAttr(None)

    def sweep_id(self) -> str:
        """A readable id from the name and the digest: equal lists, equal ids."""
        return f"{self.name}-{self.digest()[:8]}"

    def points(self) -> list[Point]:
        """One point per job, in order; its values are the seed and the job's labels."""
        stem = self.digest()[:10]
        return [Point(i, {"seed": job.seed, **job.labels}, f"{stem}-{content_digest([i, job.digest()])[:10]}")
                for i, job in enumerate(self.jobs)]

    def build(self, point: Point) -> tuple[System, RelaxConfig, int]:
        """The System, config and seed of ``point``."""
        job = self.jobs[point.index]
        return job.system, job.config, job.seed


def parse_plan(text: str) -> SweepSpec | JobList:
    """A :class:`SweepSpec` or a :class:`JobList` from its JSON (as the driver sends it to workers)."""
    if text.startswith('{"kind":"jobs"'):
        return JobList.model_validate_json(text)
    return SweepSpec.model_validate_json(text)


def _changed(entity, changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    data = entity.model_dump(mode="json")
    return data | changes[entity.id] if entity.id in changes else data


def _set(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        if data.get(key) is None:
            data[key] = {}
        data = data[key]
    data[keys[-1]] = value


def _check_config_path(path: str) -> None:
    model: Any = RelaxConfig
    for key in path.split("."):
        fields = getattr(model, "model_fields", None)
        if fields is None or key not in fields:
            raise InvalidEntityError("SweepSpec", None, "axes", path, "is not a RelaxConfig field")
        annotation = fields[key].annotation
        members = getattr(annotation, "__args__", (annotation,))
        model = next((m for m in members if hasattr(m, "model_fields")), None)
