"""Trajectory regression (GC Figures 6, 7): a neural ODE fitted by MSE over whole trajectories, with any method.

One model per run (``ensemble.size`` must be 1: the adaptive solver takes its own steps per model, which a vmapped
ensemble cannot share; sweep seeds instead). A step goes through the method hooks in the order of
``optrepro.methods.base``: ``regression_batch``, ``objective``, backward, ``after_backward``. Per epoch, with the
unperturbed model (``eval_model``): ``train/loss`` and ``test/loss`` (MSE over the whole train and test splits),
``train/objective`` (the mean minibatch objective actually trained), the method's parameter and ``logged()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from optrepro.ensemble import Members
from optrepro.methods import Method
from optrepro.modules.common import MethodModule, step_columns
from optrepro.records import MemberLog


class TrajectoryModule(MethodModule):
    def __init__(
        self,
        members: Members,
        method: Method,
        optimizer: Callable,
        lr_schedule: Callable[[int], float],
        log: MemberLog | None = None,
    ):
        super().__init__()
        if members.size != 1:
            raise ValueError(f"trajectory tasks train one model per run: use ensemble.size=1, not {members.size}")
        self.save_hyperparameters(ignore=["members", "method", "optimizer", "lr_schedule", "log"])
        self.method = method
        self.model = method.wrap_model(members.model)
        self.make_optimizer, self.lr_schedule, self.log_members = optimizer, lr_schedule, log
        self.lam = 0.0
        self._sum, self._batches = 0.0, 0

    def on_train_epoch_start(self) -> None:
        self.lam = self.method.parameter(self.budget_epoch)
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._sum, self._batches = torch.zeros((), device=self.device), 0

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = self.method.regression_batch(batch, self.lam)
        loss = self.method.objective(self.model, x, y, nn.functional.mse_loss, self.lam)
        self._sum = self._sum + loss.detach()
        self._batches += 1
        return loss

    def on_after_backward(self) -> None:
        self.method.after_backward(self.model)

    @torch.no_grad()
    def _mse(self, data) -> Tensor:
        model = self.method.eval_model(self.model)
        pred = model((data.mu.to(self.device), data.x0.to(self.device)))
        return nn.functional.mse_loss(pred, data.traj.to(self.device))

    def on_train_epoch_end(self) -> None:
        dm = self.trainer.datamodule
        metrics = {
            "train/objective": self._sum / max(self._batches, 1),
            "train/loss": self._mse(dm.train),
            "test/loss": self._mse(dm.test),
        }
        values = {k: float(v) for k, v in metrics.items()}
        row = step_columns(
            self.trainer.optimizers[0],
            self.budget_epoch,
            self.global_step,
            self._epoch_lr,
            self.method.parameter_name,
            self.lam,
        )
        row.update(values)
        row.update(self.method.logged())
        if self.log_members is not None:
            self.log_members.write(0, row)
        if not all(math.isfinite(v) for v in values.values()):
            self.mark_diverged()
            return
        self.log_dict({k: v for k, v in row.items() if "/" in k}, on_epoch=True, on_step=False)
