"""``NeuralNetRegressor``: single- and multi-output regression on the mean squared error."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score

from .. import losses as L
from ._base import BaseNeuralNet


class NeuralNetRegressor(RegressorMixin, BaseNeuralNet):
    """A feed-forward neural network regressor (single- or multi-output), trained
    on the mean squared error. Parameters as in ``NeuralNetClassifier``, less
    ``class_weight``; ``loss`` may be ``"mse"`` (default) or ``"quadratic"``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-2, 2, 200).reshape(-1, 1)
    >>> reg = NeuralNetRegressor((32,), activation="tanh", learning_rate_init=0.01, max_iter=500,
    ...                          n_iter_no_change=50, random_state=0).fit(X, np.sin(X).ravel())
    >>> reg.score(X, np.sin(X).ravel()) > 0.95
    True
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _prepare_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if first:
            self._single_output = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        width = 1 if y.ndim == 1 else y.shape[1]
        if width != self.n_outputs_:
            raise ValueError(f"y has {width} outputs but the model was fitted with {self.n_outputs_}.")
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _output(self) -> tuple[int, str, L.Loss]:
        loss = L.get_loss(self.loss or "mse")
        if loss.is_classifier:
            raise ValueError(f"loss must be a regression loss ('mse' or 'quadratic'). Received loss={self.loss!r}.")
        return self.n_outputs_, "identity", loss

    def _validation_score(self, X: Any, y: np.ndarray) -> float:
        return float(r2_score(y, self.network_.predict(X)))

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetRegressor:
        """One epoch over ``X, y``."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: Any) -> np.ndarray:
        out = self._predict_raw(X).astype(np.float64)
        return out[:, 0] if self._single_output else out
