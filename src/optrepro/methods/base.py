"""The interface every method implements; the LightningModules call these hooks and know nothing else."""

from __future__ import annotations

from typing import Any


class Method:
    """A way of moving a homotopy parameter along a schedule while training.

    Epochs passed to the hooks count the target budget: epoch 0 is the first epoch every method spends on the
    budget shared by all methods; negative epochs are the method's own pre-training (``source_epochs``), which
    is not part of that budget.
    """

    name: str = "method"
    source_epochs: int = 0
    #: The name under which the homotopy parameter is logged.
    parameter_name: str = "homotopy/lambda"

    def parameter(self, epoch: int) -> float:
        """The homotopy parameter during ``epoch``."""
        raise NotImplementedError

    def setup(self, datamodule: Any) -> None:
        """Called once before training with the prepared datamodule."""

    def regression_batch(self, batch: Any, parameter: float) -> tuple[Any, Any]:
        """Map a raw batch to (inputs, targets) for the current parameter (default: the target task)."""
        raise NotImplementedError(f"{type(self).__name__} does not support regression tasks")
