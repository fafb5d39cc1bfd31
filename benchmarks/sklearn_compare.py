"""NeuralNetClassifier against scikit-learn's MLPClassifier with equal settings.

``python -m benchmarks.sklearn_compare`` trains both on digits (3 seeds) and
on MNIST (when ``NNSCRATCH_DATA`` has it), with the same hidden layers, Adam
settings, batch size, L2 (``alpha``) and number of epochs, and prints test
accuracy, fit time and the time ratio (nnscratch / scikit-learn). Both fit
the same float32 arrays.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from nnscratch.sklearn import NeuralNetClassifier


def compare(name: str, X_train, y_train, X_test, y_test, settings: dict, seeds: list[int]) -> dict:
    rows = []
    for seed in seeds:
        row = {}
        for who, cls in (("nnscratch", NeuralNetClassifier), ("sklearn", MLPClassifier)):
            model = cls(**settings, random_state=seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_train, y_train)
            row[f"{who}_s"] = time.perf_counter() - start
            row[f"{who}_acc"] = model.score(X_test, y_test)
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    mean["ratio"] = mean["nnscratch_s"] / mean["sklearn_s"]
    print(
        f"{name}: accuracy nnscratch {mean['nnscratch_acc']:.4f} vs scikit-learn {mean['sklearn_acc']:.4f} "
        f"(difference {100 * (mean['nnscratch_acc'] - mean['sklearn_acc']):+.2f} points); fit time "
        f"{mean['nnscratch_s']:.2f} s vs {mean['sklearn_s']:.2f} s, ratio {mean['ratio']:.2f} "
        f"(mean of {len(seeds)} seeds)"
    )
    return mean


def main() -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    settings = {"hidden_layer_sizes": (64,), "max_iter": 100, "batch_size": 32, "learning_rate_init": 1e-3}
    compare("digits", Xa, ya, Xb, yb, settings, seeds=[0, 1, 2])
    root = os.environ.get("NNSCRATCH_DATA")
    if root and (Path(root) / "mnist.pkl.gz").is_file():
        from nnscratch.datasets import load_mnist

        data = load_mnist(root)
        X_train = np.concatenate([data.train[0], data.validation[0]])
        y_train = np.concatenate([data.train[1], data.validation[1]])
        settings = {"hidden_layer_sizes": (128,), "max_iter": 10, "batch_size": 128, "learning_rate_init": 1e-3,
                    "n_iter_no_change": 100}  # fmt: skip
        compare("MNIST", X_train, y_train, *data.test, settings, seeds=[0])


if __name__ == "__main__":
    main()
