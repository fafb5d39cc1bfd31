"""Gradient-descent optimizers, sorted in order of increasing complexity:
SGD (with momentum and Nesterov momentum), AdaGrad, RMSProp, Adam, AdamW.

An optimizer owns its state (velocities, moment estimates), keyed by the names
of the parameter groups it is given, and updates the parameters **in place**:

    optimizer.step(values, grads, decay)   # dicts with the same keys

``decay`` says which groups take weight decay (the network's ``Parameters``
decides: weights yes, biases no); only ``AdamW`` reads it. The network hands
over its whole flat buffer as one group, so an update is a handful of NumPy
calls however many layers there are. Each update is written as in its paper,
one line of maths per comment; ``out=`` and a scratch buffer (``_scratch``,
never saved) avoid temporaries. That NumPy code is the reference. With the
``fast`` extra (numba), ``Optimizer.step`` runs each built-in update as one
compiled loop with the same arithmetic instead: one branch there, and
``nnscratch.kernels`` holds the loops (the tests hold the two paths together).
``state_dict()`` / ``load_state_dict()`` carry the state and the step count,
so training can resume from a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels
from ._registry import Registry
from ._validation import check_number
from .schedules import SCHEDULES, Schedule, get_schedule

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS"]

OPTIMIZERS = Registry("optimizer")


class Optimizer:
    """Base class. ``learning_rate`` is a positive number or a ``Schedule``.

    Attributes
    ----------
    slots : tuple of str
        The per-group state this optimizer keeps (``state[group][slot]``).
    decoupled_weight_decay : bool
        True when the optimizer needs the weights and biases as separate groups.
    """

    registry_name = "optimizer"
    slots: tuple[str, ...] = ()
    decoupled_weight_decay = False

    def __init__(self, learning_rate: float | Schedule = 0.01) -> None:
        self.schedule = get_schedule(learning_rate)
        self.iterations = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[str, np.ndarray] = {}

    @property
    def learning_rate(self) -> float:
        """The rate the next step will use."""
        return self.schedule(self.iterations + 1)

    def step(
        self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], decay: dict[str, bool] | None = None
    ) -> None:
        """Update every array in ``params`` in place from ``grads`` (same keys);
        ``decay[key]`` (default True) says whether that group takes weight decay."""
        self.iterations += 1
        lr = self.schedule(self.iterations)
        compiled = kernels.optimizer_update(self)  # the accelerator: the same update in one loop, or None
        for key, p in params.items():
            if key not in self.state:
                self.state[key] = {n: np.zeros_like(p) for n in self.slots}
            group_decay = True if decay is None else decay[key]
            if compiled is not None and compiled(p, grads[key], self.state[key], lr, group_decay):
                continue
            if key not in self._scratch or self._scratch[key].shape != p.shape:
                self._scratch[key] = np.empty_like(p)
            self._update(p, grads[key], self.state[key], self._scratch[key], lr, group_decay)

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        """One group's update: parameters ``p``, gradient ``g``, state ``s``, a scratch buffer ``tmp``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget all state, as if freshly constructed."""
        self.iterations = 0
        self.state = {}
        self._scratch = {}

    def state_dict(self) -> dict[str, Any]:
        """``{"iterations": t, "state": {group: {slot: array}}}`` (copies)."""
        return {
            "iterations": self.iterations,
            "state": {g: {k: v.copy() for k, v in slots.items()} for g, slots in self.state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()`` output. Every group must hold every slot."""
        groups = state["state"]
        for group, slots in groups.items():
            missing = set(self.slots) - set(slots)
            if missing:
                raise ValueError(f"optimizer state for {group!r} lacks {sorted(missing)}; {self!r} keeps {self.slots}")
        self.iterations = int(state["iterations"])
        self.state = {g: {k: np.array(slots[k]) for k in self.slots} for g, slots in groups.items()}
        self._scratch = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scratch": {}}

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
        self.momentum = check_number("momentum", momentum, 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0.")
        self.nesterov = bool(nesterov)
        self.slots = ("velocity",) if self.momentum else ()

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        step = np.multiply(g, lr, out=tmp)  # lr g
        if not self.momentum:
            p -= step  # p = p - lr g
            return
        v = s["velocity"]
        v *= self.momentum
        v -= step  # v = mu v - lr g
        if self.nesterov:
            np.multiply(v, self.momentum, out=tmp)  # (lr g is in v now; tmp is free)
            tmp -= g * lr
            p += tmp  # p = p + mu v - lr g
        else:
            p += v  # p = p + v

    def _hyper(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("adagrad")
class AdaGrad(Optimizer):
    """``G += g^2; p -= lr g / (sqrt(G) + eps)`` (Duchi et al., 2011)."""

    slots = ("sum_sq",)

    def __init__(self, learning_rate: float | Schedule = 0.01, eps: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.eps = check_number("eps", eps, 0.0, 1.0)

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        G = s["sum_sq"]
        np.multiply(g, g, out=tmp)
        G += tmp  # G = G + g^2
        np.sqrt(G, out=tmp)
        tmp += self.eps  # sqrt(G) + eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp  # p = p - lr g / (sqrt(G) + eps)

    def _hyper(self) -> dict[str, Any]:
        return {"eps": self.eps}


@OPTIMIZERS.register("rmsprop")
class RMSProp(Optimizer):
    """``E = rho E + (1 - rho) g^2; p -= lr g / (sqrt(E) + eps)`` (Hinton, 2012)."""

    slots = ("mean_sq",)

    def __init__(self, learning_rate: float | Schedule = 0.001, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.rho = check_number("rho", rho, 0.0, 1.0)
        self.eps = check_number("eps", eps, 0.0, 1.0)

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        E = s["mean_sq"]
        E *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        E += tmp  # E = rho E + (1 - rho) g^2
        np.sqrt(E, out=tmp)
        tmp += self.eps  # sqrt(E) + eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp  # p = p - lr g / (sqrt(E) + eps)

    def _hyper(self) -> dict[str, Any]:
        return {"rho": self.rho, "eps": self.eps}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), Algorithm 1 of the paper, line by line, with
    the reordering the paper itself gives for efficiency (end of its section 2):
    both bias corrections fold into the step size ``lr_t``.

    ``m`` and ``v`` in ``state`` are the paper's biased moment estimates.
    """

    slots = ("m", "v")

    def __init__(
        self, learning_rate: float | Schedule = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__(learning_rate)
        self.beta1 = check_number("beta1", beta1, 0.0, 1.0)
        self.beta2 = check_number("beta2", beta2, 0.0, 1.0)
        self.eps = check_number("eps", eps, 0.0, 1.0)

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        m, v, b1, b2 = s["m"], s["v"], self.beta1, self.beta2
        lr_t, eps_t = self.step_sizes(lr)
        m *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp  # m = b1 m + (1 - b1) g                 first-moment estimate
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp  # v = b2 v + (1 - b2) g^2               second-moment estimate
        np.sqrt(v, out=tmp)
        tmp += eps_t  # sqrt(v) + eps sqrt(c2)
        np.divide(m, tmp, out=tmp)
        tmp *= lr_t
        p -= tmp  # p = p - lr m_hat / (sqrt(v_hat) + eps)

    def step_sizes(self, lr: float) -> tuple[float, float]:
        """``(lr_t, eps_t)`` for the current step ``t``: the bias corrections folded in.

        ``lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / c1``, ``v_hat = v / c2``
        and ``c = 1 - beta^t`` is ``lr_t m / (sqrt(v) + eps_t)`` with
        ``lr_t = lr sqrt(c2) / c1`` and ``eps_t = eps sqrt(c2)``: no pass divides ``v`` or ``m``.
        """
        t = self.iterations
        root_c2 = (1.0 - self.beta2**t) ** 0.5
        return lr * root_c2 / (1.0 - self.beta1**t), self.eps * root_c2

    def _hyper(self) -> dict[str, Any]:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019):
    ``p -= lr * weight_decay * p`` before the Adam step, on the groups whose
    ``decay`` is True (the network decays weights, never biases)."""

    decoupled_weight_decay = True

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(learning_rate, beta1, beta2, eps)
        self.weight_decay = check_number("weight_decay", weight_decay, 0.0, 1.0)

    def _update(
        self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray], tmp: np.ndarray, lr: float, decay: bool
    ) -> None:
        if decay:
            self.decay_weights(p, lr)
        super()._update(p, g, s, tmp, lr, decay)

    def decay_weights(self, p: np.ndarray, lr: float) -> None:
        """The decoupled decay, in place: ``p = p - lr wd p``."""
        if self.weight_decay:
            p *= 1.0 - lr * self.weight_decay

    def _hyper(self) -> dict[str, Any]:
        return {**super()._hyper(), "weight_decay": self.weight_decay}


def get_optimizer(spec: str | Optimizer, **kwargs: Any) -> Optimizer:
    """Resolve an optimizer name (``"sgd"``, ``"adam"``, ...) or instance."""
    return OPTIMIZERS.resolve(spec, Optimizer, **kwargs)
