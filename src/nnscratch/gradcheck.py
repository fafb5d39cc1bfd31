"""Gradient checking: compare backpropagation with central differences.

For every parameter ``p`` (or a random sample of them), the numerical
derivative ``(C(p + eps) - C(p - eps)) / (2 eps)`` should match the gradient
backprop computed, up to ``O(eps^2)`` truncation plus rounding. In float64 with
``eps = 1e-6`` the relative error of a correct implementation is typically
below ``1e-7``; a wrong derivative shows up as errors near 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_sample_weight, check_X
from .layers import Dropout

if TYPE_CHECKING:
    from .network import Network

__all__ = ["gradcheck", "GradCheckResult"]


@dataclass
class GradCheckResult:
    """Outcome of ``gradcheck``: the worst errors over the checked parameters."""

    max_relative_error: float
    max_absolute_error: float
    n_checked: int
    tolerance: float
    n_failed: int

    @property
    def passed(self) -> bool:
        return self.n_failed == 0

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"gradcheck {verdict}: {self.n_checked} parameters, max relative error "
            f"{self.max_relative_error:.3g} (tolerance {self.tolerance:g}), max absolute error "
            f"{self.max_absolute_error:.3g}, {self.n_failed} outside tolerance"
        )


def gradcheck(
    network: Network,
    X: Any,
    y: Any,
    sample_weight: Any = None,
    *,
    eps: float = 1e-6,
    tolerance: float = 1e-6,
    atol: float = 1e-9,
    max_params: int | None = 2000,
    seed: int = 0,
) -> GradCheckResult:
    """Check ``network``'s backpropagated gradients against central differences.

    The check runs on a float64 copy (the network itself is not modified).
    Dropout masks are drawn once and held fixed for every evaluation.

    Parameters
    ----------
    network : Network
    X, y, sample_weight : array-like
        A small batch; the loss includes the regularisation penalty.
    eps : float, default 1e-6
        Finite-difference step.
    tolerance : float, default 1e-6
        Largest relative error ``|a - n| / max(|a| + |n|, 1e-10)`` that passes.
        A parameter whose absolute error is below ``atol`` also passes: near a
        minimum the gradients themselves are tiny and only rounding is left.
    atol : float, default 1e-9
    max_params : int or None, default 2000
        Check a random sample of this many parameters (None: all of them).
    seed : int
        Chooses the sample.

    Returns
    -------
    GradCheckResult
        Truthy when the check passed; ``str()`` gives a one-line report.
    """
    net = network.copy(dtype="float64")
    X = check_X(X, net.n_inputs, net.dtype)
    y = net.loss.check_targets(y, X.shape[0], net.n_outputs, net.dtype)
    w = check_sample_weight(sample_weight, X.shape[0], net.dtype)
    dropouts = [layer for layer in net.layers if isinstance(layer, Dropout)]
    for layer in dropouts:
        layer.hold_mask, layer.mask = True, None

    def cost() -> float:
        return net.loss.forward(net.forward(X, training=True, loss_input=True), y, w) + net.penalty()

    net.forward_backward(X, y, w)
    analytic = net.parameters.grads.copy()
    flat = net.parameters.values
    indices = np.arange(flat.size)
    if max_params is not None and flat.size > max_params:
        indices = np.random.default_rng(seed).choice(flat.size, max_params, replace=False)
    numeric = np.empty(indices.size)
    for j, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = cost()
        flat[i] = original - eps
        minus = cost()
        flat[i] = original
        numeric[j] = (plus - minus) / (2 * eps)
    a = analytic[indices]
    abs_err = np.abs(a - numeric)
    rel_err = abs_err / np.maximum(np.abs(a) + np.abs(numeric), 1e-10)
    failed = int(np.count_nonzero((rel_err > tolerance) & (abs_err > atol)))
    for layer in dropouts:
        layer.hold_mask = False
    return GradCheckResult(
        float(rel_err.max(initial=0.0)), float(abs_err.max(initial=0.0)), int(indices.size), tolerance, failed
    )
