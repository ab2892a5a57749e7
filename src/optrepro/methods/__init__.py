"""Homotopy and continuation methods behind one small interface (DESIGN.md "Methods")."""

from optrepro.methods.base import Method, Plain
from optrepro.methods.data_homotopy import DataHomotopy, gaussian_filter_targets, homotopy_targets
from optrepro.methods.hta import HTA, CoupledCopies, LSchedule
from optrepro.methods.schedules import Constant, Staircase

__all__ = [
    "HTA",
    "Constant",
    "CoupledCopies",
    "DataHomotopy",
    "LSchedule",
    "Method",
    "Plain",
    "Staircase",
    "gaussian_filter_targets",
    "homotopy_targets",
]
