"""The torch backend: the same kind formulas and solvers on tensors, step for step with numpy.

Parity runs on the CPU (CI installs torch); GPU tests run only where CUDA is available.
Tolerances: float64 torch vs numpy, relative 1e-10 on every recorded energy and
absolute 1e-10 on every η frame, with identical accept/reject decisions (in
practice they agree to ~1e-15: only the summation order of reductions differs);
float32 vs float64, relative 1e-4 on the energy at step 10.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity_from_constraints.adapters import DuckDBStore, EnergyRegularizedAttention, TorchBackend, attention_ablation
from complexity_from_constraints.entities import (
    InvalidEntityError,
    MissingDependencyError,
    RelaxConfig,
    coupling_kinds,
    demo_system,
    module_kinds,
    standard_system,
)
from complexity_from_constraints.events import InMemoryStore
from complexity_from_constraints.projectors import compile_system, energy_and_gradient, first_difference, hessian_diagonal, relax, replay, rerun
from complexity_from_constraints.projectors._backend import NumpyBackend, backend_names, make_backend

from ..entities.kind_cases import COUPLING_CASES, MODULE_CASES

HINT = 'torch is not installed: pip install torch (for the CPU-only build add --index-url https://download.pytorch.org/whl/cpu)'


def _trace(store, run_id):
    steps = [r.event for r in store.read(run_id, types=["StepCommitted"])]
    frames = {r.event.step: r.event.eta for r in store.read(run_id, types=["EtaRecorded"])}
    return steps, frames


def _assert_parity(store, a, b, rtol_energy, atol_eta):
    sa, fa = _trace(store, a)
    sb, fb = _trace(store, b)
    assert [(s.step, s.accepted, s.reason, s.backtracks) for s in sa] == [(s.step, s.accepted, s.reason, s.backtracks) for s in sb]
    np.testing.assert_allclose([s.energy for s in sb], [s.energy for s in sa], rtol=rtol_energy, atol=0)
    np.testing.assert_allclose([s.step_size for s in sb], [s.step_size for s in sa], rtol=rtol_energy, atol=0)
    assert fa.keys() == fb.keys()
    for step in fa:
        assert fb[step].dtype == np.float64  # events carry float64 numpy copies whatever the backend
        np.testing.assert_allclose(fb[step], fa[step], rtol=0, atol=atol_eta, err_msg=f"step {step}")


# --- float64 parity, step by step ----------------------------------------------------------------

@pytest.mark.parametrize("line_search", ["none", "armijo"])
@pytest.mark.parametrize("seed", [0, 7])
def test_float64_runs_agree_step_by_step(torch, line_search, seed):
    system = standard_system(200, seed)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=80, step_size=0.4, line_search=line_search, eta0="uniform")
    a = relax(system, cfg, seed=seed, store=store)
    b = relax(system, cfg.evolve(backend="torch"), seed=seed, store=store)
    _assert_parity(store, a.run_id, b.run_id, rtol_energy=1e-10, atol_eta=1e-10)
    steps = [r.event for r in store.read(a.run_id, types=["StepCommitted"])]
    if line_search == "none":
        assert not all(s.accepted for s in steps[1:]), "the comparison should include rejected steps"
    assert (a.status, a.steps) == (b.status, b.steps)


GPU_PIECES = {
    "accelerated": dict(solver="accelerated", step_size=0.5),
    "noise": dict(line_search="armijo", step_size=0.5, noise={"magnitude": 0.02, "mode": "tangent"}),
    "metric_noise_controller": dict(step_size=0.3, noise={"magnitude": 0.02, "mode": "metric", "controller": {}}),
    "direction": dict(line_search="armijo", step_size=0.5, direction={"precondition": True, "max_norm": 2.0}),
    "mirror": dict(line_search="armijo", step_size=0.5, direction={"update": "mirror"}),
    "stability_homotopy_free_energy": dict(step_size=5.0, stability={"cap_fraction": 0.9}, homotopy={"steps": 20, "coupling_start": 0.2},
                                           free_energy={"temperature": 0.01}),
    "weighting": dict(line_search="armijo", weighting={"kind": "gradnorm"}, record_terms_every=5),
}


@pytest.mark.parametrize("pieces", sorted(GPU_PIECES))
def test_float64_parity_of_the_gpu_solvers_and_pieces(torch, pieces):
    system = standard_system(150, 3)
    store = InMemoryStore()
    cfg = RelaxConfig.model_validate({"steps": 60, "eta0": "uniform", **GPU_PIECES[pieces]})
    a = relax(system, cfg, seed=3, store=store)
    b = relax(system, cfg.evolve(backend="torch"), seed=3, store=store)
    _assert_parity(store, a.run_id, b.run_id, rtol_energy=1e-10, atol_eta=1e-10)
    types = lambda run: [r.event.type for r in store.read(run)]  # noqa: E731
    assert types(a.run_id) == types(b.run_id)


def test_float64_parity_with_gates_revisions_and_expansion(torch):
    from complexity_from_constraints.entities import Candidate, ExpansionConfig, GateBenefitCoupling, GateModule, Revision

    system = demo_system(1)
    candidate = Candidate(module=GateModule(id="extra", gain=0.0, cost=0.1),
                          couplings=(GateBenefitCoupling(id="extra-b", i="extra", j="s1", delta=0.5),))
    cfg = RelaxConfig(steps=60, step_size=0.3, line_search="armijo",
                      revisions=(Revision(step=5, entity_id="repair", changes={"a": 0.2}),),
                      expansion=ExpansionConfig(every=10, candidates=(candidate,)))
    store = InMemoryStore()
    a = relax(system, cfg, store=store)
    b = relax(system, cfg.evolve(backend="torch"), store=store)
    _assert_parity(store, a.run_id, b.run_id, rtol_energy=1e-10, atol_eta=1e-10)
    types = lambda run: [r.event.type for r in store.read(run)]  # noqa: E731
    assert types(a.run_id) == types(b.run_id)


def test_float32_is_close_to_float64(torch):
    """float32 (torch or numpy) stays within 1e-4 relative of float64 on the energy at step 10."""
    system = standard_system(200, 3)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=10, step_size=0.2, eta0="uniform", tol=0.0)
    ref = relax(system, cfg, seed=3, store=store)
    e_ref = _trace(store, ref.run_id)[0][10].energy
    for backend in ("torch", "numpy"):
        r = relax(system, cfg.evolve(backend=backend, dtype="float32"), seed=3, store=store)
        steps, frames = _trace(store, r.run_id)
        assert steps[10].step == 10
        assert abs(steps[10].energy - e_ref) <= 1e-4 * abs(e_ref), backend
        assert frames[10].dtype == np.float64
        np.testing.assert_allclose(frames[10], _trace(store, ref.run_id)[1][10], atol=1e-5)


def test_float32_state_stays_float32(torch):
    system = standard_system(50, 1)
    for name in ("numpy", "torch"):
        be = make_backend(name, dtype="float32")
        cs = compile_system(system, be)
        eta = be.asarray(np.full(cs.n, 0.5))
        e, g = energy_and_gradient(cs, eta)
        assert isinstance(e, float)
        assert be.to_numpy(g).dtype == np.float32, name
        assert be.to_numpy(hessian_diagonal(cs, eta)).dtype == np.float32, name


# --- every kind's formulas, once, on both backends ---------------------------------------------

def _entity(cls, params):
    return cls(id="e", i="a", j="b", **params) if "i" in cls.model_fields else cls(id="e", **params)


def _params(be, entities, cls):
    return {name: be.asarray([getattr(e, name) for e in entities]) for name in cls.params}


def _close(be, got, want):
    np.testing.assert_allclose(be.to_numpy(got), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), etas=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=3, max_size=3))
def test_every_module_kind_gives_the_same_values_on_torch(torch, data, etas):
    tb, nb = TorchBackend(), NumpyBackend()
    kind = data.draw(st.sampled_from(sorted(module_kinds.kinds())))
    cls = module_kinds[kind]
    entities = [_entity(cls, data.draw(MODULE_CASES[kind])) for _ in etas]
    x = np.array(etas)
    f, g = cls.energy_grad(np, x, _params(nb, entities, cls))
    ft, gt = cls.energy_grad(tb.xp, tb.asarray(x), _params(tb, entities, cls))
    _close(tb, ft, f)
    _close(tb, gt, g)
    _close(tb, cls.hessian_diagonal(tb.xp, tb.asarray(x), _params(tb, entities, cls)),
           cls.hessian_diagonal(np, x, _params(nb, entities, cls)))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), etas=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=3, max_size=3))
def test_every_coupling_kind_gives_the_same_values_on_torch(torch, data, etas):
    tb, nb = TorchBackend(), NumpyBackend()
    kind = data.draw(st.sampled_from(sorted(coupling_kinds.kinds())))
    cls = coupling_kinds[kind]
    entities = [_entity(cls, data.draw(COUPLING_CASES[kind])) for _ in etas]
    xi, xj = np.array([e[0] for e in etas]), np.array([e[1] for e in etas])
    want = cls.energy_grad(np, xi, xj, _params(nb, entities, cls))
    got = cls.energy_grad(tb.xp, tb.asarray(xi), tb.asarray(xj), _params(tb, entities, cls))
    for g, w in zip(got, want):
        _close(tb, g, w)
    want_h = cls.hessian_diagonal(np, xi, xj, _params(nb, entities, cls))
    got_h = cls.hessian_diagonal(tb.xp, tb.asarray(xi), tb.asarray(xj), _params(tb, entities, cls))
    for g, w in zip(got_h, want_h):
        _close(tb, g, w)


def test_compiled_energy_gradient_and_curvature_agree(torch, toy_system):
    tb = TorchBackend()
    for system in (toy_system, demo_system(2), standard_system(100, 2)):
        a, b = compile_system(system), compile_system(system, tb)
        x = np.random.default_rng(0).uniform(size=a.n)
        e, g = energy_and_gradient(a, x)
        et, gt = energy_and_gradient(b, tb.asarray(x))
        assert et == pytest.approx(e, rel=1e-13, abs=1e-13)
        np.testing.assert_allclose(tb.to_numpy(gt), g, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(tb.to_numpy(hessian_diagonal(b, tb.asarray(x))), hessian_diagonal(a, x),
                                   rtol=1e-13, atol=1e-13)


# --- selection by name, the recorded config, replay and re-run ----------------------------------

def test_backends_are_selected_by_name(torch):
    assert {"numpy", "torch"} <= set(backend_names())
    be = make_backend("torch", device="cpu", dtype="float32")
    assert isinstance(be, TorchBackend) and be.dtype == torch.float32 and be.xp is torch
    assert isinstance(make_backend("numpy"), NumpyBackend)
    with pytest.raises(InvalidEntityError, match=r"unknown backend; known: (\w+, )*numpy, (\w+, )*torch"):
        make_backend("jax")  # other backends registered in this process (a doctest's) may be listed too
    with pytest.raises(InvalidEntityError, match="dtype"):
        make_backend("torch", dtype="float16")
    with pytest.raises(InvalidEntityError, match="CPU only"):
        make_backend("numpy", device="cuda")
    with pytest.raises(InvalidEntityError, match="device"):
        make_backend("torch", device="not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidEntityError, match="CUDA is not available"):
            make_backend("torch", device="cuda")


def test_an_unknown_backend_fails_before_anything_is_recorded(toy_system):
    store = InMemoryStore()
    with pytest.raises(InvalidEntityError, match="unknown backend"):
        relax(toy_system, RelaxConfig(steps=3, backend="nope"), store=store)
    assert store.runs() == []


def test_torch_runs_recorded_in_duckdb_replay_and_rerun(torch, tmp_path):
    system = standard_system(200, 5)
    cfg = RelaxConfig(steps=50, step_size=0.3, line_search="armijo", eta0="uniform", backend="torch")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        r = relax(system, cfg, seed=5, store=store, flush_every=8)
        started = store.read(r.run_id, types=["RunStarted"])[0].event
        assert (started.config.backend, started.config.device, started.config.dtype) == ("torch", "cpu", "float64")
        state = replay(store, r.run_id)
        assert state.eta.tobytes() == r.eta.tobytes() and state.step == r.steps and state.status == r.status
        again = rerun(store, r.run_id)  # rebuilt from the recorded config: torch again
        assert first_difference(store, r.run_id, again.run_id) is None
        a, b = store.read(r.run_id), store.read(again.run_id)
        assert len(a) == len(b) and all(x.event == y.event for x, y in zip(a, b))
        numpy_run = relax(system, cfg.evolve(backend="numpy"), seed=5, store=store)
        np.testing.assert_allclose(replay(store, numpy_run.run_id).eta, state.eta, atol=1e-10)
        backends = store.query("SELECT run_id FROM runs")  # numpy and torch runs share one log
        assert len(backends) == 3


# --- without torch ---------------------------------------------------------------------------------

def test_missing_torch_gives_a_one_line_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        TorchBackend()
    assert str(info.value) == HINT
    with pytest.raises(MissingDependencyError, match="pip install"):
        make_backend("torch")
    with pytest.raises(MissingDependencyError, match="pip install"):
        EnergyRegularizedAttention(4)
    with pytest.raises(MissingDependencyError, match="pip install"):
        attention_ablation([0.0], steps=1)


def test_plugins_are_found_by_entry_point_without_importing_adapters():
    """A fresh process that never imports `adapters` still builds the torch backend and the GSPO weighting by name."""
    code = textwrap.dedent("""
        import sys
        from complexity_from_constraints.entities import GspoTokenWeighting, RelaxConfig, standard_system
        from complexity_from_constraints.projectors import backend_names, make_backend, relax
        assert "complexity_from_constraints.adapters" not in sys.modules
        r = relax(standard_system(20, 0), RelaxConfig(steps=4, weighting=GspoTokenWeighting(ceiling=2.0)))
        print(make_backend("torch").name, r.steps, "torch" in backend_names())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["torch", "4", "True"]


