"""Fused elementwise passes: the optional accelerator (``pip install "nnscratch[fast]"``).

NumPy cannot fuse elementwise work: Adam's update is 12 passes over the
parameters, and a ReLU layer adds its bias in one pass, applies ``max(z, 0)``
in a second and, going back, builds a mask in a third and multiplies in a
fourth. With numba installed, each of these is one compiled loop.

The maths objects know nothing of this module. Two callers use it, each in one
named branch beside the readable code: ``layers.Dense`` asks
``activation_pass(activation, z, b)`` for the fused bias + activation pass and
its backward (ReLU, sigmoid, tanh), and ``optimizers.Optimizer.step`` asks
``optimizer_update(optimizer)`` for the compiled form of its update (SGD,
momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW). Either answers None when
the accelerator is off, the arrays do not suit it, or the object is not one of
the built-in classes (a subclass keeps its own maths); the caller then runs the
NumPy reference, which is the textbook code in ``activations`` and
``optimizers``.

Only arithmetic that IEEE 754 rounds exactly (+, -, *, /, sqrt) is fused, in
the reference's order and on the array's own dtype, so the results are NumPy's
bit for bit (the tests compare both paths, in float32 and float64, and over a
whole fit). ``exp`` and ``tanh`` stay NumPy's: numba's differ in the last bit,
which over thousands of steps would change the classics' printed numbers.
The rule for keeping a kernel is that it measures: one ``Adam.step`` on the
101,770 parameters of MNIST's 784-128-10 takes about a third of NumPy's time
(the measurements are in ``benchmarks/README.md``).

``NNSCRATCH_KERNELS=numpy`` (or ``use_kernels(False)``) turns the accelerator
off; the first call of each kernel compiles it (about a second, cached on disk
afterwards).
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from . import functional as F

__all__ = ["fused", "use_kernels", "available", "ready", "ONE", "ActivationPass", "activation_pass",
           "optimizer_update"]  # fmt: skip

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


class ActivationPass(NamedTuple):
    """A built-in activation's fused passes (see ``activation_pass``).

    ``forward(z, b)`` turns ``z`` (n, units) into ``activation(z + b)`` in place and
    returns it; ``backward(grad_a, a, out)`` returns ``dC/dz`` from ``dC/da`` and that
    output ``a``, in ``out`` when given (``out=grad_a`` overwrites ``grad_a``).
    """

    forward: Any
    backward: Any


def activation_pass(activation: Any, z: np.ndarray, bias: np.ndarray | None) -> ActivationPass | None:
    """The fused passes for ``activation`` on ``z`` with ``bias``, or None.

    None when the kernels are off, when the layer has no bias, when ``z`` and
    ``bias`` are not one dtype and C-contiguous, and for any activation but the
    built-in ReLU, sigmoid and tanh (a subclass keeps its own maths).
    """
    if bias is None or (compiled := ready(z, bias)) is None:
        return None
    name = _builtin(activation, "nnscratch.activations")
    return _pass(name, compiled) if name in _ACTIVATION_PASSES else None


@lru_cache(maxsize=8)
def _pass(name: str, compiled: Any) -> ActivationPass:
    return _ACTIVATION_PASSES[name](compiled)


def _builtin(obj: Any, module: str) -> str | None:
    """The class name of ``obj`` when its class is defined in ``module`` (not a subclass elsewhere)."""
    kind = type(obj)
    return kind.__name__ if kind.__module__ == module else None


def _backward_with(kernel: Any, takes_one: bool) -> Any:
    """A backward pass around the in-place ``kernel(g, a[, one])``: it runs on ``out``
    (which first receives ``grad_a``) or on a fresh copy of ``grad_a``, in ``a``'s dtype
    (the network's gradients are always in it)."""

    def backward(grad_a: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if grad_a.shape != a.shape:
            raise ValueError(f"The gradient must have the output's shape {a.shape}. Received shape {grad_a.shape}.")
        target = out
        if target is None or target.dtype != a.dtype or not target.flags.c_contiguous:
            target = np.array(grad_a, dtype=a.dtype, order="C")
        elif target is not grad_a:
            np.copyto(target, grad_a)
        kernel(target, a, *((ONE[a.dtype],) if takes_one else ()))
        if out is not None and out is not target:
            np.copyto(out, target)
            return out
        return target

    return backward


def _relu_pass(compiled: Any) -> ActivationPass:
    def forward(z: np.ndarray, b: np.ndarray) -> np.ndarray:
        compiled.bias_relu(z, b)  # max(z + b, 0) in one pass
        return z

    return ActivationPass(forward, _backward_with(compiled.relu_backward, takes_one=False))


def _sigmoid_pass(compiled: Any) -> ActivationPass:
    def forward(z: np.ndarray, b: np.ndarray) -> np.ndarray:
        # functional.sigmoid's arithmetic, bias included, in two compiled passes
        # around NumPy's own exp (six passes in all become three).
        compiled.sigmoid_exponent(z, b, z.dtype.type(F.exp_limit(z.dtype)))
        np.exp(z, out=z)
        compiled.one_over_one_plus(z, ONE[z.dtype])
        return z

    return ActivationPass(forward, _backward_with(compiled.sigmoid_backward, takes_one=True))


def _tanh_pass(compiled: Any) -> ActivationPass:
    def forward(z: np.ndarray, b: np.ndarray) -> np.ndarray:
        z += b
        return F.tanh(z, out=z)  # NumPy's tanh (numba's differs in the last bit)

    return ActivationPass(forward, _backward_with(compiled.tanh_backward, takes_one=True))


_ACTIVATION_PASSES = {"ReLU": _relu_pass, "Sigmoid": _sigmoid_pass, "Tanh": _tanh_pass}


def optimizer_update(optimizer: Any) -> Any:
    """The compiled form of a built-in optimizer's update, or None (kernels off, or
    a class of the user's, which keeps its own ``_update``).

    The answer is called as ``update(p, g, state, lr, decay)`` for one parameter
    group, like ``Optimizer._update``, and returns False without touching anything
    when the arrays do not suit the kernels (``ready``): the caller then runs the
    reference. Each plan below names the kernel and hands it the optimizer's own
    numbers (Adam's bias-corrected step sizes come from ``Adam.step_sizes``).
    """
    compiled = fused()
    if compiled is None:  # the NumPy-only path asks this every step: answer at once
        return None
    plan = _UPDATES.get(_builtin(optimizer, "nnscratch.optimizers"))
    if plan is None:
        return None

    def update(p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], lr: float, decay: bool) -> bool:
        name, arrays, scalars = plan(optimizer, state, lr)
        if ready(p, g, *arrays) is None:
            return False
        if decay and optimizer.decoupled_weight_decay:
            optimizer.decay_weights(p, lr)  # AdamW: the NumPy step before the fused Adam step
        views = [a.reshape(-1) for a in (p, g, *arrays)]  # the update loops run over flat views
        cast = [s if isinstance(s, bool) else p.dtype.type(s) for s in scalars]  # as NumPy casts them
        if not getattr(compiled, name)(*views, *cast):
            _report_overflow(name)
        return True

    return update


def _report_overflow(name: str) -> None:
    """Say what the NumPy reference would have said, under the caller's error state
    (the training loop raises, to undo the step): a compiled loop cannot see it."""
    message = f"overflow encountered in the fused {name} update (a parameter became NaN or infinite)"
    mode = np.geterr()["over"]
    if mode == "raise":
        raise FloatingPointError(message)
    if mode != "ignore":
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _sgd_plan(opt: Any, s: dict[str, np.ndarray], lr: float) -> tuple[str, list[np.ndarray], tuple[Any, ...]]:
    if opt.momentum:
        return "momentum", [s["velocity"]], (opt.momentum, lr, opt.nesterov)
    return "sgd", [], (lr,)


def _adagrad_plan(opt: Any, s: dict[str, np.ndarray], lr: float) -> tuple[str, list[np.ndarray], tuple[Any, ...]]:
    return "rmsprop", [s["sum_sq"]], (1.0, 1.0, lr, opt.eps)  # G = 1 G + 1 g^2: the same bits as G += g^2


def _rmsprop_plan(opt: Any, s: dict[str, np.ndarray], lr: float) -> tuple[str, list[np.ndarray], tuple[Any, ...]]:
    return "rmsprop", [s["mean_sq"]], (opt.rho, 1.0 - opt.rho, lr, opt.eps)


def _adam_plan(opt: Any, s: dict[str, np.ndarray], lr: float) -> tuple[str, list[np.ndarray], tuple[Any, ...]]:
    lr_t, eps_t = opt.step_sizes(lr)
    return "adam", [s["m"], s["v"]], (opt.beta1, 1.0 - opt.beta1, opt.beta2, 1.0 - opt.beta2, lr_t, eps_t)


_UPDATES = {"SGD": _sgd_plan, "AdaGrad": _adagrad_plan, "RMSProp": _rmsprop_plan, "Adam": _adam_plan,
            "AdamW": _adam_plan}  # fmt: skip


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
