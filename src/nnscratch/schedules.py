"""Learning-rate schedules: callables from the optimizer step count ``t``
(1 for the first update) to a learning rate.
"""

from __future__ import annotations

import math
from typing import Any

from ._registry import Registry
from ._validation import check_number, check_positive_int

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseScaling",
    "CosineDecay",
    "get_schedule",
    "SCHEDULES",
]

SCHEDULES = Registry("schedule")


def _positive(name: str, value: Any) -> float:
    return check_number(name, value, 0.0, low_open=True)


class Schedule:
    """Base class: ``schedule(t) -> learning rate`` for step ``t >= 1``."""

    registry_name = "schedule"

    def __init__(self, initial: float) -> None:
        self.initial = _positive("learning_rate", initial)

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.registry_name, **{k: v for k, v in vars(self).items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


@SCHEDULES.register("constant")
class Constant(Schedule):
    """The same rate at every step."""

    def __call__(self, t: int) -> float:
        return self.initial


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """``initial * gamma ** floor((t - 1) / step_size)``."""

    def __init__(self, initial: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(initial)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, t: int) -> float:
        return self.initial * self.gamma ** ((t - 1) // self.step_size)


@SCHEDULES.register("exponential")
class ExponentialDecay(Schedule):
    """``initial * decay_rate ** ((t - 1) / decay_steps)``."""

    def __init__(self, initial: float, decay_rate: float, decay_steps: int = 1) -> None:
        super().__init__(initial)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.decay_steps = check_positive_int("decay_steps", decay_steps)

    def __call__(self, t: int) -> float:
        return self.initial * self.decay_rate ** ((t - 1) / self.decay_steps)


@SCHEDULES.register("inverse_scaling")
class InverseScaling(Schedule):
    """``initial / t ** power`` (scikit-learn's ``"invscaling"``)."""

    def __init__(self, initial: float, power: float = 0.5) -> None:
        super().__init__(initial)
        self.power = _positive("power", power)

    def __call__(self, t: int) -> float:
        return self.initial / t**self.power


@SCHEDULES.register("cosine")
class CosineDecay(Schedule):
    """Half a cosine from ``initial`` down to ``minimum`` over ``decay_steps``
    steps, then ``minimum``."""

    def __init__(self, initial: float, decay_steps: int, minimum: float = 0.0) -> None:
        super().__init__(initial)
        self.decay_steps = check_positive_int("decay_steps", decay_steps)
        self.minimum = check_number("minimum", minimum, 0.0, self.initial, high_open=False)

    def __call__(self, t: int) -> float:
        progress = min(t - 1, self.decay_steps) / self.decay_steps
        return self.minimum + 0.5 * (self.initial - self.minimum) * (1 + math.cos(math.pi * progress))


def get_schedule(spec: float | Schedule) -> Schedule:
    """A number becomes a ``Constant`` schedule; a ``Schedule`` passes through."""
    if isinstance(spec, Schedule):
        return spec
    return Constant(spec)
