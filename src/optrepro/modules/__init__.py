"""LightningModules: the training loop's side of a task, method-agnostic."""

from optrepro.modules.regression import RegressionModule

__all__ = ["RegressionModule"]
