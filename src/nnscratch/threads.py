"""How many BLAS threads a matrix product gets: one for small products, all for large.

A BLAS library splits every product across its threads, and its threads wait
for one another by spinning. On a quiet machine a second thread helps only
large products (784-1024-1024 at batch 256: 1.5x); for MNIST-sized ones
(batch 128 x 784 x 128) one thread is as fast as two. On a machine where
anything else runs (a notebook, a build, a second training) a waiting thread
loses its core and the product waits for it: an epoch measured 0.5 s on one
thread and 2-4.5 s on two with one busy process beside it. So by default
(``"auto"``) ``fit`` and ``predict`` limit BLAS to one thread whenever the
largest product of a step has fewer than ``THRESHOLD`` multiply-adds, and leave
it alone otherwise.

The policy steps aside when you chose yourself: it does nothing when any of
the usual thread variables (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS``, ...) is set. ``NNSCRATCH_BLAS_THREADS`` (``auto``, ``off``
or a number) or ``set_blas_threads`` choose otherwise. threadpoolctl does the
limiting (a core dependency); without it, nothing is limited.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["THRESHOLD", "ENV_VARS", "set_blas_threads", "blas_threads", "limited", "largest_product"]

THRESHOLD = 64_000_000  # multiply-adds: batch 128 x 784 x 128 is 12.8 M, 256 x 1024 x 1024 is 268 M
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # fmt: skip
_choice: str | int | None = None  # set_blas_threads; None: NNSCRATCH_BLAS_THREADS or "auto"


def _parse(value: Any) -> str | int:
    if value in ("auto", "off"):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"BLAS threads must be 'auto', 'off' or a positive integer. Received {value!r}.")


def set_blas_threads(value: str | int | None) -> None:
    """``"auto"`` (one thread for small products), ``"off"`` (never limit), a number
    (always that many), or None (back to ``NNSCRATCH_BLAS_THREADS``, else auto)."""
    global _choice
    _choice = None if value is None else _parse(value)


def blas_threads(multiply_adds: int) -> int | None:
    """The thread limit for a step whose largest product has ``multiply_adds``
    multiply-adds, or None to leave the BLAS library as it is."""
    choice = _choice if _choice is not None else _parse(os.environ.get("NNSCRATCH_BLAS_THREADS", "auto"))
    if choice == "off":
        return None
    if isinstance(choice, int):
        return choice
    if any(os.environ.get(name) for name in ENV_VARS):
        return None  # the user chose the threads: respect that
    return 1 if multiply_adds < THRESHOLD else None


@lru_cache(maxsize=1)
def _controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()  # inspects the loaded libraries once; reused for every limit


@contextmanager
def limited(multiply_adds: int) -> Iterator[int | None]:
    """Run the body under the thread limit ``blas_threads(multiply_adds)``; yields it."""
    threads = blas_threads(multiply_adds)
    controller = _controller() if threads is not None else None
    if controller is None:
        yield None
        return
    with controller.limit(limits=threads, user_api="blas"):
        yield threads


def largest_product(layers: Any, rows: int) -> int:
    """Multiply-adds of the largest ``rows x n_in x n_out`` product among ``layers``."""
    return max((rows * layer.n_in * layer.n_out for layer in layers if layer.params), default=0)
