"""The one training loop: a LightningModule that trains ``Members`` on any task with any method and optimizer.

A training step, the same for every task (docs/architecture.md "One loop"):

    batch = task.batch(raw)                                   # the datamodule's batch, with a member dimension
    x, target = method.batch(batch, lam)                      # what is trained on at the homotopy parameter (HT)
    losses = method.objective(model, x, target, task.loss, lam)   # [members] (GC: perturbed; HTA: coupled copies)
    (losses + weight_decay / 2 ||theta_i||^2) summed over living members -> backward
    method.after_backward(model)                              # GC's learned lambda

``model`` is what ``method.wrap_model(members)`` returned. At each epoch's end the loop evaluates the task's splits
with ``method.eval_model(model)`` and writes one row per member to ``metrics.csv``; the loggers get the median over
living members. A member whose metrics turn non-finite is masked out from then on (status ``diverged``); training
stops when none is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor

from optrepro.ensemble import Members
from optrepro.methods import Method
from optrepro.records import MemberLog
from optrepro.tasks import Task

TRAIN_METRICS = ("minibatch", "full")


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


def squared_norms(parameters, members: int) -> Tensor:
    """||theta_i||^2 of each member, ``[members]``: an ensemble's parameters are stacked along dim 0."""
    flat = [p.reshape(members, -1) if members > 1 else p.reshape(1, -1) for p in parameters]
    return torch.cat(flat, 1).pow(2).sum(1)  # a few kernel launches, not two per parameter


