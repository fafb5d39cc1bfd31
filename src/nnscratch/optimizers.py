"""Gradient-descent optimizers, from plain SGD up to Adam.

An optimizer owns its state (velocities, moment estimates), keyed by the names
of the parameters it is given, and updates those parameters **in place**:

    optimizer.step(params, grads)   # two dicts with the same keys

The network hands it one flat buffer holding every parameter (key
``"params"``), so an update is a handful of NumPy calls however many layers
there are; an optimizer that treats biases differently (``AdamW``) sets
``separate_biases`` and gets weights (``"W"``) and biases (``"b"``) apart.
Every update below is written with ``out=`` to avoid temporaries; the comment
on each line gives the maths.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._registry import Registry
from .schedules import SCHEDULES, Schedule, get_schedule

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS"]

OPTIMIZERS = Registry("optimizer")


def _in_range(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value < high):
        raise ValueError(f"{name} must lie in [{low}, {high}). Received {name}={value!r}.")
    return float(value)


class Optimizer:
    """Base class. ``learning_rate`` is a positive number or a ``Schedule``."""

    registry_name = "optimizer"
    _state_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float | Schedule = 0.01) -> None:
        self.schedule = get_schedule(learning_rate)
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    @property
    def learning_rate(self) -> float:
        """The rate the next step will use."""
        return self.schedule(self.iterations + 1)

    separate_biases = False  # True: the network passes weights "W" and biases "b" apart

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in ``params`` in place from ``grads`` (same keys)."""
        self.iterations += 1
        lr = self.schedule(self.iterations)
        for key, p in params.items():
            if key not in self.state:
                self.state[key] = {n: np.zeros_like(p) for n in self._state_names}
            self._update(key, p, grads[key], self.state[key], lr)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state, as if freshly constructed."""
        self.iterations = 0
        self.state = {}

    def _hyper(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, "learning_rate": self.schedule.get_config(), **self._hyper()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        config.pop("name", None)
        config["learning_rate"] = SCHEDULES.from_config(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        lr = self.schedule.initial if type(self.schedule).__name__ == "Constant" else self.schedule
        args = ", ".join([f"learning_rate={lr!r}"] + [f"{k}={v!r}" for k, v in self._hyper().items()])
        return f"{type(self).__name__}({args})"


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Plain: ``p -= lr * g``. Momentum ``mu``: ``v = mu v - lr g; p += v``.
    Nesterov: ``v = mu v - lr g; p += mu v - lr g`` (the look-ahead form).
    """

    def __init__(self, learning_rate: float | Schedule = 0.01, momentum: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = _in_range("momentum", momentum, 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0.")
        self.nesterov = bool(nesterov)
        self._state_names = ("velocity",) if self.momentum else ("_tmp",)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        if not self.momentum:
            np.multiply(g, lr, out=s["_tmp"])
            p -= s["_tmp"]  # p = p - lr g
            return
        v = s["velocity"]
        v *= self.momentum  # v = mu v
        v -= lr * g  # v = mu v - lr g
        if self.nesterov:
            p += self.momentum * v - lr * g
        else:
            p += v

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("adagrad")
class AdaGrad(Optimizer):
    """``G += g^2; p -= lr g / (sqrt(G) + eps)`` (Duchi et al., 2011)."""

    _state_names = ("sum_sq", "_tmp")

    def __init__(self, learning_rate: float | Schedule = 0.01, eps: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.eps = _in_range("eps", eps, 0.0, 1.0)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        G, tmp = s["sum_sq"], s["_tmp"]
        np.multiply(g, g, out=tmp)
        G += tmp  # G = G + g^2
        np.sqrt(G, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp  # p = p - lr g / (sqrt(G) + eps)

    def _hyper(self) -> dict[str, Any]:
        return {"eps": self.eps}


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """``E = rho E + (1 - rho) g^2; p -= lr g / (sqrt(E) + eps)`` (Hinton, 2012)."""

    _state_names = ("mean_sq", "_tmp")

    def __init__(self, learning_rate: float | Schedule = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.rho = _in_range("rho", rho, 0.0, 1.0)
        self.eps = _in_range("eps", eps, 0.0, 1.0)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        E, tmp = s["mean_sq"], s["_tmp"]
        E *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        E += tmp  # E = rho E + (1 - rho) g^2
        np.sqrt(E, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp  # p = p - lr g / (sqrt(E) + eps)

    def _hyper(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.eps}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015)::

        m = b1 m + (1 - b1) g            # first-moment estimate
        v = b2 v + (1 - b2) g^2          # second-moment estimate
        p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)

    The state is kept rescaled, ``m' = m / (1 - b1)`` and ``v' = v / (1 - b2)``,
    which turns both moment updates into ``m' = b1 m' + g`` and
    ``v' = b2 v' + g^2`` and lets every constant fold into two scalars. That is
    10 passes over the parameters per step instead of 13; the arithmetic is the
    same update. ``moments()`` returns the textbook ``m`` and ``v``.
    """

    _state_names = ("m", "v", "_tmp")

    def __init__(
        self, learning_rate: float | Schedule = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__(learning_rate)
        self.beta1 = _in_range("beta1", beta1, 0.0, 1.0)
        self.beta2 = _in_range("beta2", beta2, 0.0, 1.0)
        self.eps = _in_range("eps", eps, 0.0, 1.0)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        m, v, tmp = s["m"], s["v"], s["_tmp"]
        b1, b2, t = self.beta1, self.beta2, self.iterations
        m *= b1
        m += g  # m' = b1 m' + g
        v *= b2
        np.multiply(g, g, out=tmp)
        v += tmp  # v' = b2 v' + g^2
        # With m = (1 - b1) m', sqrt(v) = sqrt(1 - b2) sqrt(v'), c1 = 1 - b1^t, c2 = sqrt(1 - b2^t):
        #   lr * (m / c1) / (sqrt(v) / c2 + eps) = step * m' / (sqrt(v') + eps')
        # with step = lr (1 - b1) c2 / (c1 sqrt(1 - b2)) and eps' = eps c2 / sqrt(1 - b2).
        c1, c2, root = 1.0 - b1**t, math.sqrt(1.0 - b2**t), math.sqrt(1.0 - b2)
        np.sqrt(v, out=tmp)
        tmp += self.eps * c2 / root
        np.divide(m, tmp, out=tmp)
        tmp *= lr * (1.0 - b1) * c2 / (c1 * root)
        p -= tmp

    def moments(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The textbook first and second moment estimates ``(m, v)`` for ``key``."""
        s = self.state[key]
        return (1.0 - self.beta1) * s["m"], (1.0 - self.beta2) * s["v"]

    def _hyper(self) -> dict[str, Any]:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    ``p -= lr * weight_decay * p`` before the Adam step. Biases (key ``"b"``)
    are not decayed."""

    separate_biases = True

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(learning_rate, beta1, beta2, eps)
        self.weight_decay = _in_range("weight_decay", weight_decay, 0.0, 1.0)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], lr: float) -> None:
        if key != "b" and self.weight_decay:
            p *= 1.0 - lr * self.weight_decay
        super()._update(key, p, g, s, lr)

    def _hyper(self) -> dict[str, Any]:
        return {**super()._hyper(), "weight_decay": self.weight_decay}


def get_optimizer(spec: str | Optimizer, **kwargs: Any) -> Optimizer:
    """Resolve an optimizer name (``"sgd"``, ``"adam"``, ...) or instance."""
    return OPTIMIZERS.resolve(spec, Optimizer, **kwargs)
