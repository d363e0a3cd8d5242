"""The array backend: the few operations the energy terms and solvers need beyond ``xp``.

Backends are selected by name through a small registry: ``make_backend("numpy")``
is built in; ``adapters`` registers ``"torch"`` when it is imported (lazily:
torch itself is imported only when a torch backend is constructed).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from complexity_from_constraints.entities import InvalidEntityError

from ._plugins import entry_point_names, find, known

FLOAT_DTYPES = ("float64", "float32")


class AbstractBackend:
    """What compiled energy terms run on.

    ``xp`` is an array namespace offering the functions the kind formulas and
    the compiled evaluation use (``where``, ``zeros_like``, ``sum``,
    ``concatenate``, ``sqrt``, ``all``, arithmetic, slicing and fancy-index
    assignment); the methods below cover what numpy and torch spell
    differently.

    ``dtype`` is the backend's floating precision (``"float64"`` or
    ``"float32"``): :meth:`asarray` turns every floating request into it, so
    parameters, weights and η share one precision; ``"int64"`` index arrays
    stay integers.

    A backend is chosen by name in ``RelaxConfig(backend=...)``:
    :func:`register_backend` a factory in this process, or declare it as an
    entry point of ``complexity_from_constraints.backends`` in a package.

    >>> from complexity_from_constraints.entities import RelaxConfig, standard_system
    >>> from complexity_from_constraints.projectors import relax
    >>> class CountingNumpy(NumpyBackend):
    ...     name = "counting_numpy"
    ...     calls = 0
    ...     def scatter_add(self, index, values, n):
    ...         CountingNumpy.calls += 1
    ...         return super().scatter_add(index, values, n)
    >>> register_backend("counting_numpy", CountingNumpy)
    >>> _ = relax(standard_system(20, seed=0), RelaxConfig(steps=5, backend="counting_numpy"))
    >>> CountingNumpy.calls > 0
    True
    """

    name: str
    xp: Any
    dtype: Any

    def asarray(self, values: Any, dtype: str | None = None) -> Any:  # pragma: no cover - abstract
        """``values`` as a backend array: ``"int64"`` for indices, else the backend's float dtype."""
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


def check_dtype(backend: str, dtype: Any) -> str:
    """The name of a supported floating dtype, or a clear error."""
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")  # a torch.dtype
    if name not in FLOAT_DTYPES and not isinstance(dtype, str):
        try:
            name = np.dtype(dtype).name  # np.float32, np.dtype("float32")
        except TypeError:
            pass
    if name not in FLOAT_DTYPES:
        raise InvalidEntityError(backend, None, "dtype", dtype, f"must be one of {', '.join(FLOAT_DTYPES)}")
    return name


class NumpyBackend(AbstractBackend):
    """The default backend: numpy, float64 unless asked otherwise (``dtype="float32"``).

    >>> import numpy as np
    >>> NumpyBackend().scatter_add(np.array([0, 2, 0]), np.array([1.0, 2.0, 3.0]), 3)
    array([4., 0., 2.])
    >>> NumpyBackend("float32").asarray([0.5]).dtype
    dtype('float32')
    """

    name = "numpy"
    xp = np

    def __init__(self, dtype: str = "float64", device: str = "cpu"):
        if device != "cpu":
            raise InvalidEntityError("NumpyBackend", None, "device", device, "numpy runs on the CPU only (device='cpu')")
        self.dtype = np.dtype(check_dtype("NumpyBackend", dtype))

    def __repr__(self) -> str:
        return f"NumpyBackend(dtype={str(self.dtype)!r})"

    def asarray(self, values, dtype=None):
        wanted = np.dtype(dtype) if dtype is not None else self.dtype
        return np.asarray(values, dtype=self.dtype if wanted.kind == "f" else wanted)

    def to_numpy(self, array):
        return np.asarray(array)

    def scatter_add(self, index, values, n):
        out = np.bincount(index, weights=values, minlength=n)  # bincount always sums in float64
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def clip01(self, array):
        return np.clip(array, 0.0, 1.0)


BackendFactory = Callable[..., AbstractBackend]
_BACKENDS: dict[str, BackendFactory] = {"numpy": NumpyBackend}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``make_backend(name, **options)`` call ``factory(**options)``.

    Registering a name again replaces its factory (so re-importing a module
    that registers is harmless).
    """
    if not name or not isinstance(name, str):
        raise InvalidEntityError("backend", None, "name", name, "must be a non-empty string")
    _BACKENDS[name] = factory


def backend_names() -> tuple[str, ...]:
    """The backend names this process can build: registered ones and installed entry points, sorted."""
    return tuple(sorted(set(_BACKENDS) | set(entry_point_names("backends"))))


def make_backend(name: str = "numpy", **options: Any) -> AbstractBackend:
    """Build the backend registered as ``name`` (options such as ``device``, ``dtype``).

    >>> make_backend("numpy", dtype="float32").dtype
    dtype('float32')
    >>> try:
    ...     make_backend("cupy")
    ... except InvalidEntityError as e:
    ...     print(e.reason.split(";")[0])
    unknown backend
    """
    factory = find(_BACKENDS, "backends", name)
    if factory is None:
        raise InvalidEntityError("backend", None, "name", name,
                                 f"unknown backend; known: {known(_BACKENDS, 'backends')} (register_backend() it in "
                                 "this process, or install the package whose entry point provides it)")
    return factory(**options)
