"""Homotopy across data distributions (HT Algorithm 1) and its degenerate schedules, the two baselines.

One class covers the three methods of HT section 5: random initialization (no source pre-training, lambda = 1),
warm start (source pre-training, then lambda = 1) and the homotopy (source pre-training, then lambda climbs a
staircase to 1). All three spend the same target budget; the source pre-training is counted apart from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.methods.base import Method

FORMS = ("exact", "gaussian_filter")


def homotopy_targets(y_source: Tensor, y_target: Tensor, lam: float) -> Tensor:
    """HT eq. 14 with Algorithm 1's orientation: y_lambda = (1 - lambda) y_source + lambda y_target."""
    return (1.0 - lam) * y_source + lam * y_target


def gaussian_filter_targets(x: Tensor, x_target: Tensor, y_target: Tensor, xi: float) -> Tensor:
    """HT eq. 21-22: the target's value at ``x`` estimated from samples taken at other inputs.

    Returns 1/M sum_i w_i y_target_i with w_i = N(x - x_target_i; 0, xi^2), for x of shape [..., B, d] and
    samples of shape [..., M, d] (leading dimensions broadcast). The weights are the paper's unnormalized density:
    for inputs drawn with density p, the estimate tends to p(x) y(x) as M grows and xi shrinks, which is y(x)
    inside U(0, 1).
    """
    d = x.shape[-1]
    sq = torch.cdist(x, x_target).pow(2)  # [..., B, M]
    w = torch.exp(-sq / (2 * xi**2)) / (2 * math.pi * xi**2) ** (d / 2)
    return (w @ y_target) / x_target.shape[-2]


class DataHomotopy(Method):
    """Train on targets that move from the source task (lambda = 0) to the target task (lambda = 1)."""

    def __init__(
        self,
        name: str,
        schedule: Callable[[int], float],
        source_epochs: int = 0,
        form: str = "exact",
        filter_std: float = 0.01,
        filter_samples: int = 256,
    ):
        if form not in FORMS:
            raise ValueError(f"method.form={form!r} is not one of {FORMS}")
        self.name, self.schedule, self.source_epochs = name, schedule, int(source_epochs)
        self.form, self.filter_std, self.filter_samples = form, filter_std, int(filter_samples)
        self._datamodule = None

    def parameter(self, epoch: int) -> float:
        return 0.0 if epoch < 0 else self.schedule(epoch)

    def setup(self, datamodule) -> None:
        # The filter samples target pairs from the target task's training set, per member, read at each batch
        # so that it is wherever the datamodule has moved the data (no copy per step).
        self._datamodule = datamodule

    def regression_batch(self, batch: tuple[Tensor, Tensor, Tensor], lam: float) -> tuple[Tensor, Tensor]:
        x, y_source, y_target = batch
        if self.form == "gaussian_filter" and lam > 0:
            pool_x, pool_y = self._datamodule.train.x, self._datamodule.train.y_target
            idx = torch.randint(pool_x.shape[1], (pool_x.shape[0], self.filter_samples, 1), device=x.device)
            y_target = gaussian_filter_targets(
                x, torch.gather(pool_x, 1, idx), torch.gather(pool_y, 1, idx), self.filter_std
            )
        return x, homotopy_targets(y_source, y_target, lam)
