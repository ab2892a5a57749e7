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

from optrepro.config import ConfigError
from optrepro.methods.base import Method

FORMS = ("exact", "gaussian_filter")


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
    ):
        if form not in FORMS:
            raise ValueError(f"method.form={form!r} is not one of {FORMS}")
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

    def setup(self, datamodule) -> None:
        # The filter samples target pairs from the target task's training set, per member, read at each batch
        # so that it is wherever the datamodule has moved the data (no copy per step).
        self._datamodule = datamodule
        self.num_classes = getattr(datamodule, "num_classes", None)
        if self.num_classes is not None and self.form != "exact":
            raise ConfigError(
                f"method.form={self.form!r} is a regression form (HT eq. 21-22); classification mixes paired "
                "images (eq. 17-18): use method.form=exact"
            )
        needs_source = self.source_epochs > 0 or self.parameter(0) < 1.0
        if self.num_classes is not None and needs_source and not hasattr(datamodule, "source_name"):
            raise ConfigError(
                f"method={self.name} trains on a source task first, but task={getattr(datamodule, 'name', '?')} "
                "serves one dataset: pick a paired task (task=ht_mnist_fmnist or task=ht_mnist_cifar10), or "
                "method=random_init"
            )

    def classification_batch(self, batch: tuple[Tensor, ...], lam: float) -> tuple[Tensor, Tensor]:
        """HT eq. 17-18 on a paired batch ``(x_s, y_s, x_t, y_t)``: (x_lambda, soft labels [B, C]).

        At lambda = 0 (source pre-training) and lambda = 1 the soft label is one-hot, and cross-entropy against a
        one-hot vector equals cross-entropy against its class index: the hook then returns the pair of that task
        with class indices (no mixing arithmetic, and accuracy stays defined). A plain batch ``(x, y)`` is the
        target task itself (random initialization on an ordinary image task).
        """
        if len(batch) == 2:
            if lam < 1.0:
                raise ConfigError(f"method={self.name} at lambda={lam:g} needs paired batches (x_s, y_s, x_t, y_t)")
            return batch[0], batch[1]
        x_s, y_s, x_t, y_t = batch
        if lam == 0.0:
            return x_s, y_s
        if lam == 1.0:
            return x_t, y_t
        return mix_images(x_s, x_t, lam), soft_labels(y_s, y_t, lam, self.num_classes)

    def regression_batch(self, batch: tuple[Tensor, Tensor, Tensor], lam: float) -> tuple[Tensor, Tensor]:
        x, y_source, y_target = batch
        if self.form == "gaussian_filter" and lam > 0:
            pool_x, pool_y = self._datamodule.train.x, self._datamodule.train.y_target
            idx = torch.randint(pool_x.shape[1], (pool_x.shape[0], self.filter_samples, 1), device=x.device)
            y_target = gaussian_filter_targets(
                x, torch.gather(pool_x, 1, idx), torch.gather(pool_y, 1, idx), self.filter_std
            )
        return x, homotopy_targets(y_source, y_target, lam)