def test_adapters_import_without_torch():
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        from complexity_from_constraints import adapters
        from complexity_from_constraints.adapters import EnergyRegularizedAttention, TorchBackend, attention_ablation
        from complexity_from_constraints.entities import MissingDependencyError, RelaxConfig, standard_system
        from complexity_from_constraints.projectors import relax
        relax(standard_system(10), RelaxConfig(steps=3))
        try:
            relax(standard_system(10), RelaxConfig(steps=3, backend="torch"))
        except MissingDependencyError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == HINT


# --- energy-regularised attention ------------------------------------------------------------

def test_attention_shapes_and_energy_by_hand(torch):
    torch.manual_seed(0)
    m = EnergyRegularizedAttention(6, lam=0.3)
    assert isinstance(m, EnergyRegularizedAttention) and isinstance(m, torch.nn.Module)
    assert all(layer.bias is None for layer in (m.q, m.k, m.v))
    x = torch.randn(5, 7, 6)
    y, energy = m(x)
    assert y.shape == (5, 7, 6) and energy.shape == ()
    q, k, v = (x @ layer.weight.T for layer in (m.q, m.k, m.v))
    w = torch.softmax(q @ k.transpose(-2, -1) / np.sqrt(6), dim=-1)
    torch.testing.assert_close(y, w @ v)
    by_hand = 0.3 * np.mean([np.var(w[b].detach().numpy()) for b in range(5)])
    assert energy.item() == pytest.approx(by_hand, rel=1e-5)
    energy.backward()  # a differentiable scalar to add to a loss
    assert m.q.weight.grad is not None


