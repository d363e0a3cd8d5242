"""The coordinator's regression corpus: small runs whose event logs are pinned bit for bit.

Each case is a small relaxation (every solver, every control alone, and the
combinations whose controls interact). :func:`record` runs one case and
encodes its events as lines: a model event as ``encode(event)`` (JSON whose
floats round-trip exactly), an ``EtaRecorded`` as its step and the hex of its
little-endian float64 bytes. ``RunStarted`` is left out: it is written by
``relax`` and carries the package version.

Regenerate with ``python tests/projectors/corpus/make_corpus.py`` only when a
change of the events is intended, and say which cases changed and why in
``test_corpus.py``. ``python make_corpus.py CASE ...`` rewrites only those cases.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any, Callable

from complexity_from_constraints.entities import (
    AgmPhaseWeighting,
    AutoBalanceWeighting,
    Candidate,
    DiagnosticsConfig,
    EarlyStopConfig,
    ExpansionConfig,
    FreeEnergyConfig,
    GateModule,
    GradNormWeighting,
    HomotopyConfig,
    LandauModule,
    NoiseConfig,
    NoiseControllerConfig,
    QuadraticCoupling,
    RelaxConfig,
    Revision,
    SmallGainWeighting,
    StabilityConfig,
    System,
    WarmStart,
    demo_system,
    standard_system,
)
from complexity_from_constraints.events import EtaRecorded, InMemoryStore, encode
from complexity_from_constraints.projectors import TopKAmortizer, relax

CORPUS = Path(__file__).with_name("corpus.json.gz")


def toy() -> System:
    """The canonical toy system of tests/conftest.py."""
    from complexity_from_constraints.entities import DirectedHingeCoupling, GateBenefitCoupling

    return System(
        id="toy",
        modules=[
            LandauModule(id="a", a=-1.0, b=1.0, h=0.05, eta0=0.2),
            LandauModule(id="b", a=-0.5, b=1.5, eta0=0.9),
            LandauModule(id="c", a=0.4, b=0.8, h=-0.1, eta0=0.5),
            GateModule(id="gate", gain=0.0, cost=0.1, k=10.0, a=0.1, b=0.1),
        ],
        couplings=[
            QuadraticCoupling(id="ab", i="a", j="b", weight=0.7),
            DirectedHingeCoupling(id="bc", i="c", j="b", weight=0.4),
            GateBenefitCoupling(id="benefit", i="gate", j="c", delta=0.35),
        ],
    )


S12 = standard_system(12, seed=3)
HELPER = Candidate(module=LandauModule(id="helper", a=-1.0, b=1.0, eta0=0.3),
                   couplings=(QuadraticCoupling(id="qh", i="helper", j="m0", weight=0.5),))
USELESS = Candidate(module=LandauModule(id="useless", a=0.5, b=1.0, eta0=0.0))
GATED = Candidate(module=GateModule(id="late_gate", gain=0.2, cost=0.1, k=10.0),
                  couplings=(QuadraticCoupling(id="qg", i="late_gate", j="m1", weight=0.3),))
EXPANSION = ExpansionConfig(every=4, tau=0.0, local_steps=20, candidates=(HELPER, USELESS, GATED))
REVISIONS = (Revision(step=3, entity_id="m2", changes={"a": -0.8}),
             Revision(step=6, entity_id="c0", changes={"weight": 1.5}))
CONTROLLER = NoiseControllerConfig(min_scale=0.1)
BALANCE = AutoBalanceWeighting(target=0.1, max_ratio=2.0)
ADAPTERS = {"auto_balance": BALANCE, "gradnorm": GradNormWeighting(),
            "agm_phase": AgmPhaseWeighting(history=4), "small_gain": SmallGainWeighting(max_step_change=0.3)}


def case(system: System, seed: int = 1, **kwargs: Any) -> dict[str, Any]:
    relax_kwargs = {k: kwargs.pop(k) for k in ("amortizer",) if k in kwargs}
    config = RelaxConfig(**({"steps": 25, "step_size": 0.1} | kwargs))
    return {"system": system, "config": config, "seed": seed, **relax_kwargs}


def cases() -> dict[str, Callable[[], dict[str, Any]]]:
    """Every case by name; each builds the arguments of one ``relax`` call."""
    c: dict[str, Callable[[], dict[str, Any]]] = {}
    solvers = ("projected_gradient", "accelerated", "coordinate", "adaptive", "proximal", "admm", "lbfgsb")
    for solver in solvers:
        c[f"solver-{solver}-s12"] = lambda s=solver: case(S12, solver=s)
        c[f"solver-{solver}-toy"] = lambda s=solver: case(toy(), solver=s, steps=15)
    c["solver-projected_gradient-armijo-uniform"] = lambda: case(S12, line_search="armijo", step_size=0.5, eta0="uniform")
    c["solver-projected_gradient-stalls"] = lambda: case(System(id="one", modules=[LandauModule(id="m", a=-1.0, b=1.0, eta0=0.2)]),
                                                         steps=400, tol=0.0)
    c["solver-admm-stalls"] = lambda: case(toy(), solver="admm", steps=300, tol=0.0)
    c["solver-demo-gates"] = lambda: case(demo_system(0), steps=40, step_size=0.2)

    # every control alone
    c["stability"] = lambda: case(S12, step_size=2.0, stability=StabilityConfig(cap_fraction=0.8))
    c["stability-warn"] = lambda: case(S12, step_size=2.0, stability=StabilityConfig(warn_margin=10.0))
    c["stability-coupling_target"] = lambda: case(S12, stability=StabilityConfig(coupling_target=24.0))
    c["homotopy-couplings"] = lambda: case(S12, homotopy=HomotopyConfig(steps=8, coupling_start=0.1))
    c["homotopy-kinds-entities"] = lambda: case(S12, homotopy=HomotopyConfig(
        steps=8, kind_starts={"landau": 0.2}, entity_starts={"m0": 0.0, "c3": 0.3}))
    c["homotopy-backoff"] = lambda: case(S12, step_size=3.0, homotopy=HomotopyConfig(steps=15, coupling_start=0.5, min_start=0.2))
    c["noise-tangent"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05, decay=0.9))
    c["noise-metric-controller"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05, mode="metric", controller=CONTROLLER))
    c["free_energy"] = lambda: case(S12, free_energy=FreeEnergyConfig(temperature=0.05))
    c["free_energy-epsilon"] = lambda: case(toy(), free_energy=FreeEnergyConfig(temperature=0.1, epsilon=1e-3))
    c["monotone-strict"] = lambda: case(S12, monotone="strict", noise=NoiseConfig(magnitude=0.02))
    c["early_stop"] = lambda: case(S12, steps=200, early_stop=EarlyStopConfig(patience=3, delta=1e-4))
    c["diagnostics"] = lambda: case(S12, diagnostics=DiagnosticsConfig(window=4))
    c["diagnostics-escape"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05, decay=1.0), diagnostics=DiagnosticsConfig(
        escape_noise_min=1e-9, escape_displacement_min=0.0, escape_cosine_max=1.0, escape_drop_min=0.0))
    for name, weighting in ADAPTERS.items():
        c[f"weighting-{name}"] = lambda a=weighting: case(S12, weighting=a, step_size=0.02 if a.kind == "small_gain" else 0.1)
        c[f"weighting-{name}-toy"] = lambda a=weighting: case(toy(), weighting=a, steps=12)
    c["weighting-every-3"] = lambda: case(S12, weighting=AutoBalanceWeighting(target=0.1, max_ratio=2.0, every=3))
    c["warm_start"] = lambda: case(S12, warm_start=WarmStart(source="test", eta0=(0.5,) * 12,
                                                             active=("m0", "m3", "m7"), active_steps=5))
    c["warm_start-amortizer"] = lambda: case(S12, amortizer=TopKAmortizer(k=3, active_steps=6))
    c["warm_start-amortizer-accelerated"] = lambda: case(S12, solver="accelerated", amortizer=TopKAmortizer(k=3, active_steps=6))
    c["record_terms"] = lambda: case(S12, record_terms_every=5)
    c["revisions"] = lambda: case(S12, revisions=REVISIONS)
    c["revisions-system"] = lambda: case(S12, revisions=(Revision(step=4, entity_id=S12.id,
                                                                  changes={"family_weights": {"quadratic": 2.0}}),))
    c["revisions-gate"] = lambda: case(demo_system(0), revisions=(Revision(step=5, entity_id="wormhole", changes={"delta": 0.5}),))
    c["expansion"] = lambda: case(S12, expansion=EXPANSION)
    c["expansion-tau"] = lambda: case(S12, expansion=EXPANSION.evolve(tau=0.05))
    c["expansion-proposer"] = lambda: case(S12, expansion=ExpansionConfig(every=5, candidates=()))

    # combinations whose controls interact
    c["homotopy+weighting"] = lambda: case(S12, homotopy=HomotopyConfig(steps=8, coupling_start=0.1), weighting=BALANCE)
    c["homotopy+small_gain"] = lambda: case(S12, step_size=0.02, homotopy=HomotopyConfig(steps=8, coupling_start=0.2), weighting=SmallGainWeighting(max_step_change=0.3))
    c["expansion+warm_start"] = lambda: case(S12, expansion=EXPANSION, amortizer=TopKAmortizer(k=3, active_steps=6))
    c["expansion+homotopy"] = lambda: case(S12, expansion=EXPANSION, homotopy=HomotopyConfig(steps=10, coupling_start=0.3))
    c["expansion+weighting"] = lambda: case(S12, expansion=EXPANSION, weighting=GradNormWeighting())
    c["expansion+stability"] = lambda: case(S12, step_size=2.0, expansion=EXPANSION, stability=StabilityConfig(coupling_target=24.0))
    c["expansion+diagnostics"] = lambda: case(S12, expansion=EXPANSION, noise=NoiseConfig(magnitude=0.03),
                                              diagnostics=DiagnosticsConfig(window=5))
    c["expansion+noise"] = lambda: case(S12, expansion=EXPANSION, noise=NoiseConfig(magnitude=0.03))
    c["stability+noise"] = lambda: case(S12, step_size=2.0, stability=StabilityConfig(warn_margin=0.5), noise=NoiseConfig(magnitude=0.05))
    c["revisions+homotopy"] = lambda: case(S12, revisions=REVISIONS, homotopy=HomotopyConfig(steps=8, coupling_start=0.1))
    c["revisions+expansion"] = lambda: case(S12, revisions=(Revision(step=4, entity_id="m2", changes={"a": -0.8}),), expansion=EXPANSION)
    c["weighting+coupling_cap"] = lambda: case(S12, step_size=0.02, weighting=SmallGainWeighting(max_step_change=0.3), stability=StabilityConfig(coupling_target=24.0))
    c["weighting+coupling_cap+homotopy"] = lambda: case(S12, weighting=BALANCE, homotopy=HomotopyConfig(steps=6, coupling_start=0.3),
                                                      stability=StabilityConfig(coupling_target=24.0, warn_margin=1.0))
    c["noise+free_energy"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05), free_energy=FreeEnergyConfig(temperature=0.05))
    c["warm_start+noise"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05), amortizer=TopKAmortizer(k=3, active_steps=6))
    c["warm_start+homotopy"] = lambda: case(S12, homotopy=HomotopyConfig(steps=8, coupling_start=0.1),
                                            amortizer=TopKAmortizer(k=3, active_steps=6))
    c["early_stop+weighting"] = lambda: case(S12, steps=200, weighting=AgmPhaseWeighting(history=4), early_stop=EarlyStopConfig(patience=3, delta=1e-4))
    c["diagnostics+noise+terms"] = lambda: case(S12, noise=NoiseConfig(magnitude=0.05), diagnostics=DiagnosticsConfig(), record_terms_every=4)
    c["accelerated+homotopy+stability"] = lambda: case(S12, solver="accelerated", step_size=2.0, stability=StabilityConfig(),
                                                        homotopy=HomotopyConfig(steps=8, coupling_start=0.1))
    c["coordinate+expansion"] = lambda: case(S12, solver="coordinate", expansion=EXPANSION)
    c["admm+homotopy"] = lambda: case(S12, solver="admm", homotopy=HomotopyConfig(steps=8, coupling_start=0.1))
    c["proximal+warm_start"] = lambda: case(S12, solver="proximal", amortizer=TopKAmortizer(k=3, active_steps=6))
    c["lbfgsb+weighting"] = lambda: case(S12, solver="lbfgsb", weighting=BALANCE)
    c["adaptive+revisions"] = lambda: case(S12, solver="adaptive", revisions=REVISIONS)
    return c


def _proposer(step: int, ids: tuple[str, ...], eta) -> Candidate | None:
    """Offers one helper per call, coupled to the module with the lowest η (for ``expansion-proposer``)."""
    k = len(ids)
    low = ids[int(min(range(len(eta)), key=lambda i: (eta[i], i)))]
    return Candidate(module=LandauModule(id=f"p{k}", a=-0.6, b=1.0, eta0=0.4),
                     couplings=(QuadraticCoupling(id=f"pq{k}", i=f"p{k}", j=low, weight=0.4),))


def line(event) -> str:
    """One event as a line: exact for every float (JSON floats round-trip; η as hex of its bytes)."""
    if isinstance(event, EtaRecorded):
        return f"EtaRecorded {event.step} {event.eta.astype('<f8').tobytes().hex()}"
    return encode(event)


def record(name: str) -> list[str]:
    """Run case ``name`` with today's code; its events as lines (without ``RunStarted``)."""
    kwargs = cases()[name]()
    if name == "expansion-proposer":
        kwargs["proposer"] = _proposer
    store = InMemoryStore()
    result = relax(kwargs.pop("system"), kwargs.pop("config"), seed=kwargs.pop("seed"), store=store, **kwargs)
    return [line(rec.event) for rec in store.read(result.run_id) if rec.event.type != "RunStarted"]


def load() -> dict[str, list[str]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return json.load(f)


def save(corpus: dict[str, list[str]]) -> None:
    data = json.dumps(corpus, indent=0, sort_keys=True).encode()
    with gzip.GzipFile(CORPUS, "wb", mtime=0) as f:  # mtime 0: the same corpus gives the same bytes
        f.write(data)


if __name__ == "__main__":
    names = sys.argv[1:] or list(cases())
    corpus = load() if sys.argv[1:] and CORPUS.exists() else {}
    for n in names:
        corpus[n] = record(n)
    save(corpus)
    print(f"{len(names)} case(s) recorded; {len(corpus)} in {CORPUS.name} ({CORPUS.stat().st_size} bytes)")
