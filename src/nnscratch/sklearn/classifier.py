"""``NeuralNetClassifier``: binary, multiclass and multilabel classification."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import type_of_target

from .. import losses as L
from ._base import BaseNeuralNet

# The target kinds scikit-learn's check_classification_targets accepts.
CLASSIFICATION_TARGETS = ("binary", "multiclass", "multiclass-multioutput", "multilabel-indicator",
                          "multilabel-sequences")  # fmt: skip


class NeuralNetClassifier(ClassifierMixin, BaseNeuralNet):
    """A feed-forward neural network classifier (binary, multiclass or multilabel).

    Any labels (strings, non-contiguous integers) are mapped through
    ``classes_``. Multiclass uses a softmax output with cross-entropy; binary
    one sigmoid unit with binary cross-entropy; multilabel (a 0/1 indicator
    matrix ``y``) one sigmoid unit per label.

    Parameters
    ----------
    hidden_layer_sizes, activation, alpha, batch_size, learning_rate_init,
    max_iter, early_stopping, validation_fraction, n_iter_no_change, tol,
    random_state, verbose, warm_start
        As in ``sklearn.neural_network.MLPClassifier``.
    class_weight : dict, "balanced" or None
        Per-class weights multiplied into ``sample_weight``.
    optimizer : str, default "adam"
        Any nnscratch optimizer name (``"sgd"``, ``"rmsprop"``, ``"adamw"``, ...).
    dropout : float, default 0
        Dropout rate after each hidden layer.
    dtype : {"float32", "float64"} or None, default None
        Precision of the network. None follows ``X`` as scikit-learn does:
        float32 input trains in float32 (fast), anything else in float64.
    loss : None
        Chosen from the targets: cross-entropy over a softmax, or binary
        cross-entropy for two classes or multi-label targets. Any other value is
        an error (it used to be accepted and ignored).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = NeuralNetClassifier((16,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    """

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu", *,
                 alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate_init: float = 0.001,
                 max_iter: int = 200, early_stopping: bool = False, validation_fraction: float = 0.1,
                 n_iter_no_change: int = 10, tol: float = 1e-4, random_state: int | None = None,
                 verbose: bool = False, warm_start: bool = False, class_weight: Any = None,
                 optimizer: str = "adam", dropout: float = 0.0, dtype: str | None = None,
                 loss: str | None = None) -> None:  # fmt: skip
        super().__init__(hidden_layer_sizes, activation, alpha=alpha, batch_size=batch_size,
                         learning_rate_init=learning_rate_init, max_iter=max_iter, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change, tol=tol,
                         random_state=random_state, verbose=verbose, warm_start=warm_start, optimizer=optimizer,
                         dropout=dropout, dtype=dtype, loss=loss)  # fmt: skip
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _prepare_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; it was raveled.",
                          DataConversionWarning, stacklevel=4)  # fmt: skip
            y = y.ravel()
        kind = type_of_target(y, input_name="y")  # once: it scans y, and partial_fit runs per batch
        if kind not in CLASSIFICATION_TARGETS:  # as check_classification_targets, without a second scan
            raise ValueError(f"Unknown label type: {kind!r}. A classifier needs discrete classes; for a "
                             "continuous target use NeuralNetRegressor.")  # fmt: skip
        if first:
            self._multilabel = kind == "multilabel-indicator"
            if self._multilabel:
                self.classes_ = np.arange(y.shape[1])
            else:
                self.classes_ = np.unique(y) if classes is None else np.asarray(classes)
                if len(self.classes_) < 2:
                    raise ValueError(
                        f"{type(self).__name__} needs at least 2 classes in y; it holds only one class: "
                        f"{self.classes_.tolist()}."
                    )
        if self._multilabel:
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y must be a {len(self.classes_)}-column label indicator matrix, as in the first fit."
                )
            return y.astype(np.float64)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in the first fit: {unknown[:5].tolist()}.")
        index = np.searchsorted(self.classes_, y)
        return index if len(self.classes_) > 2 else index.astype(np.float64)

    def _sample_weights(self, targets: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray | None:
        if self.class_weight is not None and not self._multilabel:
            if isinstance(self.class_weight, dict):
                unknown = set(self.class_weight) - set(self.classes_.tolist())
                if unknown:
                    raise ValueError(f"class_weight names classes not in y: {sorted(map(str, unknown))}.")
                per_class = np.array([self.class_weight.get(c, 1.0) for c in self.classes_.tolist()])
                extra = per_class[targets.astype(int)]
            else:
                extra = compute_sample_weight(self.class_weight, targets)
            sample_weight = extra if sample_weight is None else sample_weight * extra
        return super()._sample_weights(targets, sample_weight)

    def _output(self) -> tuple[int, str, L.Loss]:
        expected = "binary_cross_entropy" if self._multilabel or len(self.classes_) == 2 else "cross_entropy"
        if self.loss not in (None, expected):
            raise ValueError(f"NeuralNetClassifier takes its loss from the targets ({expected} here); leave loss "
                             f"as None. Received loss={self.loss!r}.")  # fmt: skip
        if self._multilabel:
            return len(self.classes_), "sigmoid", L.BinaryCrossEntropy()
        if len(self.classes_) == 2:
            return 1, "sigmoid", L.BinaryCrossEntropy()
        return len(self.classes_), "softmax", L.CrossEntropy()

    def _validation_score(self, X: Any, y: np.ndarray) -> float:
        predicted = self._labels_from(self.network_.predict(X))
        truth = y if self._multilabel else y.astype(int)
        return float(accuracy_score(truth, predicted))

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> NeuralNetClassifier:
        """One epoch over ``X, y``; ``classes`` (all labels) is required on the first call."""
        if not hasattr(self, "network_"):
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit.")
            classes = None if classes is None else np.unique(classes)
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _labels_from(self, out: np.ndarray) -> np.ndarray:
        if self._multilabel:
            return (out >= 0.5).astype(int)
        if out.shape[1] == 1:
            return (out[:, 0] >= 0.5).astype(int)
        return out.argmax(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, rows summing to 1 ((n, n_labels) for multilabel)."""
        out = self._predict_raw(X).astype(np.float64)
        if self._multilabel:
            return out
        if out.shape[1] == 1:
            return np.hstack([1.0 - out, out])
        return out / out.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for an impossible class
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (from ``classes_``), or the indicator matrix for multilabel."""
        labels = self._labels_from(self._predict_raw(X))
        return labels if self._multilabel else self.classes_[labels]