def test_attention_with_lambda_zero_has_zero_energy(torch):
    y, energy = EnergyRegularizedAttention(4, lam=0.0)(torch.randn(2, 3, 4))
    assert energy.item() == 0.0


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan"), "x"])
def test_attention_lambda_must_lie_in_0_1(lam):
    with pytest.raises(InvalidEntityError, match="lam"):
        EnergyRegularizedAttention(4, lam=lam)


def test_attention_rejects_a_wrong_input_shape(torch):
    with pytest.raises(InvalidEntityError, match="expected"):
        EnergyRegularizedAttention(4)(torch.randn(3, 5))


def test_higher_lambda_lowers_attention_variance_after_training(torch):
    rows = attention_ablation([0.0, 1.0], seed=0, steps=150)
    assert [r.lam for r in rows] == [0.0, 1.0]
    assert rows[1].attention_variance < 0.8 * rows[0].attention_variance
    assert rows[1].task_loss > rows[0].task_loss  # the energy costs task accuracy
    assert attention_ablation([1.0], seed=0, steps=150) == rows[1:]  # deterministic


# --- GPU -------------------------------------------------------------------------------------------

def _cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


gpu = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")


@gpu
@pytest.mark.parametrize("line_search", ["none", "armijo"])
def test_cuda_float64_runs_agree_with_numpy_and_rerun_bit_for_bit(line_search):
    system = standard_system(2000, 1)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=60, step_size=0.4, line_search=line_search, eta0="uniform")
    a = relax(system, cfg, seed=1, store=store)
    b = relax(system, cfg.evolve(backend="torch", device="cuda"), seed=1, store=store)
    _assert_parity(store, a.run_id, b.run_id, rtol_energy=1e-10, atol_eta=1e-10)
    again = rerun(store, b.run_id)  # deterministic scatter: the same events bit for bit
    assert first_difference(store, b.run_id, again.run_id) is None


