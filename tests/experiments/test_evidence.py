"""The rules studies judge by: spreads and intervals over seeds, paired comparisons, convergence, the table."""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.adapters import DuckDBStore
from complexity_from_constraints.entities import LandauModule, RelaxConfig, System
from complexity_from_constraints.experiments._evidence import (
    Convergence,
    check,
    compare,
    convergence,
    stat,
    verdict_of,
)
from complexity_from_constraints.adapters._experiment_cli import RESULTS_END, RESULTS_START, results_table
from complexity_from_constraints.experiments._framework import StudyResult
from complexity_from_constraints.projectors import relax


def test_the_interval_covers_the_mean_is_seeded_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(1.0, 1.0, 10), rng.normal(1.0, 1.0, 1000)
    a, b = stat(small), stat(small)
    assert a == b  # the bootstrap is seeded: same values, same interval
    assert a.lo < a.mean < a.hi and a.n == 10 and a.sd == pytest.approx(np.std(small, ddof=1))
    wide, narrow = a.hi - a.lo, stat(large).hi - stat(large).lo
    assert narrow < wide / 5
    assert stat([1.0, float("nan"), None, 3.0]).n == 2  # non-finite values are dropped, not counted
    assert stat([]).mean is None and "n=0" in str(stat([]))


def test_a_paired_comparison_holds_fails_or_is_inconclusive_by_its_rule():
    better = compare([1.0 + 0.1 * i for i in range(10)], [0.5] * 10)
    assert better.verdict() == "held" and better.agree == 1.0
    worse = compare([0.0] * 10, [1.0] * 10)
    assert worse.verdict() == "did not hold"
    mixed = compare([1.0, -1.0] * 5, [0.0] * 10)  # half the seeds each way, interval straddles 0
    assert mixed.difference.lo < 0 < mixed.difference.hi and mixed.verdict() == "inconclusive"
    mostly = compare([1.0] * 7 + [-0.1] * 3, [0.0] * 10)  # interval above 0 but only 70 % agree
    assert mostly.difference.lo > 0 and mostly.verdict() == "inconclusive"
    assert compare([0.0] * 10, [1.0] * 10, larger=False).verdict() == "held"
    with pytest.raises(ValueError, match="length"):
        compare([1.0], [1.0, 2.0])


def test_theory_beside_measurement_agrees_within_its_tolerance():
    assert check("x", 1.0, stat([1.0, 1.001]), tol=0.01).agrees is True
    assert check("x", 1.0, 1.5, tol=0.1).agrees is False
    assert check("x", None, 2.0).agrees is None


def test_unconverged_runs_make_any_verdict_inconclusive():
    assert verdict_of("held", Convergence(runs=2, converged=1, unconverged=("r",)))[0] == "inconclusive"
    assert verdict_of("did not hold", Convergence(runs=2, converged=1, unconverged=("r",)))[0] == "inconclusive"
    assert verdict_of("measured", Convergence(runs=2, converged=1, unconverged=("r",)))[0] == "measured"
    assert verdict_of("held", Convergence(runs=2, converged=2)) == ("held", "2/2 runs converged")


def test_convergence_is_read_from_the_views():
    well = System(id="w", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.2)])
    with DuckDBStore(":memory:") as store:
        done = relax(well, RelaxConfig(steps=2000, step_size=0.1, tol=1e-10), store=store).run_id
        cut = relax(well, RelaxConfig(steps=5, step_size=0.1, tol=0.0), store=store).run_id
        flat = relax(well, RelaxConfig(steps=3000, step_size=0.1, tol=0.0), store=store).run_id  # at the floor
        result = convergence(store, [done, cut, flat])
    assert (result.runs, result.converged, result.unconverged) == (3, 2, (cut,))


def test_the_results_table_has_one_row_per_study_and_no_wall_times():
    results = [StudyResult(study="a", hypothesis="h", measured="m | x", verdict="held", rule="r", seeds=10),
               StudyResult(study="b", hypothesis="h", measured="m", verdict="inconclusive",
                           reason="not converged: 1/2 runs converged", rule="r", seeds=10)]
    table = results_table(results)
    lines = table.splitlines()
    assert lines[0] == RESULTS_START and lines[-1] == RESULTS_END
    assert "| `a` | held | 10 | r | m \\| x |" in lines
    assert "| `b` | inconclusive (not converged: 1/2 runs converged) | 10 | r | m |" in lines
