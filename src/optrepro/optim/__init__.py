"""Optimizers (INNA, Step-Tuned SGD) and step-size schedules, usable without the rest of the project."""

from optrepro.optim.gv import ExactGV, ExpectedGV, StepTunedGD, StochasticGV, expected_curvature
from optrepro.optim.inna import INNA
from optrepro.optim.step_tuned import StepTunedSGD

__all__ = [
    "INNA",
    "StepTunedSGD",
    "StepTunedGD",
    "StochasticGV",
    "ExactGV",
    "ExpectedGV",
    "expected_curvature",
]
