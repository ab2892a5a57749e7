"""Mean-squared-error regression for one or many members, with any method and optimizer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.ensemble import Members
from optrepro.methods import Method
from optrepro.modules.common import MethodModule, step_columns
from optrepro.records import MemberLog


def mse_per_member(pred: Tensor, target: Tensor) -> Tensor:
    """[members, batch, ...] -> [members]: each member's mean squared error."""
    return (pred - target).pow(2).flatten(1).mean(1)


class RegressionModule(MethodModule):
    """Trains ``members`` on the targets the ``method`` makes from each batch; evaluates once per epoch.

    The loss is the sum of the members' own losses, so each member gets its own gradient. A member whose loss
    turns non-finite is masked out from then on (its rows stop, its summary says ``diverged``); training stops
    when no member is left. Per-epoch metrics, per member:
    - ``train/loss``, ``test/loss``: MSE on the whole target-task train and test splits (lambda = 1);
    - ``train/objective``: mean minibatch loss of the objective actually trained during the epoch;
    - the method's parameter (``homotopy/lambda``), ``grad_evals`` (minibatch gradients so far) and ``lr`` (the
      learning rate at the start of the epoch).
    Loggers (W&B, TensorBoard) receive the median across living members.
    """

    def __init__(
        self,
        members: Members,
        method: Method,
        optimizer: Callable,
        lr_schedule: Callable[[int], float],
        log: MemberLog | None = None,
        monitor: str = "train/loss",
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["members", "method", "optimizer", "lr_schedule", "log"])
        self.members, self.method = members, method
        self.make_optimizer, self.lr_schedule, self.log_members = optimizer, lr_schedule, log
        self.register_buffer("alive", torch.ones(members.size, dtype=torch.bool))
        self.register_buffer("_objective_sum", torch.zeros(members.size))
        self._batches = 0
        self.lam = 0.0

    def on_train_start(self) -> None:
        # after a resume, members that had diverged before the checkpoint stay diverged
        if self.log_members is not None:
            for i in (~self.alive).nonzero().flatten().tolist():
                self.log_members.mark_diverged(i, self.log_members.rows[i].get("epoch", self.budget_epoch))

    def on_train_epoch_start(self) -> None:
        self.lam = self.method.parameter(self.budget_epoch)
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._objective_sum.zero_()
        self._batches = 0

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = self.method.regression_batch(batch, self.lam)
        per_member = mse_per_member(self.members(x), y)
        self._objective_sum += per_member.detach()
        self._batches += 1
        keep = self.alive & torch.isfinite(per_member)
        return torch.where(keep, per_member, torch.zeros_like(per_member)).sum()

    @torch.no_grad()
    def evaluate(self) -> dict[str, Tensor]:
        dm = self.trainer.datamodule
        metrics = {"train/objective": self._objective_sum / max(self._batches, 1)}
        for split, data in (("train", dm.train), ("test", dm.test)):
            metrics[f"{split}/loss"] = mse_per_member(self.members(data.x), data.y_target)
        return metrics

    def on_train_epoch_end(self) -> None:
        metrics = self.evaluate()
        finite = torch.stack([torch.isfinite(v) for v in metrics.values()]).all(0)
        newly_dead = (self.alive & ~finite).cpu()
        self.alive &= finite
        values = {k: v.float().cpu() for k, v in metrics.items()}  # one host sync per epoch
        optimizer = self.trainer.optimizers[0]
        common = step_columns(
            optimizer, self.budget_epoch, self.global_step, self._epoch_lr, self.method.parameter_name, self.lam
        )
        alive = self.alive.cpu()
        if self.log_members is not None:
            for i in range(self.members.size):
                if alive[i] or newly_dead[i]:
                    self.log_members.write(i, {**common, **{k: float(v[i]) for k, v in values.items()}})
                if newly_dead[i]:
                    self.log_members.mark_diverged(i, self.budget_epoch)
        if alive.any():
            medians = {k: v[alive].median() for k, v in values.items()}
            extra = {self.method.parameter_name: self.lam} if self.method.parameter_name else {}
            self.log_dict({**medians, **extra}, on_epoch=True, on_step=False)
        else:
            self.trainer.should_stop = True
