"""Activation functions, each with its derivative right beside it.

An activation is applied elementwise (softmax row-wise) to a layer's
pre-activation ``z`` and returns ``a``. ``forward`` caches what ``backward``
needs; ``backward(grad_a)`` returns ``dC/dz``. Where the derivative is cheaper
from the output than from the input (sigmoid, tanh, softmax) we cache ``a``.

Neither method touches its argument unless asked: ``forward(z, out=z)``
computes ``a`` in the memory of ``z`` and ``backward(grad_a, out=grad_a)``
computes ``dC/dz`` in the memory of ``grad_a``. No backward needs ``z``
itself, so ``Dense`` does exactly that with the fresh arrays it owns, which
saves an allocation and a pass per layer on large batches. Called without
``out``, both return new arrays, and ``backward`` gives the same answer however
often it is called. This file is the whole of the maths: the optional
accelerator's fused passes live in ``nnscratch.kernels``, used by ``Dense``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from ._cache import Cached
from ._registry import Registry

__all__ = [
    "Activation",
    "Identity",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "get_activation",
    "ACTIVATIONS",
]

ACTIVATIONS = Registry("activation")


class Activation(Cached):
    """Base class: ``forward(z) -> a`` and ``backward(grad_a) -> grad_z``."""

    registry_name = "activation"
    cache_names = ("a", "positive")  # what forward keeps for backward (see _cache)
    a: np.ndarray | None = None  # the output (sigmoid, tanh, ReLU, softmax take their derivative from it)
    positive: np.ndarray | None = None  # where the input was positive (leaky ReLU)

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Apply the function to the pre-activation ``z`` of shape (n, units).

        ``out`` : where to write ``a``; pass ``out=z`` to overwrite ``z`` (the
        result is cached for ``backward``, so do not change it afterwards).
        """
        raise NotImplementedError

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``dC/dz`` given ``dC/da``, using what ``forward`` cached.

        ``out`` : where to write the result; ``out=grad_a`` overwrites ``grad_a``.
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The name and settings, enough to rebuild the object."""
        return {"name": self.registry_name}

    def __repr__(self) -> str:
        return self.registry_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.registry_name)


@ACTIVATIONS.register("identity")
class Identity(Activation):
    """``a = z``; ``da/dz = 1``."""

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            return z.copy()
        if out is not z:
            np.copyto(out, z)
        return out

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self.forward(grad_a, out)


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """``a = 1 / (1 + exp(-z))``; ``da/dz = a (1 - a)``."""

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.a = F.sigmoid(z, out=out)
        return self.a

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        grad_z = np.multiply(grad_a, self.a, out=out)
        grad_z *= 1.0 - self.a
        return grad_z


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """``a = tanh(z)``; ``da/dz = 1 - a**2``."""

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.a = F.tanh(z, out=out)
        return self.a

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.multiply(grad_a, 1.0 - self.a * self.a, out=out)


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """``a = max(z, 0)``; ``da/dz = 1`` where ``z > 0``, else 0 (0 at the kink)."""

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.a = np.maximum(z, 0.0, out=out)
        return self.a

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.multiply(grad_a, self.a > 0, out=out)


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """``a = z`` where ``z > 0`` else ``alpha * z``; ``da/dz`` is 1 or ``alpha``
    (``alpha`` at the kink ``z = 0``)."""

    def __init__(self, alpha: float = 0.01) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1). Received alpha={alpha!r}.")
        self.alpha = float(alpha)

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.positive = z > 0
        return self._scale(z, out)

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return self._scale(grad_a, out)

    def _scale(self, x: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``x`` where the forward input was positive, ``alpha * x`` elsewhere."""
        result = np.where(self.positive, x, self.alpha * x)
        if out is None:
            return result
        np.copyto(out, result)
        return out

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "alpha": self.alpha}

    def __repr__(self) -> str:
        return f"leaky_relu({self.alpha:g})"


@ACTIVATIONS.register("softmax")
class Softmax(Activation):
    """Row-wise ``a_i = exp(z_i) / sum_j exp(z_j)``.

    Its Jacobian is ``diag(a) - a a^T`` per row, so the vector-Jacobian product
    is ``a * (grad_a - sum(grad_a * a))``. Paired with the cross-entropy loss the
    network skips this and uses the fused ``softmax(z) - onehot(y)`` instead.
    """

    def forward(self, z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.a = F.softmax(z, out=out)
        return self.a

    def backward(self, grad_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        a = self.a
        inner = np.sum(grad_a * a, axis=1, keepdims=True)
        grad_z = np.subtract(grad_a, inner, out=out)
        grad_z *= a
        return grad_z


def get_activation(spec: str | Activation | None) -> Activation:
    """Resolve ``"relu"`` (or an ``Activation`` instance, or None for identity)."""
    if spec is None:
        return Identity()
    return ACTIVATIONS.resolve(spec, Activation)
