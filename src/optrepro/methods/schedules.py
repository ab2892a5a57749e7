"""Schedules of the homotopy parameter lambda over the target budget's epochs."""

from __future__ import annotations


class Constant:
    """lambda fixed at ``value`` (value = 1: train on the target at once, as random init and warm start do)."""

    def __init__(self, value: float = 1.0):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1], got {value}")
        self.value = float(value)

    def __call__(self, epoch: int) -> float:
        return self.value


class Staircase:
    """HT Algorithm 1: ``gamma`` steps of ``k`` epochs, lambda = i / gamma during step i = 1..gamma, then 1.

    The first step already trains at 1/gamma (the algorithm increments lambda before solving), and the last
    step at lambda = 1; epochs after ``gamma * k`` stay at 1. ``gamma = 1`` is warm start.
    """

    def __init__(self, gamma: int, k: int):
        if gamma < 1 or k < 1:
            raise ValueError(f"Staircase needs gamma >= 1 and k >= 1, got gamma={gamma}, k={k}")
        self.gamma, self.k = int(gamma), int(k)

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch // self.k + 1) / self.gamma)
