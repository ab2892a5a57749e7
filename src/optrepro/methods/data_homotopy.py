"""Homotopy across data distributions (HT Algorithm 1) and its degenerate schedules, the two baselines.

One class covers the three methods of HT section 5: random initialization (no source pre-training, lambda = 1),
warm start (source pre-training, then lambda = 1) and the homotopy (source pre-training, then lambda climbs a
staircase to 1). All three spend the same target budget; the source pre-training is counted apart from it.
Regression mixes targets on shared inputs (eq. 14); classification mixes paired images and their one-hot labels
(eq. 17-18), served by ``optrepro.data.paired.PairedImageDataModule``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.methods.base import Method

FORMS = ("exact", "gaussian_filter")
#: at the first target epoch, the optimizer keeps its state from the source pre-training, or starts afresh
SWITCH = ("keep", "fresh")


def homotopy_targets(y_source: Tensor, y_target: Tensor, lam: float) -> Tensor:
    """HT eq. 14 with Algorithm 1's orientation: y_lambda = (1 - lambda) y_source + lambda y_target."""
    return (1.0 - lam) * y_source + lam * y_target


#: HT eq. 17, x_lambda = (1 - lambda) x_source + lambda x_target pixel by pixel: eq. 14's interpolation on images.
mix_images = homotopy_targets


def soft_labels(y_source: Tensor, y_target: Tensor, lam: float, num_classes: int) -> Tensor:
    """HT eq. 18: y_lambda = (1 - lambda) onehot(y_source) + lambda onehot(y_target), [B] indices -> [B, C].

    A pair of the same class gets that class with probability 1; HT Figure 6's pair (classes 2 and 5) at
    lambda = 0.5 gets [0, 0, .5, 0, 0, .5, 0, 0, 0, 0].
    """
    one_hot = lambda y: torch.nn.functional.one_hot(y, num_classes).float()  # noqa: E731
    return (1.0 - lam) * one_hot(y_source) + lam * one_hot(y_target)


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
        optimizer_at_switch: str = "keep",
    ):
        if form not in FORMS:
            raise ValueError(f"method.form={form!r} is not one of {FORMS}")
        if optimizer_at_switch not in SWITCH:
            raise ValueError(f"homotopy.optimizer_at_switch={optimizer_at_switch!r} is not one of {SWITCH}")
        # HT does not say whether the optimizer of the source pre-training goes on into the target phase
        self.fresh_optimizer = optimizer_at_switch == "fresh" and int(source_epochs) > 0
        self.name, self.schedule, self.source_epochs = name, schedule, int(source_epochs)
        self.form, self.filter_std, self.filter_samples = form, filter_std, int(filter_samples)
        self._datamodule = None
        self.num_classes: int | None = None  # classification: read from the datamodule in setup()

    def parameter(self, epoch: int) -> float:
        if epoch < 0:
            return 0.0
        lam = self.schedule(epoch)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1] (HT eq. 14 interpolates), got {lam} at epoch {epoch}")
        return lam

    def requirements(self) -> dict[str, str]:
        needs = {}
        if self.source_epochs > 0 or self.parameter(0) < 1.0:
            needs["source"] = "it trains on a source task before or while it moves to the target (HT Algorithm 1)"
        if self.form == "gaussian_filter":
            needs["real_targets"] = "its Gaussian filter averages real-valued targets over inputs (HT eq. 21-22)"
        return needs

    def setup(self, task, datamodule) -> None:
        # The filter samples target pairs from the target task's training set, per member, read at each batch
        # so that it is wherever the datamodule has moved the data (no copy per step).
        self._task, self._datamodule = task, datamodule

    def batch(self, batch, lam: float) -> tuple[Tensor, Tensor]:
        """HT eq. 14 (targets on shared inputs) or eq. 17-18 (paired images and soft labels) at ``lam``.

        At lambda = 0 (source pre-training) the batch is the source task's pair and at lambda = 1 the target's,
        with class indices for images (cross-entropy against a one-hot vector equals that against its index: no
        mixing arithmetic, and accuracy stays defined).
        """
        y = batch.y
        if self.form == "gaussian_filter" and lam > 0:
            pool_x, pool_y = self._task.target_pool(self._datamodule)
            idx = torch.randint(pool_x.shape[1], (pool_x.shape[0], self.filter_samples, 1), device=batch.x.device)
            y = gaussian_filter_targets(
                batch.x, torch.gather(pool_x, 1, idx), torch.gather(pool_y, 1, idx), self.filter_std
            )
        if lam >= 1.0:
            return batch.x, y
        x_source = batch.x if batch.x_source is None else batch.x_source
        if lam <= 0.0:
            return x_source, batch.y_source
        x = batch.x if batch.x_source is None else mix_images(batch.x_source, batch.x, lam)
        return x, self._task.mix_targets(batch.y_source, y, lam)
