"""Homotopy-parameter schedules (methods/schedules.py), shared by HT's lambda, GC's fixed lambda and HTA's L.

Each paper's own schedule is checked beside its method (test_homotopy, test_gc, test_hta, test_hta_function); these
are the cases the shared code has that no single paper's test reaches.
"""

import math

import pytest

from optrepro.methods import DataHomotopy, GaussianContinuation
from optrepro.methods.schedules import (
    Constant,
    Geometric,
    InversePower,
    LSchedule,
    Piecewise,
    Staircase,
    stepped_range,
)


def test_stepped_range_in_either_direction():
    assert stepped_range(0.1, 0.4, 0.1) == [0.1, 0.2, 0.3, 0.4]  # 0.1 + 2 * 0.1 = 0.30000000000000004, rounded
    assert stepped_range(0.9, 0.5, -0.2) == pytest.approx([0.9, 0.7, 0.5])  # the step's sign does not matter
    assert stepped_range(0.3, 0.3, 0.1) == [0.3]


@pytest.mark.parametrize(("start", "stop", "step"), [(0.9, 0.1, 0.3), (0.9, 0.1, 0.0)])
def test_stepped_range_refuses_a_step_that_does_not_divide_the_range(start, stop, step):
    with pytest.raises(ValueError, match="step"):
        stepped_range(start, stop, step)


def test_piecewise_holds_each_value_then_the_last():
    s = Piecewise([3.0, 2.0, 1.0], epochs_per_value=2)
    assert [s(e) for e in range(-1, 8)] == [3.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    assert s.epochs == 4
    with pytest.raises(ValueError):
        Piecewise([], epochs_per_value=1)
    with pytest.raises(ValueError):
        Piecewise([1.0], epochs_per_value=0)


def test_staircase_and_l_schedule_are_piecewise():
    stairs = Staircase(gamma=4, k=3)  # lambda = 1/4, 2/4, 3/4, 1 for 3 epochs each
    assert stairs.values == [0.25, 0.5, 0.75, 1.0] and stairs.epochs == 9
    rising = LSchedule(start=0.1, stop=0.3, step=0.1, epochs_per_value=1)
    assert [rising(e) for e in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_closed_form_schedules():
    assert Constant(2.5)(0) == Constant(2.5)(99) == 2.5  # any value: GC's lambda_0 may exceed 1
    assert [Geometric(3.0, 0.5)(i) for i in (0, 2)] == [3.0, 0.75]  # 3 * 0.5^2
    assert [InversePower(3.0, 1.0)(i) for i in (0, 2)] == [3.0, 1.0]  # 3 / (1 + 2)


def test_gc_constant_schedule_is_lambda_0():
    method = GaussianContinuation(schedule="constant", log_lambda0=1.0)
    assert method.parameter(0) == method.parameter(5) == pytest.approx(math.e)


def test_data_homotopy_refuses_lambda_outside_the_unit_interval():
    method = DataHomotopy("warm_start", Constant(1.5), source_epochs=2)
    assert method.parameter(-1) == 0.0  # source pre-training
    with pytest.raises(ValueError, match=r"lambda must lie in \[0, 1\]"):
        method.parameter(0)
