"""Auto-encoding of images (TH chapter 4's auto-encoder benchmark): the model reconstructs its input.

The same loop as ``ClassificationModule`` (method hooks, weight decay, schedule, per-epoch rows), with the loss
the mean squared error between the flattened input and the flattened output and no accuracy. The input is what the
datamodule serves (set ``task.normalize=false`` for pixels in [0, 1], the usual target of a sigmoid output).
Rows: ``epoch, step, grad_evals, [homotopy/lambda], lr, [optim/step_size, optim/curvature], train/loss, test/loss``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from optrepro.modules.classification import ClassificationModule


def reconstruction_mse(out: Tensor, x: Tensor, reduction: str = "mean") -> Tensor:
    """Per-sample mean over pixels of (output - input)^2, averaged (``mean``) or summed (``sum``) over the batch."""
    per_sample = F.mse_loss(out.flatten(1), x.flatten(1), reduction="none").mean(1)
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


class AutoencodingModule(ClassificationModule):
    """``ClassificationModule`` with the input as the target and the reconstruction MSE as the loss."""

    has_accuracy = False

    def target(self, x: Tensor, target: Tensor) -> Tensor:
        return x

    def loss(self, out: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        return reconstruction_mse(out, target, reduction)
