"""Loss functions: a per-sample cost, reduced over the batch by mean or sum.

``forward(output, target, sample_weight)`` returns the scalar loss and caches
what ``backward()`` needs; ``backward()`` returns ``dC/d(output)`` as a new
array (calling it twice gives the same answer).

The cross-entropies take **logits** ``z`` (the last layer's pre-activation),
not probabilities: computing ``log_softmax(z)`` directly is stable where
``log(softmax(z))`` is not, and the gradient collapses to the famous fused
form ``softmax(z) - onehot(y)`` (resp. ``sigmoid(z) - y``). ``fused_activation``
names the output activation a loss absorbs; the network then skips that
activation's own backward.

A loss also owns what its targets mean: ``check_targets`` turns user input
into the form it computes with (class indices or rows), and the classification
losses turn their input, the logits, into probabilities and labels and count
correct predictions, so no other module needs to know which loss it holds.

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
from ._validation import check_choice, class_indices, numeric_targets, target_rows

__all__ = [
    "Loss",
    "Quadratic",
    "MeanSquaredError",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "ClassificationLoss",
    "get_loss",
    "LOSSES",
]

LOSSES = Registry("loss")


class Loss(Cached):
    """Base class; subclasses define ``per_sample`` and ``_grad``."""

    registry_name = "loss"
    fused_activation: str | None = None  # output activation absorbed, if any
    is_classifier = False
    cache_names = ("output", "target", "sample_weight", "probs")  # see _cache

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = check_choice("reduction", reduction, ("mean", "sum"))

    # --- what the network and the user hand over ---------------------------
    def check_targets(self, y: Any, n_samples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        """``y`` in the form this loss computes with: rows of ``n_outputs`` values."""
        return target_rows(numeric_targets(y, n_samples, name), n_outputs, dtype, name)

    def absorbs(self, activation: Any) -> bool:
        """True when the loss takes the logits and applies ``activation`` itself."""
        return self.fused_activation is not None and activation.registry_name == self.fused_activation

    def check_output(self, activation: Any, n_outputs: int) -> None:
        """Refuse an output layer this loss cannot work with (a Network calls this)."""
        if self.fused_activation is not None and activation.registry_name not in (self.fused_activation, "identity"):
            raise ValueError(
                f"{type(self).__name__} works from logits, so the output activation must be "
                f"{self.fused_activation!r} or 'identity'. Received {activation!r}."
            )

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
        """``dC/d(output)`` for the last ``forward``, shape (n, k): a new array each call."""
        scale = self._scale(self.output.shape[0], self.sample_weight, self.output.dtype)
        grad = self._grad(self.output, self.target)  # a new array: scaling it in place is safe
        grad *= scale
        return grad

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The loss of each sample, shape (n,)."""
        raise NotImplementedError

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The per-sample gradient, unscaled, as a new array."""
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
        d = output - target
        return 0.5 * (d * d).sum(axis=1)

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return output - target


@LOSSES.register("mse")
class MeanSquaredError(Loss):
    """``mean_j (a_j - y_j)^2`` per sample; gradient ``2 (a - y) / k``."""

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        d = output - target
        return np.einsum("ij,ij->i", d, d) / output.shape[1]

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return (output - target) * (2.0 / output.shape[1])


class ClassificationLoss(Loss):
    """A loss whose outputs are class scores: it turns them into probabilities
    and labels and counts correct predictions. Subclasses say how."""

    is_classifier = True

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """Class probabilities from the logits ``z`` (what this loss takes)."""
        raise NotImplementedError

    def labels(self, z: np.ndarray) -> np.ndarray:
        """Integer labels from the logits ``z``."""
        raise NotImplementedError

    def count_correct(self, z: np.ndarray, y: np.ndarray) -> int:
        """Correct predictions among the logits ``z`` for targets ``y`` as
        ``check_targets`` returned them."""
        raise NotImplementedError

    def count_predictions(self, y: np.ndarray) -> int:
        """How many predictions ``count_correct`` judges for targets ``y``."""
        return int(y.shape[0])


@LOSSES.register("binary_cross_entropy")
class BinaryCrossEntropy(ClassificationLoss):
    """Sum over outputs of ``-y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))``,
    from logits ``z``: ``softplus(z) - y z``. Fused gradient ``sigmoid(z) - y``.

    Targets are 0/1 (or probabilities) with one column per sigmoid output unit.
    """

    fused_activation = "sigmoid"

    def check_targets(self, y: Any, n_samples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        """0/1 (or probability) rows, one column per sigmoid unit."""
        return target_rows(numeric_targets(y, n_samples, name), n_outputs, dtype, name, type(self).__name__)

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """``p = sigmoid(z)``, one per unit; for a single unit the two columns ``[1 - p, p]``."""
        p = F.sigmoid(z)
        return np.hstack([1.0 - p, p]) if p.shape[1] == 1 else p

    def labels(self, z: np.ndarray) -> np.ndarray:
        """One unit: class 1 where ``p > 0.5`` (shape (n,)); several units (multi-label):
        ``p >= 0.5`` for each (shape (n, k))."""
        p = F.sigmoid(z)
        if p.shape[1] == 1:
            return (p[:, 0] > 0.5).astype(np.intp)
        return (p >= 0.5).astype(np.intp)

    def count_correct(self, z: np.ndarray, y: np.ndarray) -> int:
        """Every unit is a yes/no prediction: ``z > 0`` (``p > 0.5``) against ``y >= 0.5``."""
        return int(np.count_nonzero((z > 0.0) == (y >= 0.5)))

    def count_predictions(self, y: np.ndarray) -> int:
        return int(y.size)

    def per_sample(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.sum(F.softplus(output) - target * output, axis=1)

    def _grad(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        grad = F.sigmoid(output)
        grad -= target
        return grad


@LOSSES.register("cross_entropy")
class CrossEntropy(ClassificationLoss):
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

    def __init__(self, reduction: str = "mean", targets: str = "index") -> None:
        super().__init__(reduction)
        self.targets = check_choice("targets", targets, ("index", "onehot"))

    def check_targets(self, y: Any, n_samples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> np.ndarray:
        """Class indices of shape (n,) (``targets="index"``) or one-hot rows (n, k) in [0, 1]."""
        y = numeric_targets(y, n_samples, name)
        if self.targets == "index":
            hint = " For one-hot rows use CrossEntropy(targets='onehot')." if y.ndim != 1 else ""
            return class_indices(y, n_outputs, name, hint)
        return target_rows(y, n_outputs, dtype, name, type(self).__name__)

    def check_output(self, activation: Any, n_outputs: int) -> None:
        super().check_output(activation, n_outputs)
        if n_outputs < 2:
            raise ValueError(
                "CrossEntropy needs at least 2 output units. For two classes use 2 softmax units, "
                "or 1 sigmoid unit with loss='binary_cross_entropy'."
            )

    def probabilities(self, z: np.ndarray) -> np.ndarray:
        """Softmax rows, shape (n, k)."""
        return F.softmax(z)

    def labels(self, z: np.ndarray) -> np.ndarray:
        """The most probable class (softmax keeps the order of the logits), shape (n,)."""
        return np.argmax(z, axis=1)

    def count_correct(self, z: np.ndarray, y: np.ndarray) -> int:
        labels = y if y.ndim == 1 else np.argmax(y, axis=1)
        return int(np.count_nonzero(np.argmax(z, axis=1) == labels))

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
        grad = self.probs.copy()  # softmax(z), kept by per_sample; the cache stays as it was
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
