"""What every LightningModule shares: the learning-rate schedule and the bookkeeping columns of a metrics row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch


def schedule_config(optimizer: torch.optim.Optimizer, lr_schedule: Callable[[int], float], source_epochs: int) -> dict:
    """``configure_optimizers``' answer: ``optimizer`` with ``lr_schedule`` as a LambdaLR factor, stepped per epoch
    or per step as the schedule's ``interval`` says; epoch schedules count the target budget (a method's source
    pre-training, at negative epochs, keeps the base rate)."""
    interval = getattr(lr_schedule, "interval", "epoch")
    offset = source_epochs if interval == "epoch" else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_schedule(t - offset))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


def step_columns(
    optimizer: torch.optim.Optimizer, epoch: int, step: int, lr: float, parameter_name: str | None, parameter: float
) -> dict[str, Any]:
    """The leading columns of a row: epoch, step, grad_evals (minibatch gradients so far: Step-Tuned SGD evaluates
    two per step), the method's parameter, lr (in effect when the epoch started), and Step-Tuned SGD's last tuned
    step size with the curvature product <G_hat, d_theta> it came from (the step size is nu when that is <= 0)."""
    row: dict[str, Any] = {
        "epoch": epoch,
        "step": step,
        "grad_evals": step * getattr(optimizer, "evals_per_step", 1),
    }
    if parameter_name:
        row[parameter_name] = parameter
    row["lr"] = lr
    if hasattr(optimizer, "last_step_size"):
        row["optim/step_size"] = optimizer.last_step_size
        row["optim/curvature"] = optimizer.last_curvature
    return row


class MethodModule(L.LightningModule):
    """The part every LightningModule here shares: the method's clock and setup, and the optimizer with its lr
    schedule over the module's parameters (the model, the method's wrapped copies, or the stacked members of an
    ensemble: a module holds nothing else trainable). Subclasses set ``method``, ``make_optimizer``,
    ``lr_schedule`` and ``log_members``.

    The checkpoint holds, beside the model and optimizer, the method's own state (``Method.state_dict``: GC's
    learned s) and, for modules that train one model, the epoch at which it diverged: a resumed run goes on with
    the same method state, and a run that had diverged is marked so again and trains no further. (A
    ``RegressionModule`` keeps its members' status in its ``alive`` buffer instead.)
    """

    #: the budget epoch at which the run's one model diverged (None: it has not)
    diverged_at: int | None = None

    @property
    def budget_epoch(self) -> int:
        """The epoch on the shared target budget: negative during a method's own source pre-training."""
        return self.current_epoch - self.method.source_epochs

    def setup(self, stage: str) -> None:
        self.method.setup(self.trainer.datamodule)

    def mark_diverged(self) -> None:
        """The model's metrics turned non-finite this epoch: the run ends with status ``diverged``."""
        if self.diverged_at is None:
            self.diverged_at = self.budget_epoch
        if self.log_members is not None:
            self.log_members.mark_diverged(0, self.diverged_at)
        self.trainer.should_stop = True

    def on_train_start(self) -> None:
        if self.diverged_at is not None:  # resumed from the checkpoint of a diverged run
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["method_state"] = self.method.state_dict()
        checkpoint["diverged_at_epoch"] = self.diverged_at

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # marked here, not in on_train_start: a checkpoint of the last epoch resumes with no training at all
        self.method.load_state_dict(checkpoint.get("method_state", {}))
        self.diverged_at = checkpoint.get("diverged_at_epoch")
        if self.diverged_at is not None and self.log_members is not None:
            self.log_members.mark_diverged(0, self.diverged_at)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        return schedule_config(optimizer, self.lr_schedule, self.method.source_epochs)
