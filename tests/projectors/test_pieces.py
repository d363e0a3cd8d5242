"""The loop's pieces that are not solvers: homotopy, noise, guards, diagnostics and warm starts.

Each test runs a small case with the piece on and checks that it acts in the
documented direction and says so in the log; the earlier system's failures
stay fixed: homotopy ramps with no configured weights, the reference is
re-evaluated when the objective changes, noise is seeded, orthogonal and
never makes a run worse, the free-energy guard retries instead of
ending the run.
"""

from __future__ import annotations

import numpy as np
import pytest

from complexity_from_constraints.entities import (
    DiagnosticsConfig,
    EarlyStopConfig,
    FreeEnergyConfig,
    HomotopyConfig,
    InvalidEntityError,
    LandauModule,
    MonotonicityError,
    NoiseConfig,
    NoiseControllerConfig,
    QuadraticCoupling,
    RelaxConfig,
    System,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import (
    CachedAmortizer,
    Objective,
    TopKAmortizer,
    compile_system,
    energy_and_gradient,
    first_difference,
    relax,
    rerun,
)
from complexity_from_constraints.projectors._objective import coupling_kinds_of
from complexity_from_constraints.projectors._pieces import Homotopy, Noise


def _run(system, config, seed=1, store=None, **kwargs):
    store = store if store is not None else InMemoryStore()
    result = relax(system, config, seed=seed, store=store, **kwargs)
    return result, [rec.event for rec in store.read(result.run_id)]


def _of(events, type_name):
    return [e for e in events if e.type == type_name]


def _frames(events):
    return {e.step: np.array(e.eta) for e in _of(events, "EtaRecorded")}


SYSTEM = standard_system(12, seed=3)  # no family weights configured


# --------------------------------------------------------------------------- homotopy

def _objective_at(cs, scales: dict[str, float]) -> Objective:
    """The objective a run descends under homotopy ``scales``, built independently of the loop."""
    kinds, entities = Homotopy.split(scales, coupling_kinds_of(cs))
    return Objective(cs, kinds, entities)


def test_homotopy_without_configured_weights_still_ramps_and_changes_the_trajectory():
    """the ramp scales the energy even though family_weights is empty."""
    assert SYSTEM.family_weights == {}
    base = RelaxConfig(steps=30, step_size=0.05, eta0="uniform")
    homotopy = HomotopyConfig(steps=10, coupling_start=0.1)
    plain, plain_events = _run(SYSTEM, base)
    ramped, events = _run(SYSTEM, base.evolve(homotopy=homotopy))
    assert not np.array_equal(_frames(events)[1], _frames(plain_events)[1])
    scaled = _of(events, "ObjectiveScaled")
    assert [e.step for e in scaled] == list(range(1, 11))
    for e in scaled:
        assert e.scales == {"couplings": pytest.approx(0.1 + 0.9 * e.step / 10, rel=1e-12)}
    assert scaled[-1].scales == {"couplings": 1.0}
    # step 0 is measured under the start scale, later steps under the ramp, from step 10 on at full strength
    cs = compile_system(SYSTEM)
    frames = _frames(events)
    committed = {s.step: s for s in _of(events, "StepCommitted")}
    start = _objective_at(cs, {"couplings": 0.1}).evaluate(frames[0]).energy
    assert committed[0].energy == start != energy_and_gradient(cs, frames[0])[0]
    assert committed[20].energy == energy_and_gradient(cs, frames[20])[0]


@pytest.mark.parametrize("homotopy", [
    HomotopyConfig(steps=12, coupling_start=0.1),
    HomotopyConfig(steps=12, kind_starts={"landau": 0.2, "directed_hinge": 0.0}),
    HomotopyConfig(steps=12, entity_starts={"m0": 0.0, "c3": 0.3}, coupling_start=0.5),
])
def test_every_accepted_step_is_compared_with_the_reference_under_the_new_objective(homotopy):
    """after each ObjectiveScaled the accepted energy is ≤ the previous state's energy re-evaluated."""
    config = RelaxConfig(steps=25, step_size=0.05, eta0="uniform", homotopy=homotopy)
    result, events = _run(SYSTEM, config)
    cs = compile_system(SYSTEM)
    scales = Homotopy(homotopy).scales(0)
    previous = None
    checked = 0
    for e in events:
        if e.type == "ObjectiveScaled":
            scales = e.scales
        elif e.type == "EtaRecorded":
            previous = np.array(e.eta)
        elif e.type == "StepCommitted" and e.step > 0 and e.accepted:
            objective = _objective_at(cs, scales)
            reference = objective.evaluate(previous).energy
            assert e.energy <= reference, (e.step, e.energy, reference)
            checked += 1
    assert checked >= 20
    committed = _of(events, "StepCommitted")
    assert all(s.accepted for s in committed)  # no spurious rejection from comparing across objectives
    if homotopy.coupling_start == 0.1:  # here the ramp raises the energy faster than the steps lower it
        assert any(b.energy > a.energy for a, b in zip(committed, committed[1:]))
    # the recorded energy of each state is its energy under the scales in force at that step
    frames = _frames(events)
    last = max(frames)
    final_scales = Homotopy(homotopy).scales(last)
    assert result.energy == _objective_at(cs, final_scales).evaluate(frames[last]).energy


def test_homotopy_backs_off_after_rejections_and_the_ramp_restarts_lower():
    homotopy = HomotopyConfig(steps=20, coupling_start=0.5, backoff_factor=0.5, min_start=0.2)
    result, events = _run(SYSTEM, RelaxConfig(steps=30, step_size=0.5, eta0="uniform", homotopy=homotopy))
    backed = _of(events, "HomotopyBackedOff")
    assert [e.starts for e in backed[:2]] == [{"couplings": 0.25}, {"couplings": 0.2}]  # floored at min_start
    committed = {s.step: s for s in _of(events, "StepCommitted")}
    assert all(not committed[e.step].accepted for e in backed)
    scaled = {e.step: e.scales["couplings"] for e in _of(events, "ObjectiveScaled")}
    first = backed[0].step
    assert scaled[first + 1] == pytest.approx(0.25 + 0.75 * (first + 1) / 20)  # the ramp follows the new start
    assert scaled[20] == 1.0


def test_homotopy_backoff_waits_for_patience_rejections():
    patient = HomotopyConfig(steps=20, coupling_start=0.5, patience=1000)
    result, events = _run(SYSTEM, RelaxConfig(steps=30, step_size=0.5, eta0="uniform", homotopy=patient))
    assert not _of(events, "HomotopyBackedOff")
    assert any(not s.accepted for s in _of(events, "StepCommitted"))


# --------------------------------------------------------------------------- noise

NOISY = RelaxConfig(steps=30, step_size=0.05, noise=NoiseConfig(magnitude=0.05, decay=0.9))


def test_same_seed_gives_identical_event_streams_and_another_seed_differs():
    store = InMemoryStore()
    a, events_a = _run(SYSTEM, NOISY, seed=7, store=store)
    b, events_b = _run(SYSTEM, NOISY, seed=7, store=store)
    assert len(events_a) == len(events_b)
    for x, y in zip(events_a, events_b):
        assert x == y  # EtaRecorded compares its arrays bit for bit
    assert first_difference(store, a.run_id, b.run_id) is None
    assert np.array_equal(a.eta, b.eta)
    c, events_c = _run(SYSTEM, NOISY, seed=8, store=store)
    frames_a, frames_c = _frames(events_a), _frames(events_c)
    assert np.array_equal(frames_a[0], frames_c[0])  # measured start: only the noise depends on the seed
    assert not np.array_equal(frames_a[1], frames_c[1])


@pytest.mark.parametrize("mode", ["tangent", "metric"])
def test_noise_vector_is_orthogonal_to_the_gradient_and_has_the_asked_norm(mode):
    rng = np.random.default_rng(0)
    noise = Noise(NoiseConfig(magnitude=1.0, mode=mode), seed=3)
    for _ in range(20):
        g = rng.standard_normal(15)
        curvature = rng.uniform(-2, 2, 15)
        z = noise.vector(0.3, g, curvature, None)
        metric = np.ones(15) if mode == "tangent" else np.maximum(np.abs(curvature), noise.floor)
        assert abs(float(np.sum(metric * z * g))) <= 1e-12 * np.linalg.norm(z) * np.linalg.norm(g) * metric.max()
        assert np.linalg.norm(z) == pytest.approx(0.3, rel=1e-12)
    if mode == "metric":  # metric-orthogonal is not Euclidean-orthogonal when the curvature varies
        assert abs(float(z @ g)) > 1e-6
    mask = (np.arange(15) % 3 == 0).astype(float)
    z = noise.vector(0.3, g, curvature, mask)
    assert np.all(z[mask == 0] == 0) and np.linalg.norm(z) == pytest.approx(0.3)
    assert noise.vector(0.0, g, curvature, None) is None


def test_noise_stream_does_not_depend_on_the_magnitude():
    a, b = Noise(NoiseConfig(magnitude=1.0), seed=5), Noise(NoiseConfig(magnitude=1.0), seed=5)
    g = np.ones(6)
    assert a.vector(0.0, g, None, None) is None  # a draw is still consumed
    b.vector(0.7, g, None, None)
    np.testing.assert_allclose(a.vector(0.2, g, None, None) / 0.2, b.vector(0.5, g, None, None) / 0.5)


def test_noise_never_raises_the_energy_and_decays():
    result, events = _run(SYSTEM, NOISY)
    steps = _of(events, "StepCommitted")
    accepted = [s.energy for s in steps if s.accepted]
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    noise = {s.step: s.diagnostics["noise"] for s in steps[1:]}
    assert all(v <= 0.05 * 0.9 ** k * (1 + 1e-12) for k, v in noise.items())  # clipping only shortens it
    assert sum(v > 0 for v in noise.values()) > 10
    late, early = [noise[k] for k in range(20, 31)], [noise[k] for k in range(1, 11)]
    assert max(late) < min(v for v in early if v > 0)
    assert noise[10] == pytest.approx(0.05 * 0.9 ** 10, rel=1e-9)
    # without decay the kept noise stays at its magnitude
    flat, events = _run(SYSTEM, NOISY.evolve(noise=NoiseConfig(magnitude=0.05, decay=1.0)))
    assert _of(events, "StepCommitted")[10].diagnostics["noise"] == pytest.approx(0.05, rel=1e-9)
    # and the noisy run's trajectory differs from the noiseless one
    quiet, quiet_events = _run(SYSTEM, NOISY.evolve(noise=None))
    assert not np.array_equal(_frames(events)[5], _frames(quiet_events)[5])


def test_noise_in_metric_mode_runs_and_never_raises_the_energy():
    config = NOISY.evolve(noise=NoiseConfig(magnitude=0.05, decay=0.95, mode="metric"))
    result, events = _run(SYSTEM, config)
    accepted = [s.energy for s in _of(events, "StepCommitted") if s.accepted]
    assert all(b <= a for a, b in zip(accepted, accepted[1:]))
    assert any(s.diagnostics.get("noise", 0) > 0 for s in _of(events, "StepCommitted"))


def test_noise_controller_scales_the_magnitude():
    c = NoiseControllerConfig(w_rate=0.5, w_backtrack=0.2, w_rotation=0.3, min_scale=0.0, max_scale=1.0)
    noise = Noise(NoiseConfig(magnitude=1.0, decay=0.5, controller=c), seed=0)
    g = np.array([1.0, 0.0])
    # first call: no rotation yet; drop ratio 0 → rate 1; no backtracks: s = 0.5
    assert noise.magnitude(1, g, 0, 0.0) == pytest.approx(0.5 * 0.5)
    # gradient turned by 90°: rotation ½; a backtrack; a drop ratio of 5% → rate ½: s = .25 + .2 + .15
    assert noise.magnitude(2, np.array([0.0, 1.0]), 3, 0.05) == pytest.approx(0.25 * (0.25 + 0.2 + 0.15))
    # a fast descent (drop ratio ≥ 10%) with a steady gradient silences it
    assert noise.magnitude(3, np.array([0.0, 1.0]), 0, 0.2) == 0.0
    # in a run, a fixed controller scale of ¼ shrinks every recorded noise to a quarter
    fixed = NoiseControllerConfig(w_rate=0.0, w_backtrack=0.0, w_rotation=0.0, min_scale=0.25, max_scale=0.25)
    config = NOISY.evolve(noise=NoiseConfig(magnitude=0.05, decay=0.9, controller=fixed))
    result, events = _run(SYSTEM, config)
    noise = [s.diagnostics["noise"] for s in _of(events, "StepCommitted")[1:]]
    assert all(v <= 0.25 * 0.05 * 0.9 ** k * (1 + 1e-12) for k, v in enumerate(noise, start=1))
    assert any(v == pytest.approx(0.25 * 0.05 * 0.9 ** k, rel=1e-9) for k, v in enumerate(noise, start=1))


# --------------------------------------------------------------------------- guards

# A cold well (minimum at η = 0) started near 0: the entropy −T·S pushes η toward ½ and raises U.
COLD = System(id="cold", modules=[LandauModule(id="m", a=1.0, b=1.0, eta0=0.02),
                                  LandauModule(id="k", a=0.5, b=1.0, eta0=0.05)],
              couplings=[QuadraticCoupling(id="q", i="m", j="k")])
FREE = RelaxConfig(steps=40, step_size=0.05, free_energy=FreeEnergyConfig(temperature=0.5))


def test_strict_monotone_raises_when_the_free_energy_guard_raises_u():
    result, events = _run(COLD, FREE)
    energies = [s.energy for s in _of(events, "StepCommitted") if s.accepted]
    assert energies[-1] > energies[0]  # U went up while U − T·S went down
    with pytest.raises(MonotonicityError, match=r"raised the energy U .* U − T·S"):
        relax(COLD, FREE.evolve(monotone="strict"))
    # on U itself the guard is silent: every accepted step lowers U
    relax(COLD, RelaxConfig(steps=40, step_size=0.05, monotone="strict"))
    relax(SYSTEM, RelaxConfig(steps=40, step_size=0.05, monotone="strict", noise=NoiseConfig(magnitude=0.05)))


def test_free_energy_guard_descends_u_minus_ts():
    result, events = _run(COLD, FREE)
    steps = _of(events, "StepCommitted")
    free = [s.diagnostics["free_energy"] for s in steps]
    assert all(b <= a for a, b in zip(free, free[1:]))
    cs = compile_system(COLD)
    frames = _frames(events)
    objective = Objective(cs, temperature=0.5)
    for s in steps:
        if s.accepted:
            ev = objective.evaluate(frames[s.step])
            assert s.diagnostics["free_energy"] == ev.value and s.energy == ev.energy
    final = frames[max(frames)]
    assert np.all(final > 0.05)  # the entropy pulled both η toward ½, away from U's minimum at 0


def test_free_energy_epsilon_rejects_small_decreases_and_retries_smaller():
    """a rejected step is retried with a smaller α; it does not end the run."""
    config = FREE.evolve(free_energy=FreeEnergyConfig(temperature=0.5, epsilon=1e-3), steps=60)
    result, events = _run(COLD, config)
    steps = _of(events, "StepCommitted")
    for a, b in zip(steps, steps[1:]):
        if b.accepted:
            assert b.diagnostics["free_energy"] <= a.diagnostics["free_energy"] - 1e-3
    rejected = [s for s in steps if not s.accepted]
    assert rejected and rejected[0].step < steps[-1].step  # the run went on after its first rejection
    assert steps[rejected[0].step + 1].step_size == rejected[0].step_size / 2


def test_early_stop_ends_the_run_earlier_with_its_own_status():
    base = RelaxConfig(steps=200, step_size=0.05, eta0="uniform")
    full, _ = _run(SYSTEM, base)
    stopped, events = _run(SYSTEM, base.evolve(early_stop=EarlyStopConfig(patience=4, delta=1e-4)))
    assert stopped.status == "early_stopped" and full.status != "early_stopped"
    assert stopped.steps < full.steps
    (finished,) = _of(events, "RunFinished")
    assert finished.status == "early_stopped" and finished.steps == stopped.steps
    energies = [s.energy for s in _of(events, "StepCommitted") if s.accepted]
    assert all(abs(a - b) < 1e-4 for a, b in zip(energies[-5:], energies[-4:]))
    assert abs(energies[-6] - energies[-5]) >= 1e-4  # patience counts consecutive calm steps


def test_diagnostics_record_dispersion_and_confidence_without_changing_the_trajectory():
    base = RelaxConfig(steps=40, step_size=0.05, eta0="uniform")
    plain, plain_events = _run(SYSTEM, base)
    watched, events = _run(SYSTEM, base.evolve(diagnostics=DiagnosticsConfig(window=5)))
    assert np.array_equal(plain.eta, watched.eta)
    steps = [s for s in _of(events, "StepCommitted")[1:] if s.accepted]
    assert all({"dispersion", "confidence"} <= set(s.diagnostics) for s in steps)
    frames = _frames(events)
    for s in steps[5:]:  # dispersion: mean over modules of the std over the last 5 accepted states
        window = np.stack([frames[k] for k in range(s.step - 4, s.step + 1)])
        assert s.diagnostics["dispersion"] == pytest.approx(float(np.mean(np.std(window, axis=0))), rel=1e-12)
    confidence = [s.diagnostics["confidence"] for s in steps]
    assert all(0 < c < 1 for c in confidence)
    assert confidence[-1] > confidence[0]  # the run settles: r falls and dispersion shrinks


def test_escape_is_detected_with_noise_and_permissive_thresholds():
    permissive = DiagnosticsConfig(escape_noise_min=1e-9, escape_displacement_min=0.0, escape_cosine_max=1.0,
                                   escape_drop_min=0.0)
    config = NOISY.evolve(diagnostics=permissive)
    result, events = _run(SYSTEM, config)
    escapes = _of(events, "EscapeDetected")
    noisy = {s.step: s.diagnostics["noise"] for s in _of(events, "StepCommitted") if s.accepted
             and s.diagnostics.get("noise", 0) >= 1e-9}
    assert escapes and {e.step for e in escapes} == set(noisy)
    assert all(e.noise == noisy[e.step] and e.drop >= 0 and -1 <= e.cosine <= 1 for e in escapes)
    # without noise, or with the default strict thresholds, nothing is reported
    _, quiet = _run(SYSTEM, config.evolve(noise=None))
    assert not _of(quiet, "EscapeDetected")
    _, strict = _run(SYSTEM, NOISY.evolve(diagnostics=DiagnosticsConfig(escape_cosine_max=-1.0)))
    assert not _of(strict, "EscapeDetected")


# --------------------------------------------------------------------------- warm starts

def test_top_k_proposes_the_largest_projected_gradients_and_their_neighbours():
    config = RelaxConfig(eta0="uniform")
    proposal = TopKAmortizer(k=3, active_steps=7).propose(SYSTEM, config, seed=1)
    cs = compile_system(SYSTEM)
    eta = np.random.default_rng(1).uniform(0, 1, cs.n)
    assert np.array_equal(np.array(proposal.eta0), eta) and proposal.source == "top_k"
    _, g = energy_and_gradient(cs, eta)
    score = np.abs(eta - np.clip(eta - g, 0, 1))
    top = {cs.ids[i] for i in np.argsort(-score)[:3]}
    assert set(proposal.active) == top and proposal.active_steps == 7
    wide = TopKAmortizer(k=3, neighbours=True).propose(SYSTEM, config, seed=1)
    coupled = {c.j for c in SYSTEM.couplings if c.i in top} | {c.i for c in SYSTEM.couplings if c.j in top}
    assert set(wide.active) == top | coupled
    assert list(wide.active) == [i for i in cs.ids if i in set(wide.active)]  # module order


def test_a_warm_start_is_recorded_moves_only_the_active_set_and_reruns_bit_for_bit():
    store = InMemoryStore()
    amortizer = TopKAmortizer(k=2, active_steps=5)
    config = RelaxConfig(steps=15, step_size=0.05, eta0="uniform")
    proposal = amortizer.propose(SYSTEM, config, seed=1)
    result, events = _run(SYSTEM, config, store=store, amortizer=amortizer)
    (started,) = _of(events, "RunStarted")
    assert started.config.warm_start == proposal
    (proposed,) = _of(events, "WarmStartProposed")
    assert proposed.active == list(proposal.active) and proposed.active_steps == 5 and proposed.source == "top_k"
    frames = _frames(events)
    active = np.isin(np.array(compile_system(SYSTEM).ids), proposal.active)
    for step in range(1, 6):
        assert np.array_equal(frames[step][~active], frames[0][~active])
        assert not np.array_equal(frames[step][active], frames[step - 1][active])
    assert np.all(frames[6][~active] != frames[0][~active])  # after active_steps everything moves
    again = rerun(store, result.run_id)
    assert first_difference(store, result.run_id, again.run_id) is None
    assert np.array_equal(again.eta, result.eta)


def test_noise_respects_the_active_set_of_a_warm_start():
    config = NOISY.evolve(eta0="uniform")
    amortizer = TopKAmortizer(k=3, active_steps=6)
    proposal = amortizer.propose(SYSTEM, config, seed=1)
    result, events = _run(SYSTEM, config, amortizer=amortizer)
    frames = _frames(events)
    active = np.isin(np.array(compile_system(SYSTEM).ids), proposal.active)
    assert any(s.diagnostics["noise"] > 0 for s in _of(events, "StepCommitted")[1:7])
    for step in range(1, 7):
        assert np.array_equal(frames[step][~active], frames[0][~active])


def test_cached_amortizer_hits_for_a_nearly_identical_system_and_misses_otherwise():
    system = System(id="s", modules=[LandauModule(id=f"m{k}", a=-0.5, b=1.0, eta0=0.2 + 0.05 * k) for k in range(6)],
                    couplings=[QuadraticCoupling(id=f"q{k}", i=f"m{k}", j=f"m{k + 1}") for k in range(5)])
    config = RelaxConfig(steps=50, step_size=0.05)
    cache = CachedAmortizer(threshold=0.05)
    first = relax(system, config)
    cache.remember(system, config, 0, first.eta)
    near = System.model_validate(system.model_dump() | {"modules": [
        m.model_dump() | {"eta0": m.eta0 + 0.001} for m in system.modules]})
    hit = cache.propose(near, config, 0)
    assert hit.source == "cache" and np.array_equal(np.array(hit.eta0), first.eta)
    assert 0 < hit.confidence < 1 and hit.signature
    far = System.model_validate(system.model_dump() | {"modules": [
        m.model_dump() | {"eta0": 0.9 - 0.15 * k} for k, m in enumerate(system.modules)]})
    miss = cache.propose(far, config, 0)
    assert miss.source == "top_k" and miss.signature and miss.signature != hit.signature
    other = standard_system(6, seed=0)  # other module ids never hit
    assert cache.propose(other, config, 0).source == "top_k"
    # a hit starts the run where the remembered one ended: it is already near its minimum
    warm = relax(near, config, amortizer=cache)
    cold = relax(near, RelaxConfig(steps=5, step_size=0.05))
    assert warm.energy < cold.energy


def test_a_run_does_not_converge_or_stall_before_its_ramp_ends():
    """At the ramp's start η sits on a face of the box with zero projected gradient; at full strength it does not.

    Stopping there reported "converged" for the start's objective and returned its energy (−3.78)
    instead of relaxing the System (−2.31).
    """
    system = System(id="face", modules=[LandauModule(id="m", a=0.0, b=1.0, h=5.0, eta0=0.9),
                                        LandauModule(id="n", a=0.0, b=1.0, h=-5.0, eta0=0.1)],
                    couplings=[QuadraticCoupling(id="q", i="m", j="n", weight=2.0)])
    plain = relax(system, RelaxConfig(steps=2000, step_size=0.1))
    homotopy = HomotopyConfig(steps=100, coupling_start=0.1)
    result, events = _run(system, RelaxConfig(steps=2000, step_size=0.1, homotopy=homotopy))
    assert result.status == "converged" and result.steps > 100
    assert _of(events, "ObjectiveScaled")[-1].scales == {"couplings": 1.0}
    assert result.energy == pytest.approx(plain.energy, rel=1e-9)
    assert result.energy == energy_and_gradient(compile_system(system), result.eta)[0]
    stalled = [s for s in _of(events, "StepCommitted") if s.reason == "stalled"]
    assert stalled and all(s.step < 100 for s in stalled)  # η could not move on the face, and the run went on
    assert not _of(events, "HomotopyBackedOff")  # not moving is not an oscillation


@pytest.mark.parametrize("homotopy, field", [
    (HomotopyConfig(steps=5, kind_starts={"landua": 0.1}), "kind_starts"),  # a typo
    (HomotopyConfig(steps=5, kind_starts={"gate": 0.1}), "kind_starts"),    # a kind the System does not have
    (HomotopyConfig(steps=5, entity_starts={"nope": 0.1}), "entity_starts"),
])
def test_a_homotopy_naming_nothing_is_refused_rather_than_silently_doing_nothing(homotopy, field):
    """The other face of the same fix: a ramp whose key matches nothing would leave the run unchanged without a word."""
    with pytest.raises(InvalidEntityError) as info:
        relax(SYSTEM, RelaxConfig(steps=5, homotopy=homotopy))
    assert info.value.field == field
    relax(SYSTEM, RelaxConfig(steps=5, homotopy=HomotopyConfig(steps=5, kind_starts={"landau": 0.1},
                                                               entity_starts={"m0": 0.2, "c1": 0.3})))
