"""Learning-rate schedules: factors from their formulas, and the rates a run really used."""

import math

import pytest
from conftest import read_metrics

from optrepro.optim.schedules import ConstantRate, Cosine, Power
from optrepro.train import run


def test_cosine_from_one_to_min_over_the_budget():
    c = Cosine(total=100, min_factor=0.1)
    assert c(-5) == c(0) == 1.0  # source pre-training keeps the base rate
    assert c(50) == pytest.approx(0.1 + 0.9 * 0.5)  # cos(pi / 2) = 0
    assert c(100) == pytest.approx(0.1) and c(150) == pytest.approx(0.1)


def test_power_per_step_and_per_epoch():
    assert [Power(10, 0.5)(k) for k in (0, 3, 8)] == pytest.approx([1.0, 0.5, 1 / 3])
    thesis = Power(10, 0.501, "epoch")  # 1 / q^(1/2 + delta) for epoch q = 1, 2, ...
    assert thesis(0) == 1.0 and thesis(3) == pytest.approx(4**-0.501)
    assert ConstantRate(10)(7) == 1.0


def test_run_uses_the_schedule(make_cfg, tmp_path):
    run(make_cfg("schedule=cosine", "trainer.epochs=4", "homotopy.k=1", "homotopy.gamma=2"))
    rows = read_metrics(tmp_path / "run")
    # the logged lr is the rate of the epoch: 1e-3 * factor(epoch), the source epoch at the base rate
    expected = [1e-3] + [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert rows.lr.tolist() == pytest.approx(expected)


def test_run_with_a_per_step_schedule(make_cfg, tmp_path):
    run(make_cfg("schedule=inverse_power", "homotopy.source_epochs=0", "method=random_init"))
    rows = read_metrics(tmp_path / "run")
    # the rate of an epoch's first step k (5 steps per epoch before it): 1e-3 (k + 1)^-1/2
    assert rows.lr.tolist() == pytest.approx([1e-3 * (k - 5 + 1) ** -0.5 for k in rows.grad_evals])
