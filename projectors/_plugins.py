"""Finding a named plug-in: what this process registered, else an installed entry point.

Solvers, weightings and array backends are chosen by name in a
``RelaxConfig`` and recorded in the log, so a re-run in another process must
find the same name again. Registration in code (``register_solver``,
``register_weighting``, ``register_backend``) covers a script; an entry point
covers an installed package, without anyone having to import it first::

    [project.entry-points."complexity_from_constraints.solvers"]
    mine = "my_package.solvers:MySolver"

Groups: ``complexity_from_constraints.solvers``, ``.weightings``,
``.backends``. The project's own torch backend and GSPO weighting are found this
way, so ``projectors`` never imports ``adapters``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, MutableMapping

GROUP = "complexity_from_constraints.{}"


def entry_point_names(group: str) -> tuple[str, ...]:
    """The names installed packages declare in ``complexity_from_constraints.<group>``."""
    return tuple(sorted(ep.name for ep in metadata.entry_points(group=GROUP.format(group))))


def find(registry: MutableMapping[str, Any], group: str, name: str) -> Any | None:
    """``registry[name]``, else the entry point ``name`` of ``group``, loaded once and kept in ``registry``.

    >>> find({"a": 1}, "solvers", "a"), find({}, "solvers", "no_such_solver") is None
    (1, True)
    """
    if name in registry:
        return registry[name]
    for ep in metadata.entry_points(group=GROUP.format(group), name=name):
        registry[name] = ep.load()
        return registry[name]
    return None


def known(registry: MutableMapping[str, Any], group: str) -> str:
    """Every name that :func:`find` would resolve, for error messages."""
    return ", ".join(sorted(set(registry) | set(entry_point_names(group))))
