"""LightningModules: the training loop's side of a task, method-agnostic."""

from optrepro.modules.autoencoding import AutoencodingModule
from optrepro.modules.classification import ClassificationModule
from optrepro.modules.regression import RegressionModule
from optrepro.modules.trajectory import TrajectoryModule

__all__ = ["AutoencodingModule", "ClassificationModule", "RegressionModule", "TrajectoryModule"]
