r"""Energy-regularised attention: single-head attention whose energy is λ · the variance of its weights.

.. math::
    A = \mathrm{softmax}(QK^\top / \sqrt{d}), \qquad y = AV, \qquad
    E = λ \cdot \frac{1}{B} \sum_b \mathrm{Var}(A_b)

with bias-free linear maps Q, K, V, ``A_b`` the (T × T) weights of batch
element b and Var the population variance over both of its dimensions. Every
row of ``A_b`` sums to one, so its mean is 1/T and Var(A_b) = mean(A_b²) − 1/T²:
zero for uniform attention, largest for one-hot rows. Adding E to a task loss
pulls attention towards uniform, the way a module's energy pulls its η.

The names here import without torch; constructing the module (or running the
ablation) needs it and raises :class:`~entities.MissingDependencyError` with the
install hint otherwise.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

from complexity_from_constraints.entities import InvalidEntityError

from ._torch_backend import import_torch

_BUILT: dict[str, type] = {}


def check_lambda(lam: Any) -> float:
    """λ as a float in [0, 1], or :class:`~entities.InvalidEntityError`."""
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise InvalidEntityError("EnergyRegularizedAttention", None, "lam", lam, "must be a number in [0, 1]") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidEntityError("EnergyRegularizedAttention", None, "lam", lam, "must lie in [0, 1]")
    return value


def _module_class() -> type:
    """The ``torch.nn.Module`` subclass, defined on first use (needs torch)."""
    if "module" in _BUILT:
        return _BUILT["module"]
    torch = import_torch()
    nn = torch.nn

    class _EnergyRegularizedAttention(nn.Module):
        def __init__(self, dim: int, lam: float = 0.1):
            super().__init__()
            if not isinstance(dim, int) or dim < 1:
                raise InvalidEntityError("EnergyRegularizedAttention", None, "dim", dim, "must be a positive integer")
            self.dim, self.lam = dim, check_lambda(lam)
            self.q = nn.Linear(dim, dim, bias=False)
            self.k = nn.Linear(dim, dim, bias=False)
            self.v = nn.Linear(dim, dim, bias=False)

        def extra_repr(self) -> str:
            return f"dim={self.dim}, lam={self.lam}"

        def attention(self, x):
            """The (B, T, T) attention weights softmax(QKᵀ/√d) of ``x`` (B, T, dim)."""
            if x.ndim != 3 or x.shape[-1] != self.dim:
                raise InvalidEntityError("EnergyRegularizedAttention", None, "x", tuple(x.shape),
                                         f"expected (batch, tokens, {self.dim})")
            scores = self.q(x) @ self.k(x).transpose(-2, -1) / math.sqrt(self.dim)
            return torch.softmax(scores, dim=-1)

        def forward(self, x):
            """``(y, energy)``: y = softmax(QKᵀ/√d)V of shape (B, T, dim), energy a scalar tensor."""
            weights = self.attention(x)
            y = weights @ self.v(x)
            return y, self.lam * attention_variance(weights)

    _EnergyRegularizedAttention.__name__ = _EnergyRegularizedAttention.__qualname__ = "EnergyRegularizedAttention"
    _BUILT["module"] = _EnergyRegularizedAttention
    return _EnergyRegularizedAttention


def attention_variance(weights):
    """Mean over the batch of the population variance of each (T × T) weight matrix."""
    return weights.var(dim=(-2, -1), correction=0).mean()


class _LazyModuleMeta(type):
    """Makes ``isinstance(m, EnergyRegularizedAttention)`` true for the torch module it builds."""

    def __instancecheck__(cls, instance: Any) -> bool:
        built = _BUILT.get("module")
        return built is not None and isinstance(instance, built)

    def __subclasscheck__(cls, subclass: type) -> bool:
        built = _BUILT.get("module")
        return built is not None and issubclass(subclass, built)


class EnergyRegularizedAttention(metaclass=_LazyModuleMeta):
    """Single-head attention that also returns its energy λ · mean variance of the attention weights.

    ``EnergyRegularizedAttention(dim, lam=0.1)`` returns a ``torch.nn.Module``
    (the class is built on first use, so importing this name needs no torch).
    ``module(x)`` with ``x`` of shape (batch, tokens, dim) returns ``(y, energy)``:
    ``y = softmax(QKᵀ/√dim) V`` (Q, K, V bias-free linear maps) and
    ``energy = lam · mean_b Var(A_b)`` (population variance over the last two
    dimensions of the weights), a differentiable scalar to add to a loss.
    ``module.attention(x)`` gives the weights.

    Args:
        dim: the token dimension (and of Q, K, V).
        lam: λ ∈ [0, 1]; 0 switches the energy off.

    Raises:
        MissingDependencyError: torch is not installed.
        InvalidEntityError: λ outside [0, 1] or a non-positive ``dim``.
    """

    def __new__(cls, dim: int, lam: float = 0.1):  # type: ignore[misc]
        check_lambda(lam)
        return _module_class()(dim, lam)


class AblationRow(NamedTuple):
    """One λ of :func:`attention_ablation`: the final task loss and mean attention variance (held-out batch)."""

    lam: float
    task_loss: float
    attention_variance: float


def attention_ablation(lambdas: Sequence[float] = (0.0, 0.1, 0.3, 1.0), seed: int = 0, steps: int = 300, *,
                       tokens: int = 8, token_dim: int = 4, batch: int = 64, lr: float = 0.03,
                       threads: int | None = 1) -> list[AblationRow]:
    r"""Train one :class:`EnergyRegularizedAttention` per λ on a synthetic copy task; one row per λ.

    The task: a sequence of ``tokens`` random vectors (``token_dim`` each,
    with a one-hot position appended) should map every position t to the
    vector at position t − 1 (cyclically); the loss is the mean squared error
    on the vector part. Solving it needs sharp attention (one-hot rows, large
    variance), so the energy λ · Var trades task loss for flatter attention.
    Training minimises ``task loss + energy`` with Adam for ``steps`` steps
    on fresh batches; data, initialisation and order all come from ``seed``
    (the global torch RNG is left untouched), so the rows are deterministic
    on a given machine. ``threads`` sets torch's intra-op threads while
    training (restored afterwards; ``None`` leaves them): the model is tiny,
    so one thread is the fastest and keeps the rows independent of the core
    count.

    Returns:
        ``[AblationRow(lam, task_loss, attention_variance), ...]`` in the order
        of ``lambdas``, both measured on one held-out batch after training.
    """
    torch = import_torch()
    lams = [check_lambda(lam) for lam in lambdas]
    dim = token_dim + tokens
    eye = torch.eye(tokens, dtype=torch.float32)

    def make_batch(gen):
        vectors = torch.randn(batch, tokens, token_dim, generator=gen)
        x = torch.cat([vectors, eye.expand(batch, tokens, tokens)], dim=-1)
        return x, torch.roll(vectors, shifts=1, dims=1)

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return [_train(torch, lam, seed, steps, make_batch, dim, token_dim, lr) for lam in lams]
    finally:
        torch.set_num_threads(previous)


def _train(torch, lam: float, seed: int, steps: int, make_batch, dim: int, token_dim: int, lr: float) -> AblationRow:
    """Train one module for ``steps`` Adam steps on task loss + energy; measure it on the held-out batch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EnergyRegularizedAttention(dim, lam)
    gen = torch.Generator().manual_seed(seed + 1)
    held_out = make_batch(torch.Generator().manual_seed(seed + 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, target = make_batch(gen)
        y, energy = model(x)
        loss = torch.mean((y[..., :token_dim] - target) ** 2) + energy
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, target = held_out
        y, _ = model(x)
        task = torch.mean((y[..., :token_dim] - target) ** 2).item()
        var = attention_variance(model.attention(x)).item()
    return AblationRow(lam, task, var)
