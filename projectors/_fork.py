"""Fork: start a new run from another run's state at one of its steps, with a changed config."""

from __future__ import annotations

from typing import Any, Mapping

from complexity_from_constraints.entities import InvalidEntityError, RelaxConfig, UnknownRunError, UnknownStepError
from complexity_from_constraints.events import AbstractEventStore, EtaRecorded, RunStarted, StepCommitted

from . import _resume
from ._run import ForkPoint, HookMap, RunResult, relax

# Events that change the System or consume an expansion offer: a fork after one of them would need the
# coordinator to compile the System as it stood at the fork step while the log keeps the parent's.
_STRUCTURAL = ("EntityRevised", "ModuleAdded", "ExpansionRejected")


def fork(
    store: AbstractEventStore,
    run_id: str,
    step: int,
    config: RelaxConfig | Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    hooks: HookMap | None = None,
    flush_every: int = 256,
) -> RunResult:
    r"""Start a new run from run ``run_id``'s state at ``step`` under a changed config.

    The fork's log starts with its own ``RunStarted`` (its config, seed, and
    ``parent_run_id`` / ``parent_step``), then copies the parent's events of
    steps 0..``step`` unchanged, and continues from the parent's η at ``step``
    with steps ``step`` + 1, … up to the config's ``steps``. So
    ``diff_runs(store, run_id, fork_id)`` finds no η, energy or gate difference
    up to ``step``. The fork's recorded config holds the parent's η at
    ``step`` as ``eta0`` (and no ``warm_start``: its proposal is among the
    copied events).

    Args:
        store: the store holding the parent; the fork is written there too.
        run_id: the parent run.
        step: the parent's step to leave from (0 ≤ step ≤ its last step).
        config: ``None`` (the parent's config), a whole :class:`RelaxConfig`
            (its ``eta0`` is replaced), or a mapping of changes to the parent's
            config; dotted keys reach nested fields
            (``{"stability.warn_margin": 0.1}``).
        seed: the fork's seed (default: the parent's).
        hooks, flush_every: as for :func:`relax`.

    Returns:
        The fork's :class:`RunResult`.

    Raises:
        UnknownRunError, UnknownStepError: no such run, or a step it never reached.
        InvalidEntityError: a change that does not validate, one to ``eta0``
            (a fork starts from the parent's state), ``steps`` below ``step``,
            or a parent whose System changed (revision, expansion) by ``step``.

    >>> from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
    >>> from complexity_from_constraints.events import InMemoryStore
    >>> from complexity_from_constraints.projectors import diff_runs, relax
    >>> store = InMemoryStore()
    >>> a = relax(System(id="s", modules=[LandauModule(id="m", a=-1.0, eta0=0.1)]), RelaxConfig(steps=20), store=store)
    >>> b = fork(store, a.run_id, 5, {"step_size": 0.2})
    >>> d = diff_runs(store, a.run_id, b.run_id)
    >>> d.config["step_size"], d.first_divergence
    ((0.05, 0.2), 6)
    """
    parent = _started(store, run_id)
    copied = [r for r in store.read(run_id, until_step=step) if r.seq > 0]
    last = max((r.event.step for r in copied if isinstance(r.event, StepCommitted)), default=-1)
    if not 0 <= step <= last:
        raise UnknownStepError(f"run {run_id!r} has steps 0..{last}; cannot fork at step {step}")
    frames = [r.event for r in copied if isinstance(r.event, EtaRecorded)]
    if frames and frames[-1].step >= _resume.last_change(copied):
        eta = frames[-1].eta  # the state in force at step
    else:  # snapshot mode: η at step was not recorded
        eta = _resume.eta_at(store, run_id, step, _replayed(store))
    structural = [r.event for r in copied if r.event.type in _STRUCTURAL]
    if structural:
        first = structural[0]
        raise InvalidEntityError("fork", run_id, "step", step,
                                 f"the parent's System changed at step {first.step} ({first.type}); forking after a "
                                 "revision or an expansion offer is not supported yet")
    new_config = _fork_config(parent.config, config, eta, step)
    point = ForkPoint(parent_run_id=run_id, step=step, events=tuple(r.event for r in copied) if step > 0 else ())
    return relax(parent.system, new_config, seed=parent.seed if seed is None else seed, store=store, hooks=hooks,
                 flush_every=flush_every, fork_point=point)


def _replayed(store: AbstractEventStore):
    def eta(run_id: str, step: int):
        from ._replay import replay  # replay re-runs forks through this module

        return replay(store, run_id, step).eta
    return eta


def _started(store: AbstractEventStore, run_id: str) -> RunStarted:
    started = store.read(run_id, types=["RunStarted"])
    if not started:
        raise UnknownRunError(f"no run {run_id!r} in this store")
    return started[0].event  # type: ignore[return-value]


def _fork_config(parent: RelaxConfig, config: RelaxConfig | Mapping[str, Any] | None, eta, step: int) -> RelaxConfig:
    """The parent's config with ``config`` applied, starting from ``eta`` at ``step`` (validated)."""
    if isinstance(config, RelaxConfig):
        data = config.model_dump(mode="json")
    else:
        changes = dict(config or {})
        if any(key.split(".")[0] == "eta0" for key in changes):
            raise InvalidEntityError("RelaxConfig", None, "eta0", changes.get("eta0"), "a fork starts from the parent's state")
        data = _apply(parent.model_dump(mode="json"), changes)
    data |= {"eta0": [float(x) for x in eta], "warm_start": None}
    new = RelaxConfig.model_validate(data)
    if new.steps < step:
        raise InvalidEntityError("RelaxConfig", None, "steps", new.steps, f"a fork at step {step} needs steps >= {step}")
    return new


def _apply(data: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each dotted key of ``changes`` set (creating nested dicts where a field was ``None``)."""
    for key, value in changes.items():
        *path, last = key.split(".")
        target = data
        for k, name in enumerate(path):
            if not isinstance(target.get(name), dict):
                if name not in target:
                    raise InvalidEntityError("RelaxConfig", None, ".".join(path[: k + 1]), None, "no such field")
                target[name] = {}
            target = target[name]
        target[last] = value
    return data
