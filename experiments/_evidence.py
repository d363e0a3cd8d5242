"""How a study turns many seeds into a verdict: spreads, intervals, a stated rule, convergence and theory.

Every study reports each measured quantity over seeds as a :class:`Stat` (mean ± sd, n and a 95 %
bootstrap interval of the mean), states its decision rule in one line, and applies it mechanically
through :func:`verdict_of`. A verdict is one of

- ``held``: the rule's condition is met;
- ``did not hold``: the rule's opposite condition is met;
- ``inconclusive``: neither, or the runs did not converge (``inconclusive: not converged``), which
  is checked before anything is judged;
- ``measured``: the study measures without testing a yes/no claim.

Where theory gives a number (a closed form, an expected value), the study prints it beside the
measurement as a :class:`Check` and says whether they agree.

The bootstrap is seeded, so the same runs give the same interval, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from complexity_from_constraints.entities import AbstractFrozen

Verdict = Literal["held", "did not hold", "inconclusive", "measured"]
VERDICTS: tuple[str, ...] = ("held", "did not hold", "inconclusive", "measured")
AGREE = 0.8
"""The default share of seeds that must agree with a claim for it to hold."""


class Stat(AbstractFrozen):
    """A quantity over seeds: mean, sample sd, n and the 95 % bootstrap interval of the mean.

    >>> s = stat([1.0, 2.0, 3.0, 4.0])
    >>> (s.mean, round(s.sd, 4), s.n, s.lo <= s.mean <= s.hi)
    (2.5, 1.291, 4, True)
    >>> str(stat([0.5, 0.5]))
    '0.5 ± 0 (n=2, 95% CI [0.5, 0.5])'
    """

    mean: float | None
    sd: float | None
    n: int
    lo: float | None = None
    hi: float | None = None

    def __str__(self) -> str:
        if self.mean is None:
            return "n/a (n=0)"
        ci = f", 95% CI [{_g(self.lo)}, {_g(self.hi)}]" if self.lo is not None else ""
        return f"{_g(self.mean)} ± {_g(self.sd)} (n={self.n}{ci})"

    @property
    def excludes_zero(self) -> bool:
        """Whether the 95 % interval lies wholly on one side of 0."""
        return self.lo is not None and (self.lo > 0 or self.hi < 0)


def _g(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "0" if x == 0 else f"{x:.3g}"


def stat(values: Iterable[float], *, resamples: int = 2000, seed: int = 0) -> Stat:
    """:class:`Stat` of ``values`` (non-finite values are dropped and not counted).

    The interval is the 2.5 % and 97.5 % quantiles of ``resamples`` bootstrap means
    (resampling with replacement, a seeded generator); one value gives a zero-width interval.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return Stat(mean=None, sd=None, n=0)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    if n == 1 or sd == 0.0:
        return Stat(mean=mean, sd=sd, n=n, lo=mean, hi=mean)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return Stat(mean=mean, sd=sd, n=n, lo=float(lo), hi=float(hi))


class Comparison(AbstractFrozen):
    """A paired comparison over seeds: the difference ``a − b`` per seed, and the share of seeds where the
    claimed side wins (``a > b`` when ``larger``, else ``a < b``; ties never count as agreeing)."""

    difference: Stat
    agree: float
    n: int
    larger: bool

    def __str__(self) -> str:
        side = ">" if self.larger else "<"
        return f"difference {self.difference}; a {side} b in {self.agree:.0%} of {self.n} seeds"

    def verdict(self, agree: float = AGREE) -> Verdict:
        """``held`` when the interval excludes 0 on the claimed side and at least ``agree`` of the seeds
        agree; ``did not hold`` when the interval excludes 0 on the other side or at most ``1 − agree``
        agree; ``inconclusive`` otherwise."""
        d = self.difference
        if d.n == 0:
            return "inconclusive"
        right = (d.lo > 0) if self.larger else (d.hi < 0)
        wrong = (d.hi < 0) if self.larger else (d.lo > 0)
        if right and self.agree >= agree:
            return "held"
        if wrong or self.agree <= 1 - agree:
            return "did not hold"
        return "inconclusive"


