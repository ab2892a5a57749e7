"""Regression tasks: the sine targets of HT section 5.1 (many members at once) and neural-ODE trajectories (GC
section 3.2, one member). The loss is each member's mean squared error."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from optrepro.methods.data_homotopy import homotopy_targets
from optrepro.tasks.base import Batch, SplitSums, Task, add_member_dim


def squared_error_sums(pred: Tensor, target: Tensor) -> Tensor:
    """[members, ...] -> [members]: each member's sum of squared errors."""
    return (pred - target).pow(2).flatten(1).sum(1)


def mse_per_member(pred: Tensor, target: Tensor) -> Tensor:
    """[members, ...] -> [members]: each member's mean squared error."""
    return (pred - target).pow(2).flatten(1).mean(1)


class SineRegression(Task):
    """HT eq. 19: batches ``(x, y_source, y_target)``, each ``[members, batch, 1]``, source and target on the same
    inputs. Evaluation: the MSE over the whole target-task split."""

    name = "sine"
    has_source = True
    real_targets = True
    supports_ensemble = True

    def batch(self, raw: Any) -> Batch:
        x, y_source, y_target = raw
        return Batch(x=x, y=y_target, y_source=y_source)

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        return mse_per_member(out, target)

    def mix_targets(self, y_source: Tensor, y_target: Tensor, lam: float) -> Tensor:
        return homotopy_targets(y_source, y_target, lam)

    def target_pool(self, datamodule: Any) -> tuple[Tensor, Tensor]:
        return datamodule.train.x, datamodule.train.y_target

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule: Any, split: str, device: torch.device) -> SplitSums:
        data = datamodule.train if split == "train" else datamodule.test
        return SplitSums({"loss": squared_error_sums(model(data.x), data.y_target)}, torch.tensor(data.x[0].numel()))


class TrajectoryRegression(Task):
    """GC Figures 6-7: batches ``((mu, x0), trajectory)`` of whole trajectories; the MSE over every time point and
    coordinate. One member (the adaptive solver takes its own steps per model)."""

    name = "trajectory"

    def batch(self, raw: Any) -> Batch:
        (mu, x0), traj = raw
        return Batch(x=add_member_dim((mu, x0)), y=add_member_dim(traj))

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        return mse_per_member(out, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datamodule: Any, split: str, device: torch.device) -> SplitSums:
        data = datamodule.train if split == "train" else datamodule.test
        inputs = add_member_dim((data.mu.to(device), data.x0.to(device)))
        target = add_member_dim(data.traj.to(device))
        return SplitSums({"loss": squared_error_sums(model(inputs), target)}, torch.tensor(data.traj.numel()))
