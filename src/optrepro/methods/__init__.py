"""Homotopy and continuation methods behind one small interface (docs/architecture.md "Methods")."""

from optrepro.methods.base import Method, Plain
from optrepro.methods.data_homotopy import (
    DataHomotopy,
    gaussian_filter_targets,
    homotopy_targets,
    mix_images,
    soft_labels,
)
from optrepro.methods.gaussian_continuation import GaussianContinuation
from optrepro.methods.hta import HTA, CoupledCopies
from optrepro.methods.schedules import Constant, Geometric, InversePower, LSchedule, Piecewise, Staircase

__all__ = [
    "HTA",
    "Constant",
    "CoupledCopies",
    "DataHomotopy",
    "GaussianContinuation",
    "Geometric",
    "InversePower",
    "LSchedule",
    "Method",
    "Piecewise",
    "Plain",
    "Staircase",
    "gaussian_filter_targets",
    "homotopy_targets",
    "mix_images",
    "soft_labels",
]
