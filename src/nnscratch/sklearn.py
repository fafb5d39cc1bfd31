"""scikit-learn estimators: ``NeuralNetClassifier`` and ``NeuralNetRegressor``.

Thin adapters over the engine that keep scikit-learn's contract: ``__init__``
only stores its arguments, learned attributes end in ``_``, ``fit`` returns
``self``, predicting before fitting raises ``NotFittedError``, and the common
estimator checks pass. Parameters are named as in ``MLPClassifier`` where they
mean the same thing; ``optimizer``, ``dropout``, ``dtype`` and ``loss`` are ours.

Differences from ``MLPClassifier`` worth knowing:

* ``alpha`` is the same L2 strength: scikit-learn adds ``alpha/2 ||W||^2``
  divided by the batch size to the mean loss, so the engine's layers get
  ``l2 = alpha / batch_size``.
* ``loss_curve_`` holds the engine's training loss, which for regression is
  the mean squared error (scikit-learn reports half of it).
* With ``early_stopping=True`` the validation score is accuracy (classifier)
  or R^2 (regressor), as in scikit-learn, and the best weights are restored.

scipy.sparse CSR/CSC inputs are used as they are, never densified.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import losses as L
from .network import Network
from .optimizers import get_optimizer

__all__ = ["NeuralNetClassifier", "NeuralNetRegressor"]


class _BaseNeuralNet(BaseEstimator):
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
        sizes = (sizes,) if isinstance(sizes, (int, np.integer)) else tuple(sizes)
        if not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers. Received {self.hidden_layer_sizes!r}.")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received {name}={value!r}.")
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0. Received alpha={self.alpha!r}.")
        if not (isinstance(self.learning_rate_init, (int, float)) and self.learning_rate_init > 0):
            raise ValueError(
                f"learning_rate_init must be > 0. Received learning_rate_init={self.learning_rate_init!r}."
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie in (0, 1). Received {self.validation_fraction!r}.")
        if self.batch_size == "auto":
            return min(200, n_samples)
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, (int, np.integer))
            or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be 'auto' or a positive integer. Received batch_size={self.batch_size!r}."
            )
        return min(int(self.batch_size), n_samples)

    def _build(self, n_features: int, batch: int, x_dtype: np.dtype) -> Network:
        from .layers import Dense, Dropout

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
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
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
                    self.best_validation_score_, best_weights = score, net.get_flat_weights()
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
            net.set_flat_weights(best_weights)
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


class NeuralNetClassifier(ClassifierMixin, _BaseNeuralNet):
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
        Chosen from the targets (cross-entropy); present for symmetry.

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
        check_classification_targets(y)
        kind = type_of_target(y)
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


class NeuralNetRegressor(RegressorMixin, _BaseNeuralNet):
    """A feed-forward neural network regressor (single- or multi-output), trained
    on the mean squared error. Parameters as in ``NeuralNetClassifier``, less
    ``class_weight``; ``loss`` may be ``"mse"`` (default) or ``"quadratic"``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-2, 2, 200).reshape(-1, 1)
    >>> reg = NeuralNetRegressor((32,), activation="tanh", learning_rate_init=0.01, max_iter=500,
    ...                          random_state=0).fit(X, np.sin(X).ravel())
    >>> reg.score(X, np.sin(X).ravel()) > 0.99
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


class _UniformInit:
    """U[-bound, bound), as a picklable initializer (scikit-learn's MLP scheme)."""

    def __init__(self, bound: float) -> None:
        self.bound = float(bound)

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return rng.uniform(-self.bound, self.bound, shape).astype(dtype)
