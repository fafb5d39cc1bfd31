"""Optional parts and the extras that install them.

``pip install .`` (from a checkout) installs the engine: NumPy, safetensors (the model
files), tqdm (the progress bar of ``fit``) and threadpoolctl (the BLAS thread
policy, ``nnscratch.threads``). Everything else is an extra,
imported only by the feature that needs it; without it, that feature fails
with ``MissingExtraError`` naming the extra to install, never an ImportError
from deep inside:

============  ==========================================  =================================
extra         installs                                    for
============  ==========================================  =================================
datasets      scikit-learn                                digits, moons, circles; CSV files
plots         matplotlib                                  ``nnscratch.plots`` and CLI plots
sklearn       scikit-learn                                ``nnscratch.sklearn``, ``to_sklearn``
weblogs       scipy, scikit-learn                         ``nnscratch logs`` / ``weblogs``
parallel      joblib                                      restarts and search in parallel
dask          joblib, dask[distributed]                   the same on a Dask cluster
onnx          onnx                                        ``export_onnx``, ``nnscratch export``
playground    starlette, uvicorn, websockets              ``nnscratch playground``
fast          numba                                       fused passes (``nnscratch.kernels``)
fleet         psycopg                                     ``logs watch --state postgresql://...``
metrics       prometheus-client                           ``logs watch --metrics``
all           every extra above
============  ==========================================  =================================
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["MissingExtraError", "require", "require_installed", "EXTRAS"]

EXTRAS = {
    "datasets": "scikit-learn", "plots": "matplotlib", "sklearn": "scikit-learn", "weblogs": "scipy, scikit-learn",
    "parallel": "joblib", "dask": "joblib, dask[distributed]", "onnx": "onnx",
    "playground": "starlette, uvicorn, websockets", "fast": "numba", "fleet": "psycopg",
    "metrics": "prometheus-client",
}  # fmt: skip


class MissingExtraError(ImportError):
    """A feature needs an optional package that is not installed; says which extra installs it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming the extra that installs it.

    >>> require("numpy", "core").__name__
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(module, extra) from None


def require_installed(module: str, extra: str) -> None:
    """Raise ``MissingExtraError`` (as ``require``) unless ``module`` is installed, without
    importing it: a command checks what a later step needs, and a long-running one does not
    keep a package in memory that it never uses.

    >>> require_installed("numpy", "core")
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        raise _missing(module, extra)


def _missing(module: str, extra: str) -> MissingExtraError:
    top = module.split(".")[0]
    return MissingExtraError(f"this needs {top}, which is not installed: pip install \"nnscratch[{extra}]\" "
                             f"(or \"nnscratch[all]\")")  # fmt: skip
