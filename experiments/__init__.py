"""Scripted studies: each is a frozen config model plus a ``run`` function; nothing imports them.

Every study records its runs to an event store and reads its numbers back
through the SQL views; run one with ``cfc experiment <name> [--option value …]``
(see ``experiments/README.md``). The command line finds the studies through
the ``complexity_from_constraints.studies`` entry points declared in
``pyproject.toml``, never by importing this package.
"""

from ._framework import Progress, Study, StudyResult

__all__ = ["Progress", "Study", "StudyResult"]