@gpu
@pytest.mark.parametrize("pieces", sorted(GPU_PIECES))
def test_cuda_runs_of_the_gpu_solvers_and_pieces_agree_with_numpy(pieces):
    system = standard_system(2000, 4)
    store = InMemoryStore()
    cfg = RelaxConfig.model_validate({"steps": 40, "eta0": "uniform", **GPU_PIECES[pieces]})
    a = relax(system, cfg, seed=4, store=store)
    b = relax(system, cfg.evolve(backend="torch", device="cuda"), seed=4, store=store)
    _assert_parity(store, a.run_id, b.run_id, rtol_energy=1e-10, atol_eta=1e-10)


@gpu
def test_cuda_float32_and_attention():
    import torch

    system = standard_system(2000, 2)
    store = InMemoryStore()
    cfg = RelaxConfig(steps=10, step_size=0.2, eta0="uniform", tol=0.0)
    ref = relax(system, cfg, seed=2, store=store)
    r = relax(system, cfg.evolve(backend="torch", device="cuda", dtype="float32"), seed=2, store=store)
    e_ref, e32 = _trace(store, ref.run_id)[0][10].energy, _trace(store, r.run_id)[0][10].energy
    assert abs(e32 - e_ref) <= 1e-4 * abs(e_ref)
    m = EnergyRegularizedAttention(4, 0.5).cuda()
    y, energy = m(torch.randn(2, 3, 4, device="cuda"))
    assert y.device.type == "cuda" and energy.item() >= 0
