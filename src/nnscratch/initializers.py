"""Weight initialisation schemes.

Each initializer is a function ``init(rng, shape, dtype) -> ndarray`` that
draws from the NumPy ``Generator`` it is given, never from global state.
``shape`` is ``(n_in, n_out)`` for a Dense weight matrix; fan-in and fan-out
are read from it.

* ``uniform``: U[-1, 1), the classic ``2*random - 1``.
* ``uniform01``: U[0, 1).
* ``normal``: N(0, 1), as in Nielsen's ``network.py``.
* ``scaled_normal``: N(0, 1) / sqrt(n_in), as in ``network2.py``.
* ``glorot_uniform`` / ``glorot_normal``: variance 2 / (n_in + n_out).
* ``he_uniform`` / ``he_normal``: variance 2 / n_in, for ReLU layers.
* ``zeros``: for biases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._registry import Registry

__all__ = ["INITIALIZERS", "get_initializer"]

Initializer = Callable[[np.random.Generator, tuple[int, ...], np.dtype], np.ndarray]
INITIALIZERS = Registry("initializer")


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    fan_in = shape[0]
    fan_out = shape[1] if len(shape) > 1 else shape[0]
    return fan_in, fan_out


@INITIALIZERS.register("zeros")
def zeros(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """All zeros (the usual bias initialisation)."""
    return np.zeros(shape, dtype=dtype)


@INITIALIZERS.register("uniform")
def uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uniform in [-1, 1)."""
    return (2.0 * rng.random(shape) - 1.0).astype(dtype)


@INITIALIZERS.register("uniform01")
def uniform01(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Uniform in [0, 1)."""
    return rng.random(shape).astype(dtype)


@INITIALIZERS.register("normal")
def normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Standard normal N(0, 1)."""
    return rng.standard_normal(shape).astype(dtype)


@INITIALIZERS.register("scaled_normal")
def scaled_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """N(0, 1) / sqrt(n_in)."""
    return (rng.standard_normal(shape) / np.sqrt(_fans(shape)[0])).astype(dtype)


@INITIALIZERS.register("glorot_uniform")
def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """U[-l, l) with ``l = sqrt(6 / (n_in + n_out))`` (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)


@INITIALIZERS.register("glorot_normal")
def glorot_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """N(0, 2 / (n_in + n_out))."""
    fan_in, fan_out = _fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


@INITIALIZERS.register("he_uniform")
def he_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """U[-l, l) with ``l = sqrt(6 / n_in)`` (He et al., 2015)."""
    limit = np.sqrt(6.0 / _fans(shape)[0])
    return rng.uniform(-limit, limit, shape).astype(dtype)


@INITIALIZERS.register("he_normal")
def he_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """N(0, 2 / n_in)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / _fans(shape)[0])).astype(dtype)


# Aliases users will type.
INITIALIZERS.alias("xavier_uniform", "glorot_uniform")
INITIALIZERS.alias("xavier_normal", "glorot_normal")


def get_initializer(spec: str | Initializer) -> Initializer:
    """Resolve an initializer name (or pass a callable through)."""
    if callable(spec):
        return spec
    return INITIALIZERS.get(spec)
