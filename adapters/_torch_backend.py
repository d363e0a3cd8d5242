"""The torch array backend: the same kind formulas and solvers on tensors, on CPU or GPU.

Nothing here imports torch at module import time: importing the package works
without torch, and constructing :class:`TorchBackend` without it raises
:class:`~entities.MissingDependencyError` with a one-line install hint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError, MissingDependencyError
from complexity_from_constraints.projectors._backend import AbstractBackend, check_dtype

INSTALL_HINT = 'torch is not installed: pip install torch (for the CPU-only build add --index-url https://download.pytorch.org/whl/cpu)'


def import_torch() -> Any:
    """``torch``, or :class:`MissingDependencyError` with the one-line install hint."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(INSTALL_HINT) from None
    return torch


class TorchBackend(AbstractBackend):
    """Compiled energy terms on torch tensors (``xp`` is the ``torch`` module).

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … (a CUDA device must be
            available).
        dtype: ``"float64"`` (default) or ``"float32"``; every floating array
            (η, parameters, weights) uses it, index arrays are int64.
        deterministic: how :meth:`scatter_add` sums on CUDA. ``index_add_``
            with floating values uses atomic adds on CUDA, whose order (and
            so the last bits of the gradient) varies from run to run; with
            ``deterministic=True`` (default) the sum goes through
            ``index_put_(..., accumulate=True)``, which sorts the indices
            first and sums in a fixed order, so a re-run reproduces the log
            bit for bit on the same GPU at a small cost. ``False`` takes the
            atomic path. On the CPU both paths are deterministic and
            ``index_add_`` is used.

    Energies and step decisions are taken on the host (``to_float`` is
    ``.item()``, one device synchronisation per reduction); events carry
    float64 numpy copies of η. Usually built by name:
    ``make_backend("torch", device="cuda", dtype="float32")``, or through
    ``RelaxConfig(backend="torch", device=..., dtype=...)``.
    """

    name = "torch"

    def __init__(self, device: str = "cpu", dtype: str = "float64", deterministic: bool = True):
        torch = import_torch()
        self.xp = torch
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise InvalidEntityError("TorchBackend", None, "device", device, f"not a torch device ({exc})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidEntityError("TorchBackend", None, "device", device,
                                     "CUDA is not available on this machine (use device='cpu')")
        self.dtype_name = check_dtype("TorchBackend", dtype)
        self.dtype = getattr(torch, self.dtype_name)
        self.deterministic = bool(deterministic)
        self._accumulate_sorted = self.deterministic and self.device.type == "cuda"

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r}, dtype={self.dtype_name!r})"

    def asarray(self, values, dtype=None):
        torch = self.xp
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        host = np.asarray(values)
        if not host.flags.writeable:  # torch warns on read-only numpy memory; the tensor gets its own copy
            host = host.copy()
        if dtype is not None and np.dtype(dtype).kind in "iu":
            return torch.as_tensor(host.astype(np.int64, copy=False), dtype=torch.int64, device=self.device)
        return torch.as_tensor(host, dtype=self.dtype, device=self.device)

    def to_numpy(self, array):
        if isinstance(array, self.xp.Tensor):
            return array.detach().cpu().numpy()
        return np.asarray(array)

    def scatter_add(self, index, values, n):
        out = self.xp.zeros(n, dtype=values.dtype, device=values.device)
        if self._accumulate_sorted:
            return out.index_put_((index,), values, accumulate=True)
        return out.index_add_(0, index, values)

    def clip01(self, array):
        return self.xp.clamp(array, 0.0, 1.0)

    def to_float(self, scalar):
        return float(scalar.item()) if isinstance(scalar, self.xp.Tensor) else float(scalar)


def torch_backend(device: str = "cpu", dtype: str = "float64", **options: Any) -> TorchBackend:
    """The factory ``make_backend("torch", ...)`` calls (found through the entry point `torch` of `complexity_from_constraints.backends`)."""
    return TorchBackend(device=device, dtype=dtype, **options)
