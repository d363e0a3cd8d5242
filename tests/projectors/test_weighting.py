"""Term-weightings: each starts from the configured weights, moves them the documented way, and says so.

The earlier system's failures stay fixed: weightings start from the configured
family weights, acceptance compares energies under one objective after a
weight change, SmallGain's costs and budget really constrain it and it
never touches the gate benefit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    AgmPhaseWeighting,
    AutoBalanceWeighting,
    DirectedHingeCoupling,
    GateBenefitCoupling,
    GateModule,
    GradNormWeighting,
    InvalidEntityError,
    LandauModule,
    QuadraticCoupling,
    RelaxConfig,
    SmallGainWeighting,
    System,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import (
    AbstractWeighting,
    WeightingContext,
    Objective,
    compile_system,
    lipschitz_rows,
    phase_metrics,
    relax,
)

SYSTEM = System(
    id="weighted",
    modules=[LandauModule(id="a", a=-1.0, b=1.0, h=0.05, eta0=0.2),
             LandauModule(id="b", a=-0.5, b=1.5, eta0=0.9),
             LandauModule(id="c", a=0.4, b=0.8, h=-0.1, eta0=0.5),
             GateModule(id="gate", gain=0.0, cost=0.1, k=10.0, a=0.1, b=0.1)],
    couplings=[QuadraticCoupling(id="ab", i="a", j="b", weight=0.7),
               DirectedHingeCoupling(id="bc", i="c", j="b", weight=0.4),
               GateBenefitCoupling(id="benefit", i="gate", j="c", delta=0.35)],
    family_weights={"gate": 2.5},
)
KINDS = ("landau", "gate", "quadratic", "directed_hinge", "gate_benefit")
CONFIGURED = {"landau": 1.0, "gate": 2.5, "quadratic": 1.0, "directed_hinge": 1.0, "gate_benefit": 1.0}
COUPLINGS = ("quadratic", "directed_hinge", "gate_benefit")

WEIGHTINGS = {
    "auto_balance": AutoBalanceWeighting(target=0.1, max_ratio=2.0),
    "gradnorm": GradNormWeighting(target=0.3),
    "agm_phase": AgmPhaseWeighting(),
    "small_gain": SmallGainWeighting(),
}


def _run(config, system=SYSTEM, **kwargs):
    store = InMemoryStore()
    result = relax(system, config, seed=1, store=store, **kwargs)
    return result, [rec.event for rec in store.read(result.run_id)]


def _of(events, type_name):
    return [e for e in events if e.type == type_name]


def _objective(weights: dict[str, float], configured=CONFIGURED, system=SYSTEM) -> Objective:
    """The objective under ``weights``: each kind scaled by its weight relative to the configured one."""
    return Objective(compile_system(system), {k: w / configured[k] for k, w in weights.items() if w != configured[k]})


def _config(weighting, **changes):
    return RelaxConfig(steps=40, step_size=0.05, weighting=weighting, record_terms_every=1, **changes)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_adapter_starts_from_the_configured_weights(name):
    """the first change starts from gate = 2.5 (configured) and 1.0 for every kind not configured."""
    result, events = _run(_config(WEIGHTINGS[name]))
    adapted = _of(events, "WeightsAdapted")
    assert adapted, name
    first = adapted[0]
    assert first.weighting == name and first.previous == CONFIGURED
    for previous, current in zip(adapted, adapted[1:]):  # each change starts where the last one ended
        assert current.previous == previous.weights


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_after_a_weight_change_the_next_step_is_compared_with_the_re_evaluated_reference(name):
    """the reference is the current state under the new weights; recorded energies use them too."""
    result, events = _run(_config(WEIGHTINGS[name]))
    weights, eta, pending = dict(CONFIGURED), None, None
    checked = 0
    for e in events:
        if e.type == "EtaRecorded":
            eta = np.array(e.eta)
        elif e.type == "WeightsAdapted":
            weights = dict(e.weights)
            pending = _objective(weights).evaluate(eta).energy
        elif e.type == "StepCommitted" and e.step > 0:
            assert e.accepted  # small steps: a change of weights causes no spurious rejection
            if pending is not None:
                assert e.energy <= pending, (name, e.step)
                checked += 1
                pending = None
        if e.type == "EtaRecorded" and e.step > 0:
            assert _last_committed(events, e.step).energy == _objective(weights).evaluate(eta).energy
    assert checked >= 1


def _last_committed(events, step):
    return next(e for e in events if e.type == "StepCommitted" and e.step == step)


def test_auto_balance_brings_large_term_gradients_to_the_target():
    weighting = AutoBalanceWeighting(target=0.1, max_ratio=2.0)
    result, events = _run(_config(weighting))
    terms = {e.step: e.grad_norm for e in _of(events, "TermsRecorded")}
    (change,) = _of(events, "WeightsAdapted")  # once balanced, nothing exceeds max_ratio again
    before, after = terms[change.step], terms[change.step + 1]
    moved = {k for k in KINDS if change.weights[k] != change.previous[k]}
    assert moved == {k for k in KINDS if before[k] / 0.1 > 2.0} and "gate" not in moved
    for k in moved:
        assert change.weights[k] == pytest.approx(change.previous[k] * 0.1 / before[k])
        assert 0.5 < after[k] / 0.1 < 1.5 < before[k] / 0.1  # one step later the norm sits near the target
    plain, plain_events = _run(_config(None))
    untouched = {e.step: e.grad_norm for e in _of(plain_events, "TermsRecorded")}
    assert all(untouched[change.step + 1][k] / 0.1 > 1.5 for k in moved)


def test_gradnorm_moves_every_term_toward_its_target():
    weighting = GradNormWeighting(target=0.3)
    result, events = _run(_config(weighting))
    terms = {e.step: e.grad_norm for e in _of(events, "TermsRecorded")}
    for change in _of(events, "WeightsAdapted"):
        norms = terms[change.step]
        for k in KINDS:
            w, n = change.previous[k], norms[k]
            w0 = CONFIGURED[k]  # floor and ceiling are relative to the configured weight
            expected = min(2.0 * w0, max(0.1 * w0, w * (1 + 0.1 * 1.5 * (1 - n / 0.3))))
            assert change.weights[k] == pytest.approx(expected, rel=1e-12), (change.step, k)

    def spread(norms):
        return float(np.mean([abs(math.log(norms[k] / 0.3)) for k in KINDS]))

    plain, plain_events = _run(_config(None))
    last = max(terms)
    untouched = {e.step: e.grad_norm for e in _of(plain_events, "TermsRecorded")}
    assert spread(terms[last]) < 0.5 * spread(untouched[last])
    assert spread(terms[last]) < spread(terms[0])


def test_agm_phase_moves_coupling_and_gate_weights_by_the_energy_phase():
    weighting = AgmPhaseWeighting(history=10)
    result, events = _run(_config(weighting))
    accepted = {e.step: e.energy for e in _of(events, "StepCommitted") if e.accepted}
    changes = _of(events, "WeightsAdapted")
    assert changes
    for change in changes:
        history = [v for s, v in accepted.items() if s <= change.step][-10:]
        metrics = phase_metrics(history)
        assert change.details == pytest.approx(metrics)
        if metrics["rate"] > 0.7 and metrics["trend"] > 0 and metrics["oscillation"] < 0.05:
            up, down = 1.05, 0.97
        else:
            assert metrics["rate"] < 0.3 or metrics["oscillation"] > 0.1
            up, down = 0.97, 1.05
        for k in COUPLINGS:
            assert change.weights[k] == pytest.approx(change.previous[k] * up)
        assert change.weights["gate"] == pytest.approx(change.previous["gate"] * down)
        assert change.weights["landau"] == change.previous["landau"]
    assert any(change.weights["quadratic"] != 1.0 for change in changes)


def _small_gain(rho: float):
    # α near 2·cap/L: the stability margin, hence the budget, is small and binds
    return _run(RelaxConfig(steps=40, step_size=0.075, weighting=SmallGainWeighting(rho=rho)))


def test_small_gain_spends_its_budget_and_rho_changes_the_result():
    """costs are per kind and really constrain the spend; ρ changes which weights move."""
    results = {}
    for rho in (0.2, 0.9):
        result, events = _small_gain(rho)
        changes = _of(events, "WeightsAdapted")
        assert changes and all(c.details["spent"] <= c.details["budget"] for c in changes)
        assert any(c.details["spent"] > 0 for c in changes)
        for c in changes:
            multipliers = {k: w / CONFIGURED[k] for k, w in c.previous.items() if w != CONFIGURED[k]}
            rows = lipschitz_rows(Objective(compile_system(SYSTEM), multipliers).cs)
            assert c.details["lipschitz"] == pytest.approx(rows.lipschitz, rel=1e-12)
            assert c.details["lipschitz_limit"] == pytest.approx(2 * 0.9 / 0.075)
            assert c.details["budget"] == pytest.approx(rho * (c.details["lipschitz_limit"] - rows.lipschitz))
            moved = {k: c.weights[k] / c.previous[k] for k in KINDS if c.weights[k] != c.previous[k]}
            after = rows.lipschitz_with(moved)
            assert after - rows.lipschitz == pytest.approx(c.details["spent"], abs=1e-12)
            assert set(moved) <= {"quadratic", "directed_hinge"}  # only coupling kinds with a curvature cost
        results[rho] = (result, changes)
    (low, low_changes), (high, high_changes) = results[0.2], results[0.9]
    assert low_changes[-1].weights != high_changes[-1].weights
    assert low.energy != high.energy


def test_small_gain_never_changes_the_gate_benefit_weight():
    for rho in (0.2, 0.9):
        result, events = _small_gain(rho)
        assert all(c.weights["gate_benefit"] == c.previous["gate_benefit"] == 1.0
                   for c in _of(events, "WeightsAdapted"))
        assert all(c.weights["gate"] == 2.5 and c.weights["landau"] == 1.0 for c in _of(events, "WeightsAdapted"))


def test_small_gain_spends_nothing_without_a_margin():
    # α above 2·cap/L: no margin, no budget, no change
    result, events = _run(RelaxConfig(steps=10, step_size=0.2, weighting=SmallGainWeighting()))
    assert not _of(events, "WeightsAdapted")


class HalveGates(AbstractWeighting):
    name = "halve_gates"
    every = 2

    def __init__(self):
        super().__init__()
        self.calls: list[WeightingContext] = []

    def adapt(self, ctx):
        self.calls.append(ctx)
        self.details = {"call": float(len(self.calls))}
        return {"gate": ctx.weights["gate"] / 2} if len(self.calls) <= 3 else None


def test_a_custom_adapter_is_called_and_its_name_and_weights_are_recorded():
    weighting = HalveGates()
    result, events = _run(RelaxConfig(steps=12, step_size=0.05), weighting=weighting)
    assert [c.step for c in weighting.calls] == [2, 4, 6, 8, 10, 12]  # after every 2nd accepted step
    first = weighting.calls[0]
    assert first.configured == CONFIGURED and first.weights == CONFIGURED
    assert set(first.grad_norms) == set(KINDS) and len(first.energies) == 3  # step 0 and two accepted steps
    changes = _of(events, "WeightsAdapted")
    assert [c.weighting for c in changes] == ["halve_gates"] * 3
    assert [c.weights["gate"] for c in changes] == [1.25, 0.625, 0.3125]
    assert [c.details for c in changes] == [{"call": 1.0}, {"call": 2.0}, {"call": 3.0}]
    assert weighting.calls[1].weights["gate"] == 1.25  # the loop hands back what the weighting set
    # the weighting is not part of the config: the log keeps its name and weights only
    assert _of(events, "RunStarted")[0].config.weighting is None


class Proposes(AbstractWeighting):
    def __init__(self, weights):
        super().__init__()
        self.weights = weights

    def adapt(self, ctx):
        return self.weights


@pytest.mark.parametrize("weights, field", [
    ({"no_such_kind": 1.0}, "weights"),
    ({"gate": -0.5}, "weights.gate"),
    ({"quadratic": float("nan")}, "weights.quadratic"),
])
def test_an_adapter_returning_an_unknown_kind_or_a_bad_weight_is_refused(weights, field):
    with pytest.raises(InvalidEntityError) as info:
        relax(SYSTEM, RelaxConfig(steps=5), weighting=Proposes(weights))
    assert info.value.field == field


def test_an_adapter_returning_the_same_weights_records_nothing():
    result, events = _run(RelaxConfig(steps=5), weighting=Proposes({"gate": 2.5}))
    assert not _of(events, "WeightsAdapted")


def test_a_kind_switched_off_by_its_family_weight_stays_off():
    """A configured weight of 0 compiles the kind out; a weighting's raise would be recorded but not applied."""
    system = System.model_validate(SYSTEM.model_dump() | {"family_weights": {"gate": 0.0}})
    result, events = _run(_config(GradNormWeighting(target=0.3)), system=system)
    changes = _of(events, "WeightsAdapted")
    assert changes and all(c.weights["gate"] == 0.0 for c in changes)  # GradNorm's floor (0.1) does not apply
    assert all(e.energy["gate"] == 0.0 for e in _of(events, "TermsRecorded"))
    configured = CONFIGURED | {"gate": 0.0}
    weights = dict(configured)
    for e in events:  # and every recorded energy is the energy under the recorded weights
        if e.type == "WeightsAdapted":
            weights = dict(e.weights)
        elif e.type == "EtaRecorded" and e.step > 0:
            multipliers = {k: w / configured[k] for k, w in weights.items() if configured[k] > 0 and w != configured[k]}
            expected = Objective(compile_system(system), multipliers).evaluate(np.array(e.eta)).energy
            assert _last_committed(events, e.step).energy == expected
