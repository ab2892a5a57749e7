"""Image classification with any method and optimizer: one model per run (TH chapter 4's benchmarks, HT section 5.2).

A training step goes through the method's hooks (``methods/base.py``): ``classification_batch`` -> ``objective``
(cross-entropy, plus the weight-decay term lambda/2 ||theta||^2 of TH section 4.5.1) -> backward ->
``after_backward``; evaluation uses ``eval_model``. Per-epoch rows of ``metrics.csv`` (DESIGN.md "One run"):
``epoch, step, grad_evals, [homotopy/lambda], lr, [optim/step_size, optim/curvature], train/loss, train/acc,
test/loss, test/acc`` and the method's ``logged()`` metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.methods import Method
from optrepro.modules.common import MethodModule, step_columns
from optrepro.records import MemberLog

TRAIN_METRICS = ("minibatch", "full")


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy against class indices [B] (int64) or soft labels [B, C] (probabilities: HT's interpolated
    targets); for one-hot soft labels both are the same number."""
    return F.cross_entropy(logits, target, reduction=reduction)


def correct_count(logits: Tensor, target: Tensor) -> Tensor:
    """How many predictions (argmax) match the target's class (argmax of soft labels)."""
    labels = target if target.dim() == 1 else target.argmax(1)
    return (logits.argmax(1) == labels).sum()


def weight_decay_term(parameters, weight_decay: float) -> Tensor | float:
    """lambda/2 ||theta||^2 over every trained parameter (TH section 4.5.1: weight decay as a loss term)."""
    if not weight_decay:
        return 0.0
    flat = torch.cat([p.reshape(-1) for p in parameters])  # a few kernel launches, not two per parameter
    return weight_decay / 2 * flat.pow(2).sum()


class ClassificationModule(MethodModule):
    """Trains ``model`` (through ``method.wrap_model``) with ``optimizer`` and ``lr_schedule``; evaluates at each
    epoch end.

    ``train/loss`` and ``train/acc`` are, by default (``train_metrics="minibatch"``), the mean over the epoch's
    minibatches of the loss (without the weight-decay term) and the accuracy of the outputs the objective scored,
    as Keras and the thesis report them; ``train_metrics="full"`` evaluates the whole train split at epoch end
    instead (and keeps the minibatch mean as ``train/objective``). A minibatch evaluated twice in one step
    (Step-Tuned SGD's closure) counts once. ``test/*`` evaluates ``method.eval_model`` on the test split in eval
    mode. Under DDP every rank evaluates its shard and the sums are reduced. A non-finite metric ends the run with
    status ``diverged`` (checked once per epoch: no host sync per step).
    """

    #: whether rows carry train/acc and test/acc (the auto-encoder's do not)
    has_accuracy = True

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        optimizer: Callable,
        lr_schedule: Callable[[int], float],
        log: MemberLog | None = None,
        weight_decay: float = 0.0,
        train_metrics: str = "minibatch",
        compile: bool = False,
    ):
        super().__init__()
        if train_metrics not in TRAIN_METRICS:
            raise ValueError(f"train_metrics={train_metrics!r} is not one of {', '.join(TRAIN_METRICS)}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} is not allowed: it must be >= 0")
        self.save_hyperparameters(ignore=["model", "method", "optimizer", "lr_schedule", "log"])
        self.method = method
        self.model = method.wrap_model(torch.compile(model) if compile else model)
        self.make_optimizer, self.lr_schedule, self.log_members = optimizer, lr_schedule, log
        self.weight_decay, self.train_metrics = weight_decay, train_metrics
        self.lam = 0.0
        self._scored: tuple[Tensor, Tensor] | None = None

    # -- what is learned: subclasses change these -----------------------------------------------------------------
    def target(self, x: Tensor, target: Tensor) -> Tensor:
        return target

    def loss(self, out: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        return cross_entropy(out, target, reduction)

    # -- training ------------------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.lam = self.method.parameter(self.budget_epoch)
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._sums = torch.zeros(4, device=self.device)  # loss, minibatches, correct, samples
        self._last_batch = -1

    def _score(self, out: Tensor, target: Tensor) -> Tensor:
        self._scored = (out.detach(), target)
        return self.loss(out, target)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, target = self.method.classification_batch(batch, self.lam)
        target = self.target(x, target)
        self._scored = None
        loss = self.method.objective(self.model, x, target, self._score, self.lam)
        if batch_idx != self._last_batch:  # in-place adds on the device: no host sync per step
            self._last_batch = batch_idx
            self._sums[0] += loss.detach().float()
            self._sums[1] += 1
            if self.has_accuracy and self._scored is not None:
                out, scored_target = self._scored
                self._sums[2] += correct_count(out, scored_target)
                self._sums[3] += len(out)
        return loss + weight_decay_term(self.model.parameters(), self.weight_decay)

    def on_after_backward(self) -> None:
        self.method.after_backward(self.model)

    # -- evaluation ----------------------------------------------------------------------------------------------
    def _reduce(self, t: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(t, reduce_op="sum") if self.trainer.world_size > 1 else t

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, Tensor]:
        """Mean loss (and accuracy) of ``eval_model`` over the whole ``split``, in eval mode."""
        model = self.method.eval_model(self.model)
        was_training = model.training
        model.eval()
        sums = torch.zeros(3, device=self.device)  # loss, correct, samples
        for x, y in self.trainer.datamodule.eval_batches(split):
            x, y = x.to(self.device), y.to(self.device)
            target = self.target(x, y)
            out = model(x)
            sums[0] += self.loss(out, target, "sum")
            if self.has_accuracy:
                sums[1] += correct_count(out, target)
            sums[2] += len(y)
        model.train(was_training)
        sums = self._reduce(sums)
        metrics = {f"{split}/loss": sums[0] / sums[2]}
        if self.has_accuracy:
            metrics[f"{split}/acc"] = sums[1] / sums[2]
        return metrics

    def on_train_epoch_end(self) -> None:
        sums = self._reduce(self._sums)
        minibatch = {"train/loss": sums[0] / sums[1].clamp(min=1)}
        if self.has_accuracy:
            minibatch["train/acc"] = sums[2] / sums[3].clamp(min=1)
        if self.train_metrics == "full":
            metrics = {**self.evaluate("train"), "train/objective": minibatch["train/loss"]}
        else:
            metrics = minibatch
        metrics.update(self.evaluate("test"))
        values = {k: float(v) for k, v in metrics.items()}  # one host sync per epoch
        finite = all(math.isfinite(v) for v in values.values())  # the model's metrics, not the method's extras
        values.update(self.method.logged())
        optimizer = self.trainer.optimizers[0]
        row = step_columns(
            optimizer, self.budget_epoch, self.global_step, self._epoch_lr, self.method.parameter_name, self.lam
        )
        row.update(values)
        if self.log_members is not None:
            self.log_members.write(0, row)
        extra = {self.method.parameter_name: self.lam} if self.method.parameter_name else {}
        self.log_dict({**values, **extra}, on_epoch=True, on_step=False, rank_zero_only=True)  # already reduced
        if not finite:
            self.mark_diverged()
