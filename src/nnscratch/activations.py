"""Activation functions, each with its derivative right beside it.

An activation is applied elementwise (softmax row-wise) to a layer's
pre-activation ``z`` and returns ``a``. ``forward`` caches what ``backward``
needs; ``backward(grad_a)`` returns ``dC/dz``. Where the derivative is cheaper
from the output than from the input (sigmoid, tanh, softmax) we cache ``a``.

No backward needs ``z`` itself, so ``forward`` may compute ``a`` in the memory
of ``z``, and ``backward`` in the memory of ``grad_a``: ``Dense`` hands both
over as fresh arrays it no longer needs. That saves an allocation and a pass
per layer on large batches. Pass copies if you call them on arrays you keep.
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

    def forward(self, z: np.ndarray) -> np.ndarray:
        """Apply the function to the pre-activation ``z`` of shape (n, units)."""
        raise NotImplementedError

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        """Return ``dC/dz`` given ``dC/da``, using what ``forward`` cached."""
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

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        return grad_a


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """``a = 1 / (1 + exp(-z))``; ``da/dz = a (1 - a)``."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        self.a = F.sigmoid(z, out=z)
        return self.a

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        grad_a *= self.a
        grad_a *= 1.0 - self.a
        return grad_a


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """``a = tanh(z)``; ``da/dz = 1 - a**2``."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        self.a = F.tanh(z, out=z)
        return self.a

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        grad_a *= 1.0 - self.a * self.a
        return grad_a


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """``a = max(z, 0)``; ``da/dz = 1`` where ``z > 0``, else 0 (0 at the kink)."""

    def forward(self, z: np.ndarray) -> np.ndarray:
        self.a = np.maximum(z, 0.0, out=z)
        return self.a

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        grad_a *= self.a > 0
        return grad_a


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """``a = z`` where ``z > 0`` else ``alpha * z``; ``da/dz`` is 1 or ``alpha``
    (``alpha`` at the kink ``z = 0``)."""

    def __init__(self, alpha: float = 0.01) -> None:
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1). Received alpha={alpha!r}.")
        self.alpha = float(alpha)

    def forward(self, z: np.ndarray) -> np.ndarray:
        self.positive = z > 0
        return np.where(self.positive, z, self.alpha * z)

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        return np.where(self.positive, grad_a, self.alpha * grad_a)

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

    def forward(self, z: np.ndarray) -> np.ndarray:
        self.a = F.softmax(z, out=z)
        return self.a

    def backward(self, grad_a: np.ndarray) -> np.ndarray:
        a = self.a
        return a * (grad_a - np.sum(grad_a * a, axis=1, keepdims=True))


def get_activation(spec: str | Activation | None) -> Activation:
    """Resolve ``"relu"`` (or an ``Activation`` instance, or None for identity)."""
    if spec is None:
        return Identity()
    return ACTIVATIONS.resolve(spec, Activation)