def compare(a: Sequence[float], b: Sequence[float], *, larger: bool = True, tie: float = 0.0) -> Comparison:
    """Compare paired samples (``a[i]`` and ``b[i]`` from the same seed); the claim is ``a > b`` (``larger``)
    or ``a < b``. Differences within ``tie`` count as ties.

    >>> c = compare([2.0, 3.0, 2.5, 2.2], [1.0, 1.1, 0.9, 1.0])
    >>> c.agree, c.verdict()
    (1.0, 'held')
    >>> compare([1.0, 1.0], [1.0, 1.0]).verdict()
    'did not hold'
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    wins = (d > tie) if larger else (d < -tie)
    return Comparison(difference=stat(d), agree=float(wins.mean()) if d.size else 0.0, n=int(d.size), larger=larger)


def share(flags: Sequence[bool]) -> float:
    """The fraction of true flags (0 for none)."""
    return float(np.mean(flags)) if len(flags) else 0.0


class Check(AbstractFrozen):
    """Theory beside measurement: what a closed form (or an expected value) predicts, what was measured,
    and whether they agree within the stated tolerance (``None`` when the study only measures)."""

    quantity: str
    predicted: str
    measured: str
    agrees: bool | None

    def __str__(self) -> str:
        mark = {True: "agrees", False: "disagrees", None: "no prediction"}[self.agrees]
        return f"{self.quantity}: theory {self.predicted}, measured {self.measured} ({mark})"


def check(quantity: str, predicted: float | str | None, measured: float | Stat | str, *, tol: float | None = None,
          agrees: bool | None = None) -> Check:
    """A :class:`Check`; with numbers and ``tol`` it agrees when ``|measured − predicted| ≤ tol``.

    >>> check("η*", 0.5, 0.5004, tol=1e-3).agrees
    True
    >>> str(check("mean offspring", None, 0.9))
    'mean offspring: theory none (measured only), measured 0.9 (no prediction)'
    """
    m = measured.mean if isinstance(measured, Stat) else measured
    if agrees is None and tol is not None and isinstance(predicted, (int, float)) and isinstance(m, (int, float)):
        agrees = abs(float(m) - float(predicted)) <= tol
    text = lambda v: _g(float(v)) if isinstance(v, (int, float)) else str(v)  # noqa: E731
    return Check(quantity=quantity, predicted="none (measured only)" if predicted is None else text(predicted),
                 measured=str(measured) if isinstance(measured, Stat) else text(measured), agrees=agrees)


class Convergence(AbstractFrozen):
    """Which runs converged before the budget ran out (see :func:`convergence`)."""

    runs: int
    converged: int
    unconverged: tuple[str, ...] = ()

    @property
    def all(self) -> bool:
        return self.converged == self.runs

    def __str__(self) -> str:
        return f"{self.converged}/{self.runs} runs converged"


CONVERGENCE_SQL = """
    SELECT s.run_id, s.status, s.steps, d.delta_f99,
           last.pg_norm AS final_pg_norm,
           abs(last.energy - tail.energy) AS tail_change, abs(last.energy) AS final_abs
    FROM v_run_summary AS s
    LEFT JOIN v_delta_f90 AS d ON d.run_id = s.run_id
    LEFT JOIN (SELECT run_id, step, energy, pg_norm FROM v_steps QUALIFY step = max(step) OVER (PARTITION BY run_id))
        AS last ON last.run_id = s.run_id
    LEFT JOIN (SELECT run_id, step, energy,
                      max(step) OVER (PARTITION BY run_id) AS last_step FROM v_steps) AS tail
        ON tail.run_id = s.run_id AND tail.step = greatest(1, floor(0.8 * tail.last_step))::BIGINT
    WHERE list_contains($ids, s.run_id)
"""


def convergence(store: Any, run_ids: Iterable[str], *, pg_tol: float = 1e-6, rel_tol: float = 1e-9) -> Convergence:
    """Which of ``run_ids`` converged, read from the views.

    A run converged when its status is ``converged``, or its last projected-gradient norm is at most
    ``pg_tol``, or its energy moved by at most ``rel_tol·(1 + |E|)`` over the last 20 % of its steps
    (its ΔF99 was reached well inside the budget). A run of zero steps (a study that only records a
    state) counts as converged: there was nothing to relax.
    """
    ids = list(run_ids)
    frame = store.query(CONVERGENCE_SQL, {"ids": ids})
    bad = []
    for row in frame.iter_rows(named=True):
        if row["status"] == "converged" or not row["steps"]:
            continue
        if row["final_pg_norm"] is not None and row["final_pg_norm"] <= pg_tol:
            continue
        if row["tail_change"] is not None and row["tail_change"] <= rel_tol * (1 + (row["final_abs"] or 0.0)):
            continue
        bad.append(row["run_id"])
    return Convergence(runs=len(ids), converged=len(ids) - len(bad), unconverged=tuple(sorted(bad)))


def verdict_of(outcome: Verdict, converged: Convergence | None = None) -> tuple[Verdict, str]:
    """Apply the convergence check before the rule's outcome: ``(verdict, reason)``.

    >>> verdict_of("held", Convergence(runs=10, converged=9, unconverged=("r",)))
    ('inconclusive', 'not converged: 9/10 runs converged')
    >>> verdict_of("did not hold", Convergence(runs=3, converged=3))
    ('did not hold', '3/3 runs converged')
    """
    if converged is not None and not converged.all and outcome != "measured":
        return "inconclusive", f"not converged: {converged}"
    return outcome, str(converged) if converged is not None else ""
