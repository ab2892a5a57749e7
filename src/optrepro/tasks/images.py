"""Image tasks with one model per run: classification (TH chapter 4, HT section 5.2, HTA, GC Figure 5) and
auto-encoding (TH chapter 4's auto-encoder). Batches are ``(x, y)``, or ``(x_s, y_s, x, y)`` from a paired
datamodule (HT eq. 17-18: a source image beside each target image)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.methods.data_homotopy import soft_labels
from optrepro.tasks.base import Batch, SplitSums, Task, add_member_dim, batches_on


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """[members, batch, classes] logits against class indices [members, batch] or soft labels [members, batch,
    classes] (HT's interpolated targets) -> [members, batch]; for one-hot soft labels both are the same number."""
    m, b = logits.shape[:2]
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(0, 1), reduction="none").view(m, b)


def correct_count(logits: Tensor, target: Tensor) -> Tensor:
    """[members]: how many predictions (argmax) match the target's class (argmax of soft labels)."""
    labels = target if target.dim() == 2 else target.argmax(-1)
    return (logits.argmax(-1) == labels).sum(1)


def reconstruction_error(out: Tensor, x: Tensor) -> Tensor:
    """[members, batch]: each sample's mean over pixels of (output - input)^2."""
    return (out.flatten(2) - x.flatten(2)).pow(2).mean(2)


class Classification(Task):
    """Cross-entropy and accuracy; ``has_source`` when the datamodule serves a source task beside the target."""

    name = "classification"
    accuracy = True
    shards_data = True

    def __init__(self, name: str | None = None, num_classes: int | None = None, has_source: bool = False):
        super().__init__(name)
        self.num_classes, self.has_source = num_classes, has_source

    def batch(self, raw: Any) -> Batch:
        if len(raw) == 4:
            x_s, y_s, x, y = (add_member_dim(t) for t in raw)
            return Batch(x=x, y=y, y_source=y_s, x_source=x_s)
        x, y = raw
        return Batch(x=add_member_dim(x), y=add_member_dim(y))

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(out, target).mean(1)

    def correct(self, out: Tensor, target: Tensor) -> Tensor:
        return correct_count(out, target)

    def mix_targets(self, y_source: Tensor, y_target: Tensor, lam: float) -> Tensor:
        return soft_labels(y_source, y_target, lam, self.num_classes)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule: Any, split: str, device: torch.device) -> SplitSums:
        loss = correct = n = 0
        for x, y in batches_on(datamodule.eval_batches(split), device):
            x, y = add_member_dim(x), add_member_dim(y)
            out = model(x)
            loss = loss + cross_entropy(out, y).sum(1)
            correct = correct + correct_count(out, y)
            n += y.shape[1]
        return SplitSums({"loss": loss, "acc": correct.float()}, torch.tensor(float(n), device=device))


class Autoencoding(Task):
    """The model reconstructs its input: the loss is the reconstruction MSE, no accuracy (set
    ``task.normalize=false`` for pixels in [0, 1], the usual target of a sigmoid output)."""

    name = "autoencoding"
    shards_data = True

    def batch(self, raw: Any) -> Batch:
        x = add_member_dim(raw[-2])
        return Batch(x=x, y=x)

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        return reconstruction_error(out, target).mean(1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule: Any, split: str, device: torch.device) -> SplitSums:
        loss = n = 0
        for x, _ in batches_on(datamodule.eval_batches(split), device):
            x = add_member_dim(x)
            loss = loss + reconstruction_error(model(x), x).sum(1)
            n += x.shape[1]
        return SplitSums({"loss": loss}, torch.tensor(float(n), device=device))
