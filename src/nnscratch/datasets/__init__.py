"""Datasets: MNIST (found locally or downloaded), the bundled small ones, CSV files.

``load(name)`` resolves the names the command line accepts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bundled import CSVError, classic_table, load_circles, load_csv, load_digits, load_moons, load_xor
from .mnist import MNIST, DataFileError, DataNotFoundError, cache_dir, load_mnist

__all__ = [
    "MNIST", "DataFileError", "DataNotFoundError", "CSVError", "cache_dir",
    "load_mnist", "load_digits", "load_moons", "load_circles", "load_xor", "classic_table", "load_csv",
    "NAMES", "load",
]  # fmt: skip

NAMES = ("digits", "mnist", "moons", "circles", "xor")


def load(name: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` for a named dataset; for MNIST, train and validation together
    (60,000 images) so callers split as they like (the test set is separate:
    ``load_mnist().test``)."""
    if name == "mnist":
        data = load_mnist(**kwargs)
        return np.concatenate([data.train[0], data.validation[0]]), np.concatenate([data.train[1], data.validation[1]])
    loaders = {"digits": load_digits, "moons": load_moons, "circles": load_circles, "xor": load_xor}
    if name not in loaders:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(NAMES)}, or a path to a CSV file.")
    return loaders[name](**kwargs)
