"""Learning-rate schedules as multiplicative factors of the base rate (docs/architecture.md "Optimizers").

Each schedule is a callable ``factor(t)`` with an ``interval``: ``"epoch"`` schedules are indexed by the target
budget's epoch (a method's source pre-training, at negative epochs, keeps the base rate, so every method sees the
same schedule over the shared budget); ``"step"`` schedules by the optimizer step k = 0, 1, 2, ...
"""

from __future__ import annotations

import math


class ConstantRate:
    """Factor 1 throughout: the base learning rate at every epoch."""

    interval = "epoch"

    def __init__(self, total: int):
        self.total = total

    def __call__(self, t: int) -> float:
        return 1.0


class Cosine:
    """Cosine annealing from 1 to ``min_factor`` over ``total`` epochs (HT Figure 2b anneals Adam's lr so)."""

    interval = "epoch"

    def __init__(self, total: int, min_factor: float = 0.0):
        if total < 1:
            raise ValueError(f"cosine schedule needs total >= 1 epochs, got {total}")
        self.total, self.min_factor = total, min_factor

    def __call__(self, t: int) -> float:
        if t <= 0:
            return 1.0
        frac = min(t, self.total) / self.total
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * frac))


class Power:
    """(t + 1)^-exponent: per step, gamma_0 (k+1)^-q (TH ch. 2, q = 1/2 by default); per epoch, the thesis's
    deep-learning decay 1/q^(1/2 + delta) for epoch q = 1, 2, ... (TH ch. 4, exponent 1/2 + 0.001)."""

    def __init__(self, total: int, exponent: float = 0.5, interval: str = "step"):
        if exponent < 0:
            raise ValueError(f"schedule.exponent={exponent} is not allowed: it must be >= 0")
        if interval not in ("step", "epoch"):
            raise ValueError(f"schedule.interval={interval!r} is not one of step, epoch")
        self.total, self.exponent, self.interval = total, exponent, interval

    def __call__(self, t: int) -> float:
        return 1.0 if t < 0 else (t + 1) ** -self.exponent


class Step:
    """gamma^(floor(t / step_size)) per epoch: the base rate multiplied by ``gamma`` every ``step_size`` epochs (the
    HTA authors' code: lr 0.05 halved every 30 epochs)."""

    interval = "epoch"

    def __init__(self, total: int, step_size: int = 30, gamma: float = 0.5):
        if step_size < 1:
            raise ValueError(f"schedule.step_size={step_size} is not allowed: it must be an integer >= 1")
        if gamma <= 0:
            raise ValueError(f"schedule.gamma={gamma} is not allowed: it must be > 0")
        self.total, self.step_size, self.gamma = total, int(step_size), float(gamma)

    def __call__(self, t: int) -> float:
        return 1.0 if t < 0 else self.gamma ** (t // self.step_size)
