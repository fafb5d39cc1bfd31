"""Fused optimizer updates: the optional accelerator (``pip install "nnscratch[fast]"``).

NumPy cannot fuse elementwise work: Adam's update is 12 passes over the
parameters (``optimizers.Adam._update``, written as in the paper, is the
reference and the default). With numba installed, each update here is one
compiled loop that the compiler vectorises: the same arithmetic in the same
order, on the array's own dtype, so the results match the NumPy path (the
tests compare both, for every optimizer, in float32 and float64). Measured on
this project's 2-core machine, one Adam step: 101,770 parameters (MNIST
784-128-10) 125-150 us in NumPy, 24-30 us here; 1,863,690 parameters
(784-1024-1024-10) 3.5-3.8 ms against 0.8-1.0 ms. The loops run on one thread
(no thread pool to fight other work for the cores).

numexpr was measured too and is slower than NumPy here (three evaluations per
Adam step, each casting the float32 arrays: 720-780 us on 101,770 parameters),
so numba it is. ``NNSCRATCH_KERNELS=numpy`` (or ``use_kernels(False)``) turns
the accelerator off; the first call of each kernel compiles it (about a
second, cached on disk afterwards).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["fused", "use_kernels", "available", "flat"]

_wanted: bool | None = None  # use_kernels(); None: NNSCRATCH_KERNELS, else on when numba is installed


def use_kernels(on: bool | None) -> None:
    """Turn the fused kernels on or off (None: back to ``NNSCRATCH_KERNELS``, else on when available)."""
    global _wanted
    if on and _compiled() is None:
        raise ModuleNotFoundError('the fused kernels need numba: pip install "nnscratch[fast]"')
    _wanted = on


def available() -> bool:
    """True when numba is installed (the kernels can be used)."""
    return _compiled() is not None


def fused() -> Any:
    """The compiled kernels (``adam``, ``rmsprop``, ``adagrad``, ``momentum``) when they
    are on, else None: the caller then runs its NumPy reference."""
    on = _wanted if _wanted is not None else os.environ.get("NNSCRATCH_KERNELS", "numba") != "numpy"
    return _compiled() if on else None


def flat(*arrays: np.ndarray) -> list[np.ndarray] | None:
    """The arrays as 1-D views for a kernel, or None when one is not contiguous
    (the caller then runs its NumPy reference)."""
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


@lru_cache(maxsize=1)
def _compiled() -> Any:
    try:
        import numba
    except ImportError:
        return None
    # error_model="numpy": division follows IEEE rules instead of raising, which is
    # what lets the loops vectorise. No fastmath: the arithmetic stays exactly as written.
    jit = numba.njit(cache=True, error_model="numpy", nogil=True)

    # Each update returns True when every new parameter is finite: NumPy's error
    # state cannot see inside a compiled loop, so the caller reports an overflow.
    @jit
    def adam(p, g, m, v, b1, c1, b2, c2, lr_t, eps_t):
        finite = True
        for i in range(p.size):
            gi = g[i]
            mi = m[i] * b1 + gi * c1  # m = b1 m + (1 - b1) g
            vi = v[i] * b2 + gi * gi * c2  # v = b2 v + (1 - b2) g^2
            m[i] = mi
            v[i] = vi
            pi = p[i] - mi / (np.sqrt(vi) + eps_t) * lr_t  # p = p - lr_t m / (sqrt(v) + eps_t)
            p[i] = pi
            finite &= abs(pi) < np.inf  # False for inf and NaN
        return finite

    @jit
    def rmsprop(p, g, s, rho, c, lr, eps):
        finite = True
        for i in range(p.size):
            gi = g[i]
            si = s[i] * rho + gi * gi * c  # E = rho E + (1 - rho) g^2
            s[i] = si
            pi = p[i] - gi / (np.sqrt(si) + eps) * lr
            p[i] = pi
            finite &= abs(pi) < np.inf
        return finite

    @jit
    def adagrad(p, g, s, lr, eps):
        finite = True
        for i in range(p.size):
            gi = g[i]
            si = s[i] + gi * gi  # G = G + g^2
            s[i] = si
            pi = p[i] - gi / (np.sqrt(si) + eps) * lr
            p[i] = pi
            finite &= abs(pi) < np.inf
        return finite

    @jit
    def momentum(p, g, v, mu, lr, nesterov):
        finite = True
        for i in range(p.size):
            step = g[i] * lr
            vi = v[i] * mu - step  # v = mu v - lr g
            v[i] = vi
            pi = p[i] + (vi * mu - step if nesterov else vi)
            p[i] = pi
            finite &= abs(pi) < np.inf
        return finite

    return type("Kernels", (), {"adam": staticmethod(adam), "rmsprop": staticmethod(rmsprop),
                                "adagrad": staticmethod(adagrad), "momentum": staticmethod(momentum)})  # fmt: skip
