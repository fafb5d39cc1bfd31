"""The training code both estimators share: parameters, validation, building
the network, fitting (incremental or not, with early stopping)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, validate_data

from .. import losses as L
from .._validation import check_number, check_positive_int
from ..network import Network
from ..optimizers import get_optimizer


class BaseNeuralNet(BaseEstimator):
    """Shared training loop; subclasses define the output layer and the targets."""

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        *,
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        random_state: int | None = None,
        verbose: bool = False,
        warm_start: bool = False,
        optimizer: str = "adam",
        dropout: float = 0.0,
        dtype: str | None = None,
        loss: str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.optimizer = optimizer
        self.dropout = dropout
        self.dtype = dtype
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # --- subclass hooks ------------------------------------------------------
    def _prepare_targets(self, y: np.ndarray, first: bool, classes: Any = None) -> np.ndarray:
        raise NotImplementedError

    def _output(self) -> tuple[int, str, L.Loss]:
        raise NotImplementedError

    def _validation_score(self, X: Any, y: np.ndarray) -> float:
        raise NotImplementedError

    # --- checks ----------------------------------------------------------------
    def _check_params(self, n_samples: int) -> int:
        sizes = self.hidden_layer_sizes
        for size in (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes):
            check_positive_int("hidden_layer_sizes", size)
        check_positive_int("max_iter", self.max_iter)
        check_positive_int("n_iter_no_change", self.n_iter_no_change)
        check_number("alpha", self.alpha, 0.0)
        check_number("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True)
        if self.batch_size == "auto":
            return min(200, n_samples)
        try:
            return min(check_positive_int("batch_size", self.batch_size), n_samples)
        except ValueError:
            received = f"Received batch_size={self.batch_size!r}."
            raise ValueError(f"batch_size must be 'auto' or a positive integer. {received}") from None

    def _build(self, n_features: int, batch: int, x_dtype: np.dtype) -> Network:
        from ..layers import Dense, Dropout

        n_out, out_activation, loss = self._output()
        sizes = self.hidden_layer_sizes
        widths = [n_features, *([sizes] if isinstance(sizes, (int, np.integer)) else list(sizes)), n_out]
        seed = (int(self.random_state) if isinstance(self.random_state, (int, np.integer))
                else np.random.RandomState(self.random_state).randint(2**31))  # fmt: skip
        layers: list[Any] = []
        for i, (n_in, width) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            last = i == len(widths) - 2
            # scikit-learn's MLP initialisation, so equal settings give comparable results.
            init = _UniformInit(np.sqrt((2.0 if self.activation == "sigmoid" else 6.0) / (n_in + width)))
            layers.append(Dense(n_in, width, out_activation if last else self.activation,
                                initializer=init, bias_initializer=init, l2=float(self.alpha) / batch))  # fmt: skip
            if self.dropout and not last:
                layers.append(Dropout(self.dropout))
        return Network(
            layers,
            loss=loss,
            optimizer=get_optimizer(self.optimizer, learning_rate=float(self.learning_rate_init)),
            dtype=self.dtype or ("float32" if x_dtype == np.float32 else "float64"),
            seed=seed,
        )

    # --- training ------------------------------------------------------------
    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any = None) -> Any:
        fitted = hasattr(self, "network_")
        first = not fitted or not (self.warm_start or incremental)
        numeric_y = not isinstance(self, ClassifierMixin)
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
                             multi_output=True, reset=first, y_numeric=numeric_y)  # fmt: skip
        if sample_weight is not None:
            sample_weight = check_array(sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight")
            if sample_weight.ndim != 1:
                raise ValueError(f"sample_weight must be 1-D. Received shape {sample_weight.shape}.")
            check_consistent_length(X, sample_weight)
        targets = self._prepare_targets(y, first, classes)
        weights = self._sample_weights(targets, sample_weight)
        batch = self._check_params(X.shape[0])
        if first:
            self.network_ = self._build(X.shape[1], batch, X.dtype)
            self.loss_curve_, self.validation_scores_ = [], [] if self.early_stopping else None
            self.best_loss_, self.best_validation_score_ = np.inf, None if not self.early_stopping else -np.inf
            self.n_iter_, self.t_, self._no_improvement = 0, 0, 0
        net = self.network_
        Xv = yv = None
        if self.early_stopping and not incremental:
            stratify = targets if isinstance(self, ClassifierMixin) and targets.ndim == 1 else None
            split = train_test_split(X, targets, *([weights] if weights is not None else []),
                                     test_size=self.validation_fraction, random_state=self.random_state,
                                     stratify=stratify)  # fmt: skip
            X, Xv, targets, yv = split[:4]
            weights = split[4] if weights is not None else None
        best_weights = None
        for _ in range(1 if incremental else self.max_iter):
            history = net.fit(X, targets, epochs=1, batch_size=batch, sample_weight=weights, verbose=0)
            if history.stop_reason == "interrupted":
                break
            loss = history.history["loss"][-1]
            self.loss_curve_.append(loss)
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if incremental:
                break
            if Xv is not None:
                score = self._validation_score(Xv, yv)
                self.validation_scores_.append(score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_, best_weights = score, net.parameters.snapshot()
            else:
                improved = loss < self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement = 0 if improved else self._no_improvement + 1
            if self._no_improvement > self.n_iter_no_change:
                break
        else:
            if not incremental:
                watched = "validation score" if Xv is not None else "training loss"
                warnings.warn(
                    f"{type(self).__name__}: max_iter={self.max_iter} reached before the {watched} stopped "
                    f"improving (by tol={self.tol:g} for n_iter_no_change={self.n_iter_no_change} epochs). "
                    "Increase max_iter, raise learning_rate_init, or scale the inputs.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if best_weights is not None:
            net.parameters.restore(best_weights)
        return self

    def _sample_weights(self, targets: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray | None:
        if sample_weight is not None and np.all(sample_weight == sample_weight[0]) and sample_weight[0] > 0:
            return None  # equal weights change nothing under a mean loss: skip the extra arithmetic
        return sample_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Train on ``X`` (dense or scipy.sparse) and ``y``; returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _predict_raw(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=False)
        return self.network_.predict(X)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices, one per layer, shape (n_in, n_out) as in scikit-learn."""
        check_is_fitted(self, "network_")
        return [layer.params["W"] for layer in self.network_.layers if "W" in layer.params]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        check_is_fitted(self, "network_")
        return [layer.params["b"] for layer in self.network_.layers if "b" in layer.params]


class _UniformInit:
    """U[-bound, bound), as a picklable initializer (scikit-learn's MLP scheme)."""

    def __init__(self, bound: float) -> None:
        self.bound = float(bound)

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return rng.uniform(-self.bound, self.bound, shape).astype(dtype)
