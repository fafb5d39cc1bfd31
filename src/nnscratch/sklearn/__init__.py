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

The shared training code is in ``_base``; one module per estimator.
"""

from ..extras import require

require("sklearn", "sklearn")  # before the modules below import it: one clear line if it is missing

from .classifier import NeuralNetClassifier  # noqa: E402
from .regressor import NeuralNetRegressor  # noqa: E402

__all__ = ["NeuralNetClassifier", "NeuralNetRegressor"]
