"""HTA Table 1: the test function of HTA eq. 33-34, the homotopy of eq. 35, and the n = 2 table at full size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from optrepro.methods.schedules import stepped_range
from optrepro.toys.hta_function import homotopy_objective, nonconvex_f, nonconvex_grad, table_1


def nonconvex_f_values_by_hand():
    """x = 1 is the global minimum (f = 0); x = (5, 1): y = (2, 1), f = (pi/2)(2 - 1)^2 [1 + 10 sin^2(pi)] = pi/2."""
    assert nonconvex_f(np.ones(6)) == pytest.approx(0.0, abs=1e-12)
    assert nonconvex_f(np.array([5.0, 1.0])) == pytest.approx(math.pi / 2)
    # x = (3, 1): y = (1.5, 1), f = (pi/2){10 sin^2(1.5 pi) + 0.25 (1 + 0)} = (pi/2)(10.25)
    assert nonconvex_f(np.array([3.0, 1.0])) == pytest.approx(math.pi / 2 * 10.25)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_gradients_match_finite_differences(n):
    rng = np.random.default_rng(n)
    x = rng.normal(scale=3, size=n)
    assert check_grad(nonconvex_f, nonconvex_grad, x) < 1e-5
    z, anchor = rng.normal(size=2 * n), rng.normal(size=n)
    value = lambda z: homotopy_objective(z, 0.3, anchor, 10, 1)[0]  # noqa: E731
    grad = lambda z: homotopy_objective(z, 0.3, anchor, 10, 1)[1]  # noqa: E731
    assert check_grad(value, grad, z) < 1e-4


def test_homotopy_objective_is_eq_35_by_hand():
    """n = 2: F = f(x) + L (x_1 - t_1)^2 + f(y) + L (y_2 - t_2)^2 + (1/L) ||x - y||^2."""
    x, y, t, big_l = np.array([2.0, 0.5]), np.array([1.5, 3.0]), np.array([4.0, -1.0]), 0.4
    expected = nonconvex_f(x) + big_l * 2.0**2 + nonconvex_f(y) + big_l * 4.0**2 + (0.25 + 6.25) / big_l
    assert homotopy_objective(np.concatenate([x, y]), big_l, t, 10, 1)[0] == pytest.approx(expected)


def test_l_path():
    assert stepped_range(0.9, 0.1, 0.1) == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])


def test_l_path_that_misses_its_stop_is_refused(tmp_path):
    """0.9 down to 0.1 in steps of 0.3 misses 0.1 (0.9, 0.6, 0.3, 0.0 would divide by L = 0): refused."""
    homotopies = [{"label": "bad", "anchor": "zero", "L": {"start": 0.9, "stop": 0.1, "step": 0.3}}]
    with pytest.raises(ValueError, match="whole number of steps"):
        table_1(tmp_path, 0, [{"n": 2, "grid": [1]}], homotopies, starts=1)


def test_table_1_for_n_2_at_full_size(tmp_path):
    """BFGS alone reaches the global minimum from 24 of the 36 starts of [0..5]^2, the paper's count; the homotopy
    anchored at the start (eq. 35 as written) keeps x_1 in the basin it starts in (x_1 = 4, 5 end at 4.96), so it
    also gets 24, not the paper's 36; anchored at t = 0 with L from 2 down to 0.1 it gets all 36."""
    homotopies = [
        {"label": "start", "anchor": "init", "L": {"start": 0.9, "stop": 0.1, "step": 0.1}},
        {"label": "zero", "anchor": "zero", "L": {"start": 2.0, "stop": 0.1, "step": 0.1}},
    ]
    metrics = table_1(tmp_path, 0, [{"n": 2, "grid": [0, 1, 2, 3, 4, 5]}], homotopies, starts=4096)
    table = pd.read_csv(tmp_path / "table.csv").set_index("method")
    assert (table.starts == 36).all()
    assert table.loc["plain", "global_minimum"] == table.loc["plain", "paper"] == 24
    assert table.loc["start", "global_minimum"] == 24 and table.loc["start", "paper"] == 36
    assert table.loc["zero", "global_minimum"] == 36
    assert metrics["t1/plain_hits_n2"] == 24 and metrics["t1/homotopy2_hits_n2"] == 36
    starts = pd.read_csv(tmp_path / "starts.csv")
    missed = starts[(starts.method == "plain") & ~starts.hit].start.map(lambda s: float(s.split()[0]))
    assert set(missed) == {4.0, 5.0}  # x_1 = 4 and 5 lie in the basin of y_1 = 2 (x_1 = 5)
