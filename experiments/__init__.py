"""Scripted studies: each is a frozen config model plus a ``run`` function; nothing imports them.

Every study records its runs to an event store and reads its numbers back
through the SQL views; run one with ``cfc experiment <name> [--option value …]``
(see ``experiments/README.md``). The command line finds the studies through
the ``complexity_from_constraints.studies`` entry points declared in
``pyproject.toml``, never by importing this package.
"""

from ._evidence import Check, Comparison, Stat, check, compare, convergence, stat, verdict_of
from ._framework import Job, Progress, Study, StudyResult, StudyRunError, relax_all

__all__ = ["Check", "Comparison", "Job", "Progress", "Stat", "Study", "StudyResult", "StudyRunError", "check",
           "compare", "convergence", "relax_all", "stat", "verdict_of"]
