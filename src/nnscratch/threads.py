"""How many BLAS threads a matrix product gets: one for small products, all for large.

A BLAS library splits every product across its threads, and its threads wait
for one another by spinning. In a training loop that spinning between products
slows the rest of the step more than a second thread speeds up a small product
(an MNIST epoch, 784-128-10 at batch 128, measured 0.39 s on one thread and
0.64 s on two on a quiet 2-core machine; the other measurements, quiet and
beside a busy process, are in ``benchmarks/README.md``). So by default
(``"auto"``) ``fit`` and ``predict`` limit BLAS to one thread whenever the
largest product of a step has fewer than ``THRESHOLD`` multiply-adds. For
larger products neither choice is right everywhere (two threads win on a quiet
machine, one wins beside a busy process), so ``fit`` measures: at the start of
every epoch it times a few steps on all threads and a few on one, and keeps the
faster for the rest of the epoch (``Tuner``).

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

__all__ = ["THRESHOLD", "ENV_VARS", "set_blas_threads", "blas_threads", "limited", "largest_product", "Tuner"]

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


def _policy() -> str | int:
    """``"off"``, a number, or ``"auto"``; "off" as well when the user set the BLAS threads."""
    choice = _choice if _choice is not None else _parse(os.environ.get("NNSCRATCH_BLAS_THREADS", "auto"))
    if choice == "auto" and any(os.environ.get(name) for name in ENV_VARS):
        return "off"  # the user chose the threads: respect that
    return choice


def blas_threads(multiply_adds: int) -> int | None:
    """The thread limit for a step whose largest product has ``multiply_adds``
    multiply-adds, or None to leave the BLAS library as it is."""
    choice = _policy()
    if choice == "off":
        return None
    if isinstance(choice, int):
        return choice
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


class Tuner:
    """Per-epoch choice between all BLAS threads and one, for large products under
    ``"auto"``: the first ``probe`` steps of an epoch run on all threads, the next
    ``probe`` on one, and the rest on whichever had the lower median step time.
    Inactive (every method a no-op) in any other case.

    The training loop calls ``before_step(i)`` and ``after_step(i, seconds)`` with
    the step's index within the epoch, and ``close()`` at the end.
    """

    def __init__(self, multiply_adds: int, probe: int = 6) -> None:
        self.probe = probe
        self.active = _policy() == "auto" and multiply_adds >= THRESHOLD and _controller() is not None
        self._limiter: Any = None
        self._times: dict[str, list[float]] = {"all": [], "one": []}
        self.chosen: list[str] = []  # per epoch, what was kept (for the curious and the tests)

    def _set(self, one: bool) -> None:
        if one and self._limiter is None:
            self._limiter = _controller().limit(limits=1, user_api="blas")
        elif not one and self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None

    def before_step(self, i: int) -> None:
        if not self.active:
            return
        if i == 0:
            self._times = {"all": [], "one": []}
            self._set(one=False)
        elif i == self.probe:
            self._set(one=True)
        elif i == 2 * self.probe:
            one = _median(self._times["one"]) < _median(self._times["all"])
            self.chosen.append("one" if one else "all")
            self._set(one=one)

    def after_step(self, i: int, seconds: float) -> None:
        if self.active and i < 2 * self.probe and i % self.probe:  # the first step of each probe warms up
            self._times["all" if i < self.probe else "one"].append(seconds)

    def close(self) -> None:
        self._set(one=False)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("inf")
