"""The interface every method implements; the one training loop (``optrepro.loop``) calls these hooks and knows
nothing else.

Every training step of every task goes through the hooks in this order (docs/architecture.md "One loop"):

    x, target = method.batch(task.batch(raw), lam)               # what the data is (HT)
    losses = method.objective(model, x, target, task.loss, lam)  # where and how the loss is evaluated (GC, HTA)
    losses.sum().backward()                                      # [members]: each member its own gradient
    method.after_backward(model)                                 # the method's own update (GC's learned lambda)

Before training, ``requirements()`` says what the method needs of the task and the model (a source task, real
targets, a single member); a method that a task cannot serve is refused with the reason, never run as a no-op.

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

from optrepro.config import ConfigError

#: what a method may need, and how a run provides it (``check_applicable``)
NEEDS = {
    "source": "a task that serves a source task beside the target (task=sine, ht_mnist_fmnist, ht_mnist_cifar10)",
    "real_targets": "real-valued targets on shared inputs (task=sine)",
    "single_member": "one model per run (ensemble.size=1)",
}


class Method:
    """A way of moving a homotopy parameter along a schedule while training.

    Epochs passed to the hooks count the target budget: epoch 0 is the first epoch every method spends on the
    budget shared by all methods; negative epochs are the method's own pre-training (``source_epochs``), which
    is not part of that budget.
    """

    name: str = "method"
    source_epochs: int = 0
    #: start the target budget (epoch 0, after ``source_epochs`` of pre-training) with a fresh optimizer state
    fresh_optimizer: bool = False
    #: The name under which the homotopy parameter is logged (None: nothing to log).
    parameter_name: str | None = "homotopy/lambda"

    def parameter(self, epoch: int) -> float:
        """The homotopy parameter during ``epoch``."""
        raise NotImplementedError

    def requirements(self) -> dict[str, str]:
        """What this method needs (keys of ``NEEDS``), each with the reason (default: nothing)."""
        return {}

    def setup(self, task: Any, datamodule: Any) -> None:
        """Called once before training with the task object and the datamodule."""

    # -- data: before the forward pass --------------------------------------------------------------------------
    def batch(self, batch: Any, parameter: float) -> tuple[Any, Tensor]:
        """(inputs, targets) to train on from a task's ``Batch`` at the current parameter (default: the target
        task's pair, unchanged)."""
        return batch.x, batch.y

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
        """The loss of each member that is differentiated this step, ``[members]`` (default:
        ``loss_fn(model(x), target)``)."""
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


def check_applicable(method: Method, task: Any, members: int) -> None:
    """Refuse, before training, a method that this task or this number of members cannot serve."""
    has = {"source": task.has_source, "real_targets": task.real_targets, "single_member": members == 1}
    for need, why in method.requirements().items():
        if not has[need]:
            raise ConfigError(
                f"method={method.name} cannot train task={task.name}"
                + (f" with ensemble.size={members}" if need == "single_member" else "")
                + f": {why}, so it needs {NEEDS[need]}"
            )
