"""What a kind of task tells the one training loop (``optrepro.loop``): how a raw batch becomes inputs and targets,
the per-member loss, the metrics with their direction, and how a whole split is evaluated.

Every tensor carries a leading member dimension (``[members, batch, ...]``): the model is always ``Members``, one
model or a vmapped ensemble (docs/architecture.md "One loop").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

#: the direction of a metric: ``min`` (lower is better) or ``max``
Direction = str


@dataclass(frozen=True)
class Batch:
    """One training minibatch as every method sees it.

    ``x``, ``y``: the target task's inputs and targets. ``y_source``: the source task's targets, on the inputs
    ``x_source`` (paired images) or on ``x`` itself when ``x_source`` is None (the sine task's shared inputs, HT
    eq. 14); both None when the task has no source.
    """

    x: Any
    y: Tensor
    y_source: Tensor | None = None
    x_source: Tensor | None = None


@dataclass
class SplitSums:
    """Per-member sums of each metric over a split, and what they are divided by (samples or elements)."""

    sums: dict[str, Tensor]
    count: Tensor

    def means(self, prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}/{name}": total / self.count for name, total in self.sums.items()}


class Task:
    """A kind of task. Subclasses set the class attributes and implement the four methods below."""

    #: how people and error messages name the task (the task config's ``name``)
    name: str = "task"
    #: whether batches carry a source task (``Batch.y_source``): what the data homotopy needs
    has_source: bool = False
    #: whether the targets are real values on inputs that a Gaussian filter can average (HT eq. 21-22)
    real_targets: bool = False
    #: whether several members can train as one vmapped ensemble
    supports_ensemble: bool = False
    #: whether its datamodule shards the data across DDP processes
    shards_data: bool = False
    #: whether rows carry ``train/acc`` and ``test/acc``
    accuracy: bool = False
    #: the evaluation splits
    splits: tuple[str, ...] = ("train", "test")

    def __init__(self, name: str | None = None):
        if name:
            self.name = name

    def metrics(self) -> dict[str, Direction]:
        """Every metric the loop writes for this task, with its direction (``best`` follows it)."""
        out: dict[str, Direction] = {"train/objective": "min"}
        for split in self.splits:
            out[f"{split}/loss"] = "min"
            if self.accuracy:
                out[f"{split}/acc"] = "max"
        return out

    def batch(self, raw: Any) -> Batch:
        """The datamodule's raw batch as a ``Batch`` with a member dimension."""
        raise NotImplementedError

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        """The training loss of each member, ``[members]``."""
        raise NotImplementedError

    def correct(self, out: Tensor, target: Tensor) -> Tensor:
        """Correct predictions of each member, ``[members]`` (tasks with ``accuracy``)."""
        raise NotImplementedError

    def mix_targets(self, y_source: Tensor, y_target: Tensor, lam: float) -> Tensor:
        """HT eq. 14 / 18: the targets at homotopy parameter ``lam`` (tasks with ``has_source``)."""
        raise NotImplementedError(f"task {self.name} has no source task to mix")

    def target_pool(self, datamodule: Any) -> tuple[Tensor, Tensor]:
        """The target task's training inputs and targets, ``[members, n, ...]`` (tasks with ``real_targets``)."""
        raise NotImplementedError(f"task {self.name} has no real-valued target pool")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule: Any, split: str, device: torch.device) -> SplitSums:
        """Per-member sums of the loss (and correct predictions) of ``model`` over the whole ``split``."""
        raise NotImplementedError


def add_member_dim(x: Any) -> Any:
    """A tensor, or a tuple of tensors, with a leading member dimension of size 1."""
    return tuple(t.unsqueeze(0) for t in x) if isinstance(x, tuple | list) else x.unsqueeze(0)


def batches_on(batches, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for x, y in batches:
        yield x.to(device), y.to(device)