class TrainingLoop(L.LightningModule):
    """Trains ``members`` on ``task`` with ``method``, ``optimizer`` (a factory of parameters) and ``lr_schedule``.

    ``weight_decay``: lambda of the loss term lambda/2 ||theta||^2 (TH section 4.5.1), per member.
    ``train_metrics``: ``minibatch`` makes ``train/loss`` (and ``train/acc``) the epoch's mean over its minibatches
    of the loss (without the weight-decay term) of the outputs the objective scored, as Keras and the thesis report
    them; ``full`` evaluates the whole train split at the epoch's end instead and keeps the minibatch mean as
    ``train/objective``. A minibatch evaluated twice in one step (Step-Tuned SGD's closure) counts once.

    The checkpoint holds, beside the members and the optimizer, the method's own state (``Method.state_dict``: GC's
    learned s) and the epoch at which each member diverged, so a resumed run goes on with the same method state
    and a diverged member stays diverged.
    """

    def __init__(
        self,
        members: Members,
        task: Task,
        method: Method,
        optimizer: Callable,
        lr_schedule: Callable[[int], float],
        log: MemberLog | None = None,
        weight_decay: float = 0.0,
        train_metrics: str = "minibatch",
    ):
        super().__init__()
        if train_metrics not in TRAIN_METRICS:
            raise ValueError(f"train_metrics={train_metrics!r} is not one of {', '.join(TRAIN_METRICS)}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} is not allowed: it must be >= 0")
        # objects, not hyper-parameters (a packed loop's layout and fresh mask too: optrepro.packed)
        self.save_hyperparameters(
            ignore=["members", "task", "method", "optimizer", "lr_schedule", "log", "layout", "fresh"]
        )
        self.task, self.method, self.size = task, method, members.size
        self.model = method.wrap_model(members)
        self.make_optimizer, self.lr_schedule, self.log_members = optimizer, lr_schedule, log
        self.weight_decay, self.train_metrics = weight_decay, train_metrics
        self.register_buffer("alive", torch.ones(members.size, dtype=torch.bool))
        self._trains = self.alive  # the members a step trains: training_members(), refreshed at each epoch's start
        self.diverged_at: list[int | None] = [None] * members.size
        self.lam = 0.0
        self._scored: tuple[Tensor, Tensor] | None = None

    #: attributes set around every hook call (Lightning's ``_current_fx_name``, some 45 times a step) and by the
    #: training step: never a parameter, buffer or module, so ``nn.Module.__setattr__``'s checks (a few us each)
    #: are skipped
    _PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_scored", "_last_batch"})

    def __setattr__(self, name: str, value: Any) -> None:
        if name in TrainingLoop._PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def budget_epoch(self) -> int:
        """The epoch on the shared target budget: negative during a method's own source pre-training."""
        return self.current_epoch - self.method.source_epochs

    def setup(self, stage: str) -> None:
        self.method.setup(self.task, self.trainer.datamodule)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        return schedule_config(optimizer, self.lr_schedule, self.method.source_epochs)

    # -- training ------------------------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        if not self.alive.any():  # resumed from the checkpoint of a run whose members had all diverged
            self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        if self.budget_epoch == 0:
            self.start_target()
        self.lam = self.method.parameter(self.budget_epoch)
        self._trains = self.training_members()
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        # per member: loss sum, correct predictions; then minibatches and samples (no host sync per step)
        self._sums = torch.zeros(2, self.size, device=self.device)
        self._counts = torch.zeros(2, device=self.device)
        self._last_batch = -1

    def start_target(self) -> None:
        """The switch from a method's source pre-training to the target budget (epoch 0)."""
        if self.method.fresh_optimizer:
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()  # moments and step counts start again; the learning rate is the schedule's

    def training_members(self) -> Tensor:
        """``[members]``: the members this epoch trains (every living one; a packed ensemble's members start at
        their own epochs)."""
        return self.alive

    def member_columns(self, i: int, common: dict[str, Any]) -> dict[str, Any] | None:
        """The leading columns of member ``i``'s row this epoch (``step_columns``), or None when it writes no row."""
        return common

    def _score(self, out: Tensor, target: Tensor) -> Tensor:
        if self.task.accuracy:  # only accuracy reads the scored outputs back
            self._scored = (out.detach(), target)
        return self.task.loss(out, target)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, target = self.method.batch(self.task.batch(batch), self.lam)
        self._scored = None
        losses = self.method.objective(self.model, x, target, self._score, self.lam)
        if batch_idx != self._last_batch:
            self._last_batch = batch_idx
            # add_ on the row: ``t[0] += v`` would also copy the row onto itself
            self._sums[0].add_(losses.detach().float())
            self._counts[0].add_(1)
            if self.task.accuracy and self._scored is not None:
                out, scored_target = self._scored
                self._sums[1].add_(self.task.correct(out, scored_target))
                self._counts[1].add_(out.shape[1])
        if self.weight_decay:
            losses = losses + self.weight_decay / 2 * squared_norms(self.model.parameters(), self.size)
        keep = self._trains & (losses.detach() * 0 == 0)  # finite: x * 0 is 0 for finite x only (isfinite: 4 ops)
        return torch.where(keep, losses, torch.zeros_like(losses)).sum()

    def on_after_backward(self) -> None:
        self.method.after_backward(self.model)

    # -- evaluation ----------------------------------------------------------------------------------------------
    def _reduce(self, t: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(t, reduce_op="sum") if self.trainer.world_size > 1 else t

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, Tensor]:
        """Per-member metrics of ``eval_model`` over the whole ``split``, in eval mode (sums reduced over ranks)."""
        model = self.method.eval_model(self.model)
        was_training = model.training
        model.eval()
        result = self.task.evaluate(model, self.trainer.datamodule, split, self.device)
        model.train(was_training)
        result.sums = {k: self._reduce(v) for k, v in result.sums.items()}
        result.count = self._reduce(result.count.to(self.device))
        return result.means(split)

    def epoch_metrics(self) -> dict[str, Tensor]:
        """This epoch's metrics, each ``[members]``."""
        sums, counts = self._reduce(self._sums), self._reduce(self._counts)
        minibatch = {"train/loss": sums[0] / counts[0].clamp(min=1)}
        if self.task.accuracy:
            minibatch["train/acc"] = sums[1] / counts[1].clamp(min=1)
        if self.train_metrics == "full":
            metrics = {**self.evaluate("train"), "train/objective": minibatch["train/loss"]}
        else:
            metrics = minibatch
        for split in self.task.splits:
            if split != "train":
                metrics.update(self.evaluate(split))
        return metrics

    def on_train_epoch_end(self) -> None:
        values = {k: v.float().cpu() for k, v in self.epoch_metrics().items()}  # one host sync per epoch
        finite = torch.stack([torch.isfinite(v) for v in values.values()]).all(0)  # the model's, not the method's
        alive = self.alive.cpu()
        newly_dead = alive & ~finite
        self.alive &= finite.to(self.alive.device)
        extras = self.method.logged()
        optimizer = self.trainer.optimizers[0]
        common = step_columns(
            optimizer, self.budget_epoch, self.global_step, self._epoch_lr, self.method.parameter_name, self.lam
        )
        for i in range(self.size):
            columns = self.member_columns(i, common) if alive[i] or newly_dead[i] else None
            if columns is None:
                continue
            if self.log_members is not None:
                self.log_members.write(i, {**columns, **{k: float(v[i]) for k, v in values.items()}, **extras})
            if newly_dead[i]:
                self._mark_diverged(i, self.budget_epoch)
        living = alive & finite
        if living.any():
            medians = {k: v[living].median() for k, v in values.items()}
            extra = {self.method.parameter_name: self.lam} if self.method.parameter_name else {}
            logged = {**medians, **extras, **extra}
            self.log("train/loss", logged.pop("train/loss"), prog_bar=True, on_epoch=True, rank_zero_only=True)
            self.log_dict(logged, on_epoch=True, on_step=False, rank_zero_only=True)
        else:
            self.trainer.should_stop = True

    def _mark_diverged(self, i: int, epoch: int) -> None:
        if self.diverged_at[i] is None:
            self.diverged_at[i] = epoch
        if self.log_members is not None:
            self.log_members.mark_diverged(i, self.diverged_at[i])

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["method_state"] = self.method.state_dict()
        checkpoint["diverged_at_epoch"] = list(self.diverged_at)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # marked here, not in on_train_start: a checkpoint of the last epoch resumes with no training at all
        self.method.load_state_dict(checkpoint.get("method_state", {}))
        for i, epoch in enumerate(checkpoint.get("diverged_at_epoch") or []):
            if epoch is not None:
                self._mark_diverged(i, epoch)
