"""The array backend: the few operations the energy terms and solvers need beyond ``xp``."""

from __future__ import annotations

from typing import Any

import numpy as np


class AbstractBackend:
    """What compiled energy terms run on.

    ``xp`` is an array namespace offering the element-wise functions the kind
    formulas use (``where``, ``exp``, arithmetic); the methods below cover what
    numpy and torch spell differently.
    """

    name: str
    xp: Any

    def asarray(self, values: Any, dtype: str = "float64") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_numpy(self, array: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def scatter_add(self, index: Any, values: Any, n: int) -> Any:  # pragma: no cover - abstract
        """``out[index[k]] += values[k]`` into a fresh length-``n`` array."""
        raise NotImplementedError

    def clip01(self, array: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_float(self, scalar: Any) -> float:
        return float(scalar)


class NumpyBackend(AbstractBackend):
    """The default backend: numpy, float64 unless asked otherwise.

    >>> import numpy as np
    >>> NumpyBackend().scatter_add(np.array([0, 2, 0]), np.array([1.0, 2.0, 3.0]), 3)
    array([4., 0., 2.])
    """

    name = "numpy"
    xp = np

    def __init__(self, dtype: str = "float64"):
        self.dtype = np.dtype(dtype)

    def asarray(self, values, dtype=None):
        return np.asarray(values, dtype=dtype or self.dtype)

    def to_numpy(self, array):
        return np.asarray(array)

    def scatter_add(self, index, values, n):
        return np.bincount(index, weights=values, minlength=n)

    def clip01(self, array):
        return np.clip(array, 0.0, 1.0)
