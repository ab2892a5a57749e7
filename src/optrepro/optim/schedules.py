"""Learning-rate schedules as multiplicative factors of the base rate, indexed by the target budget's epoch.

Epochs before 0 (a method's source pre-training) keep the base rate, so every method sees the same schedule
over the shared budget.
"""

from __future__ import annotations

import math


class Constant:
    """Factor 1 throughout."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, epoch: int) -> float:
        return 1.0


class Cosine:
    """Cosine annealing from 1 to ``min_factor`` over ``total`` epochs (HT Figure 2b anneals Adam's lr so)."""

    def __init__(self, total: int, min_factor: float = 0.0):
        if total < 1:
            raise ValueError(f"cosine schedule needs total >= 1 epochs, got {total}")
        self.total, self.min_factor = total, min_factor

    def __call__(self, epoch: int) -> float:
        if epoch <= 0:
            return 1.0
        t = min(epoch, self.total) / self.total
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
