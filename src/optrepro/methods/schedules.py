"""Schedules of a homotopy parameter over the target budget's epochs: HT's lambda, GC's fixed lambda, HTA's L.

A schedule is a callable ``value(epoch)``. Learning-rate schedules are a different thing (factors of the base rate
for torch's LambdaLR) and live in ``optrepro.optim.schedules``.
"""

from __future__ import annotations

import math


def stepped_range(start: float, stop: float, step: float) -> list[float]:
    """start, start +- |step|, ..., stop, the values a homotopy parameter steps through (HTA 4.1: L from 0.9 to 0.1;
    HTA 4.2: L = 0.01 down to 0.005 in steps of 0.001). ``stop - start`` must be a whole number of steps."""
    if step == 0:
        raise ValueError("a stepped range needs a nonzero step")
    n = round(abs(stop - start) / abs(step))
    if not math.isclose(n * abs(step), abs(stop - start), rel_tol=1e-6, abs_tol=1e-12):
        raise ValueError(f"from {start} to {stop} is not a whole number of steps of {step}")
    sign = 1.0 if stop >= start else -1.0
    return [round(start + sign * i * abs(step), 12) for i in range(n + 1)]


class Constant:
    """The parameter fixed at ``value`` (HT's random init and warm start: lambda = 1; GC: lambda = lambda_0)."""

    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, epoch: int) -> float:
        return self.value


class Geometric:
    """value_0 ratio^epoch (GC section 2.2: lambda_0 gamma^i)."""

    def __init__(self, value0: float, ratio: float):
        self.value0, self.ratio = float(value0), float(ratio)

    def __call__(self, epoch: int) -> float:
        return self.value0 * self.ratio**epoch


class InversePower:
    """value_0 / (1 + epoch)^exponent (GC section 2.2: lambda_0 / (1 + i)^gamma)."""

    def __init__(self, value0: float, exponent: float):
        self.value0, self.exponent = float(value0), float(exponent)

    def __call__(self, epoch: int) -> float:
        return self.value0 / (1 + epoch) ** self.exponent


class Piecewise:
    """Each of ``values`` for ``epochs_per_value`` epochs, then the last value for good; epochs before 0 get the first.

    The shape of HT Algorithm 1's staircase and of HTA's L path (``Staircase`` and ``LSchedule``).
    """

    def __init__(self, values: list[float], epochs_per_value: int):
        if not values:
            raise ValueError("a piecewise schedule needs at least one value")
        if epochs_per_value < 1:
            raise ValueError(f"epochs_per_value must be >= 1, got {epochs_per_value}")
        self.values, self.epochs_per_value = [float(v) for v in values], int(epochs_per_value)

    @property
    def epochs(self) -> int:
        """Epochs until the parameter reaches its last value."""
        return (len(self.values) - 1) * self.epochs_per_value

    def __call__(self, epoch: int) -> float:
        return self.values[min(max(epoch, 0) // self.epochs_per_value, len(self.values) - 1)]


class Staircase(Piecewise):
    """HT Algorithm 1: ``gamma`` steps of ``k`` epochs, lambda = i / gamma during step i = 1..gamma, then 1.

    The first step already trains at 1/gamma (the algorithm increments lambda before solving), and the last
    step at lambda = 1; epochs after ``gamma * k`` stay at 1. ``gamma = 1`` is warm start.
    """

    def __init__(self, gamma: int, k: int):
        if gamma < 1 or k < 1:
            raise ValueError(f"Staircase needs gamma >= 1 and k >= 1, got gamma={gamma}, k={k}")
        self.gamma, self.k = int(gamma), int(k)
        super().__init__([i / self.gamma for i in range(1, self.gamma + 1)], self.k)


class LSchedule(Piecewise):
    """HTA's homotopy parameter L by epoch: each value for ``epochs_per_value`` epochs, then the last value for good.

    The values are a list, or the range ``start, start - step, ..., stop`` (HTA section 4.2: L = 0.01 down to 0.005
    in steps of 0.001, 4 epochs each, then the rest of the budget at 0.005). Epochs before 0 get the first value.
    """

    def __init__(
        self,
        values: list[float] | None = None,
        start: float | None = None,
        stop: float | None = None,
        step: float | None = None,
        epochs_per_value: int = 4,
    ):
        if values is None:
            if None in (start, stop, step) or step == 0:
                raise ValueError("LSchedule needs values, or start, stop and a nonzero step")
            values = stepped_range(start, stop, step)
        if not values or min(values) <= 0:
            raise ValueError(f"homotopy L must be > 0 (HTA eq. 3 divides by L), got {values}")
        super().__init__(values, epochs_per_value)
