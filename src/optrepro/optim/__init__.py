"""Optimizers (INNA, Step-Tuned SGD) and step-size schedules, usable without the rest of the project."""

from optrepro.optim.inna import INNA
from optrepro.optim.step_tuned import StepTunedSGD

__all__ = ["INNA", "StepTunedSGD"]
