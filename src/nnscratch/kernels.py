"""Fused elementwise passes: the optional accelerator (``pip install "nnscratch[fast]"``).

NumPy cannot fuse elementwise work: Adam's update is 12 passes over the
parameters (``optimizers.Adam._update``, written as in the paper, is the
reference and the default), and a ReLU layer adds its bias in one pass,
applies ``max(z, 0)`` in a second and, going back, builds a mask in a third
and multiplies in a fourth. With numba installed, each of these is one
compiled loop that the compiler vectorises: the optimizer updates, a Dense
layer's bias + ReLU, sigmoid's arithmetic on either side of ``exp``, and the
backward pass of ReLU, sigmoid and tanh.

Only arithmetic that IEEE 754 rounds exactly (+, -, *, /, sqrt) is fused, in
the reference's order and on the array's own dtype, so the results are NumPy's
bit for bit (the tests compare both paths, in float32 and float64, and over a
whole fit). ``exp`` and ``tanh`` stay NumPy's: numba's differ in the last bit,
which over thousands of steps would change the classics' printed numbers.

Measured on this project's 2-core machine, one ``Adam.step`` (float32):
101,770 parameters (MNIST 784-128-10) 146-186 us in NumPy, 41-51 us here;
1,863,690 parameters (784-1024-1024-10) 4.0-5.0 ms against 0.8-1.1 ms. The loops run on one
thread (no thread pool to fight other work for the cores). numexpr was
measured too and is slower than NumPy here (three evaluations per Adam step,
each casting the float32 arrays: 720-780 us on 101,770 parameters), so numba
it is. A numba gather of the mini-batch rows measured no faster than
``np.take`` (25-35 ms an MNIST epoch either way), so there is none.

``NNSCRATCH_KERNELS=numpy`` (or ``use_kernels(False)``) turns the accelerator
off; the first call of each kernel compiles it (about a second, cached on disk
afterwards).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["fused", "use_kernels", "available", "ready", "ONE"]

_UNSET: Any = object()
_active: Any = _UNSET  # the kernels in use (None: off); resolved at first use, see fused()


def use_kernels(on: bool | None) -> None:
    """Turn the fused kernels on or off (None: back to ``NNSCRATCH_KERNELS``, else on when available)."""
    global _active
    if on and _compiled() is None:
        raise ModuleNotFoundError('the fused kernels need numba: pip install "nnscratch[fast]"')
    _active = _UNSET if on is None else (_compiled() if on else None)


def available() -> bool:
    """True when numba is installed (the kernels can be used)."""
    return _compiled() is not None


def fused() -> Any:
    """The compiled kernels when they are on, else None: the caller then runs its
    NumPy reference. ``NNSCRATCH_KERNELS`` is read at the first call (and again
    after ``use_kernels(None)``): this is asked several times a training step."""
    global _active
    if _active is _UNSET:
        _active = _compiled() if os.environ.get("NNSCRATCH_KERNELS", "numba") != "numpy" else None
    return _active


def ready(*arrays: np.ndarray) -> Any:
    """The compiled kernels when they are on and every array is C-contiguous,
    float32 or float64, all of one dtype; else None (the caller then runs its
    NumPy reference)."""
    compiled = fused()
    if compiled is None or arrays[0].dtype not in ONE:
        return None
    dtype = arrays[0].dtype
    for a in arrays:
        if a.dtype != dtype or not a.flags.c_contiguous:
            return None
    return compiled


ONE = {np.dtype(np.float32): np.float32(1), np.dtype(np.float64): np.float64(1)}  # 1 in each dtype kernels take


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
            si = s[i] * rho + gi * gi * c  # E = rho E + (1 - rho) g^2 (AdaGrad: rho = c = 1)
            s[i] = si
            pi = p[i] - gi / (np.sqrt(si) + eps) * lr
            p[i] = pi
            finite &= abs(pi) < np.inf
        return finite

    @jit
    def sgd(p, g, lr):
        finite = True
        for i in range(p.size):
            pi = p[i] - g[i] * lr  # p = p - lr g
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

    # --- a Dense layer's bias and activation in one pass (activations.py has the
    # NumPy reference, one pass per operation): z (n, k) becomes a in place.
    @jit
    def bias_relu(z, b):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                v = z[i, j] + b[j]
                z[i, j] = v if not v < 0 else 0  # np.maximum(z + b, 0); NaN stays NaN

    # sigmoid's arithmetic around NumPy's own exp (functional.sigmoid, five passes):
    # t = min(-(z + b), limit) before, a = 1 / (exp(t) + 1) after.
    @jit
    def sigmoid_exponent(z, b, limit):
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                t = -(z[i, j] + b[j])
                z[i, j] = limit if t > limit else t  # np.minimum(t, limit); NaN stays NaN

    @jit
    def one_over_one_plus(t, one):
        t = t.reshape(t.size)
        for i in range(t.size):
            t[i] = one / (t[i] + one)

    # --- dC/dz from dC/da and the cached output a, in place in g (one shape) -----
    # In place, because a loop that writes a second array which might be g
    # itself is not vectorised. ``one`` is 1 in the arrays' dtype, so that
    # float32 arithmetic stays float32.
    @jit
    def relu_backward(g, a):
        g, a = g.reshape(g.size), a.reshape(a.size)
        for i in range(g.size):
            g[i] = g[i] if a[i] > 0 else g[i] * 0  # g (a > 0): 0 at the kink, NaN stays NaN

    @jit
    def sigmoid_backward(g, a, one):
        g, a = g.reshape(g.size), a.reshape(a.size)
        for i in range(g.size):
            ai = a[i]
            g[i] = g[i] * ai * (one - ai)  # g a (1 - a)

    @jit
    def tanh_backward(g, a, one):
        g, a = g.reshape(g.size), a.reshape(a.size)
        for i in range(g.size):
            ai = a[i]
            g[i] = g[i] * (one - ai * ai)  # g (1 - a^2)

    names = ("adam", "rmsprop", "sgd", "momentum", "bias_relu", "sigmoid_exponent", "one_over_one_plus",
             "relu_backward", "sigmoid_backward", "tanh_backward")  # fmt: skip
    found = locals()
    return type("Kernels", (), {name: staticmethod(found[name]) for name in names})
