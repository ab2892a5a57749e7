"""The interface every method implements; the LightningModules call these hooks and know nothing else.

A training step of any LightningModule goes through the hooks in this order (DESIGN.md "Methods"):

    x, target = method.regression_batch(batch, lam)       # or classification_batch: what the data is (HT)
    loss = method.objective(model, x, target, loss_fn, lam)   # where and how the loss is evaluated (GC, HTA)
    loss.backward()
    method.after_backward(model)                          # the method's own update (GC's learned lambda)

A method that learns state of its own outside the model (GC's s and its optimizer) returns it from ``state_dict``
and takes it back in ``load_state_dict``: the LightningModules store it in the checkpoint, so that a resumed run
goes on from where it stopped. State inside the module ``wrap_model`` returned (HTA's copies) is the model's own
and needs neither.

``model`` is what ``wrap_model`` returned (HTA's two coupled copies); evaluation and test metrics use
``eval_model(model)`` (HTA's theta). ``lam`` is ``parameter(epoch)`` for the epoch, logged as ``parameter_name``.
Every hook has a default that leaves training as it would be without any method, so a method overrides only the
hooks it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn


class Method:
    """A way of moving a homotopy parameter along a schedule while training.

    Epochs passed to the hooks count the target budget: epoch 0 is the first epoch every method spends on the
    budget shared by all methods; negative epochs are the method's own pre-training (``source_epochs``), which
    is not part of that budget.
    """

    name: str = "method"
    source_epochs: int = 0
    #: The name under which the homotopy parameter is logged (None: nothing to log).
    parameter_name: str | None = "homotopy/lambda"

    def parameter(self, epoch: int) -> float:
        """The homotopy parameter during ``epoch``."""
        raise NotImplementedError

    def setup(self, datamodule: Any) -> None:
        """Called once before training with the prepared datamodule."""

    # -- data: before the forward pass --------------------------------------------------------------------------
    def regression_batch(self, batch: Any, parameter: float) -> tuple[Any, Any]:
        """Map a raw regression batch to (inputs, targets) for the current parameter (default: the batch's first
        entry and its last, the target task's targets: ``(x, y)``, or the sine task's ``(x, y_source, y_target)``)."""
        return batch[0], batch[-1]

    def classification_batch(self, batch: Any, parameter: float) -> tuple[Tensor, Tensor]:
        """Map a raw classification batch to (inputs, targets); targets are class indices [B] or soft labels [B, C].

        Default: the target task's pair, unchanged: a batch is ``(x, y)``, or ``(x_source, y_source, x, y)`` when a
        datamodule serves a source task beside the target (HT classification); the last two are the target's.
        """
        return batch[-2], batch[-1]

    # -- the model and the objective ----------------------------------------------------------------------------
    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module the optimizer trains (default: ``model`` itself; HTA: two coupled copies of it)."""
        return model

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The network that predictions and test metrics use, given what ``wrap_model`` returned."""
        return model

    def objective(
        self, model: nn.Module, x: Tensor, target: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor], parameter: float
    ) -> Tensor:
        """The loss that is differentiated this step (default: ``loss_fn(model(x), target)``)."""
        return loss_fn(model(x), target)

    def after_backward(self, model: nn.Module) -> None:
        """Called after each backward pass, before the optimizer step."""

    def logged(self) -> dict[str, float]:
        """Extra per-epoch metrics of the method (e.g. GC's learned lambda), named ``split/name``."""
        return {}

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the method has learned outside the model, for the checkpoint (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` returned, when a run resumes from its checkpoint."""


class Plain(Method):
    """No homotopy: the model trains on the target task as it is (the baseline of every optimizer benchmark)."""

    name = "plain"
    parameter_name = None

    def __init__(self, name: str = "plain"):
        self.name = name

    def parameter(self, epoch: int) -> float:
        return 1.0
