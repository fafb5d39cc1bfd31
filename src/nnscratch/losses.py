"""Loss functions: a per-sample cost, reduced over the batch by mean or sum.

``forward(output, target, sample_weight)`` returns the scalar loss and caches
what ``backward()`` needs; ``backward()`` returns ``dC/d(output)``.

The cross-entropies take **logits** ``z`` (the last layer's pre-activation),
not probabilities: computing ``log_softmax(z)`` directly is stable where
``log(softmax(z))`` is not, and the gradient collapses to the famous fused
form ``softmax(z) - onehot(y)`` (resp. ``sigmoid(z) - y``). ``fused_activation``
names the output activation a loss absorbs; the network then skips that
activation's own backward.

Reduction with per-sample weights ``w``: ``"sum"`` is ``sum(w * l)`` and
``"mean"`` is ``sum(w * l) / sum(w)`` (plain mean when no weights), so weights
of all ones change nothing and scaling all weights changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from ._cache import Cached
from ._registry import Registry

__all__ = [
    "Loss",
    "Quadratic",
    "MeanSquaredError",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "get_loss",
    "LOSSES",
]

LOSSES = Registry("loss")


class Loss(Cached):
    """Base class; subclasses define ``_per_sample`` and ``_grad``."""

    registry_name = "loss"
    fused_activation: str | None = None  # output activation absorbed, if any
    is_classifier = False
    cache_names = ("output", "target", "sample_weight", "diff", "probs")  # see _cache

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum'. Received reduction={reduction!r}.")
        self.reduction = reduction

    def _scale(self, n: int, sample_weight: np.ndarray | None, dtype: np.dtype) -> np.ndarray | float:
        """Per-sample factor that turns per-sample gradients into the reduced one."""
        if sample_weight is None:
            return 1.0 / n if self.reduction == "mean" else 1.0
        w = sample_weight.astype(dtype, copy=False)
        if self.reduction == "mean":
            w = w / w.sum()
        return w[:, None]

    def reduce(self, per_sample: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Combine per-sample losses by this loss's ``reduction`` (weighted if given)."""
        if sample_weight is None:
            total = float(per_sample.sum())
            return total / per_sample.shape[0] if self.reduction == "mean" else total
        total = float(np.dot(sample_weight, per_sample))
        return total / float(sample_weight.sum()) if self.reduction == "mean" else total

    def forward(self, output: np.ndarray, target: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Loss of ``output`` (n, k) against ``target``; caches for ``backward``."""
        self.output, self.target, self.sample_weight = output, target, sample_weight
        return self.reduce(self.per_sample(output, target), sample_weight)

    def backward(self) -> np.ndarray:
        """``dC/d(output)`` for the last ``forward``, shape (n, k)."""
        scale = self._scale(self.output.shape[0], self.sample_weight, self.output.dtype)
        grad = self._grad(self.output, self.target)
        grad *= scale
        return grad

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The loss of each sample, shape (n,)."""
        raise NotImplementedError

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "reduction": self.reduction}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


@LOSSES.register("quadratic")
class Quadratic(Loss):
    """``0.5 * ||a - y||^2`` per sample (Nielsen's quadratic cost); gradient ``a - y``."""

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        self.diff = d = output - target  # kept: the gradient is this same difference
        return 0.5 * (d * d).sum(axis=1)

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self.diff


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    """``mean_j (a_j - y_j)^2`` per sample; gradient ``2 (a - y) / k``."""

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        d = output - target
        return np.einsum("ij,ij->i", d, d) / output.shape[1]

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return (output - target) * (2.0 / output.shape[1])


@LOSSES.register("binary_cross_entropy")
class BinaryCrossEntropy(Loss):
    """Sum over outputs of ``-y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))``,
    from logits ``z``: ``softplus(z) - y z``. Fused gradient ``sigmoid(z) - y``.

    Targets are 0/1 (or probabilities) with one column per sigmoid output unit.
    """

    fused_activation = "sigmoid"
    is_classifier = True

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.sum(F.softplus(output) - target * output, axis=1)

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        grad = F.sigmoid(output)
        grad -= target
        return grad


@LOSSES.register("cross_entropy")
class CrossEntropy(Loss):
    """Categorical cross-entropy ``-log softmax(z)[y]`` from logits ``z``.

    The gradient is the fused ``softmax(z) - onehot(y)``.

    Parameters
    ----------
    reduction : {"mean", "sum"}
    targets : {"index", "onehot"}, default "index"
        How labels are given: integer class indices of shape (n,), or one-hot
        (or probability) rows of shape (n, k). Stated, never guessed.
    """

    fused_activation = "softmax"
    is_classifier = True

    def __init__(self, reduction: str = "mean", targets: str = "index") -> None:
        super().__init__(reduction)
        if targets not in ("index", "onehot"):
            raise ValueError(f"targets must be 'index' or 'onehot'. Received targets={targets!r}.")
        self.targets = targets

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        # log softmax(z) = shifted - log(sum(exp(shifted))), where shifted is z
        # (minus its row max when needed for stability); the probabilities come
        # from the same exponentials and are kept for the gradient.
        shifted, self.probs, log_total = F.exp_normalize(output)
        if self.targets == "index":
            picked = shifted[np.arange(output.shape[0]), target]
            return log_total[:, 0] - picked
        return np.einsum("ij,ij->i", target, log_total - shifted)

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        grad = self.probs
        if self.targets == "index":
            grad[np.arange(grad.shape[0]), target] -= 1.0
        else:
            grad -= target
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "reduction": self.reduction, "targets": self.targets}


def get_loss(spec: str | Loss) -> Loss:
    """Resolve a loss name (``"cross_entropy"``, ``"quadratic"``, ...) or instance."""
    return LOSSES.resolve(spec, Loss)
