"""The data homotopy of HT: targets (eq. 14), the staircase of Algorithm 1, the Gaussian filter (eq. 21-22)."""

import math

import pytest
import torch
from conftest import read_metrics

from optrepro.methods import Constant, DataHomotopy, Staircase, gaussian_filter_targets, homotopy_targets
from optrepro.train import run


def test_targets_move_from_source_to_target():
    y_s, y_t = torch.tensor([2.0, -1.0]), torch.tensor([4.0, 3.0])
    assert torch.equal(homotopy_targets(y_s, y_t, 0.0), y_s)
    assert torch.equal(homotopy_targets(y_s, y_t, 1.0), y_t)
    # (1 - 0.25) * 2 + 0.25 * 4 = 2.5 ; 0.75 * -1 + 0.25 * 3 = 0
    assert torch.allclose(homotopy_targets(y_s, y_t, 0.25), torch.tensor([2.5, 0.0]))


@pytest.mark.parametrize(("gamma", "k"), [(10, 200), (4, 3), (1, 5)])
def test_staircase_first_and_last_epoch_of_each_step(gamma, k):
    lam = Staircase(gamma, k)
    for i in range(1, gamma + 1):  # step i covers epochs (i-1)k .. ik-1 at lambda = i / gamma
        first, last = (i - 1) * k, i * k - 1
        assert lam(first) == lam(last) == pytest.approx(i / gamma)
    assert lam(gamma * k - 1) == 1.0 and lam(gamma * k + 500) == 1.0


def test_source_pretraining_trains_the_source():
    method = DataHomotopy("data_homotopy", Staircase(10, 200), source_epochs=100)
    assert method.parameter(-100) == method.parameter(-1) == 0.0
    assert method.parameter(0) == pytest.approx(0.1)


def test_warm_start_is_the_homotopy_with_one_step():
    assert all(Staircase(1, 7)(e) == Constant(1.0)(e) for e in range(50))


def test_warm_start_run_equals_homotopy_run_with_gamma_one(make_cfg, tmp_path):
    run(make_cfg("method=warm_start", run_dir=tmp_path / "warm"))
    run(make_cfg("method=data_homotopy", "homotopy.gamma=1", run_dir=tmp_path / "homotopy"))
    warm, homotopy = read_metrics(tmp_path / "warm"), read_metrics(tmp_path / "homotopy")
    assert len(warm) == len(homotopy) == 1 + 3  # one source epoch, three target epochs
    for column in ("train/loss", "test/loss", "homotopy/lambda"):
        assert torch.allclose(torch.tensor(warm[column].values), torch.tensor(homotopy[column].values))


def test_gaussian_filter_weights_are_the_papers_density():
    # one source input, two target samples: w_i = exp(-d_i^2 / (2 xi^2)) / sqrt(2 pi xi^2), estimate = mean w_i y_i
    x, xt, yt, xi = torch.tensor([[0.5]]), torch.tensor([[0.5], [0.7]]), torch.tensor([[2.0], [4.0]]), 0.1
    w = [1 / math.sqrt(2 * math.pi * xi**2), math.exp(-0.04 / 0.02) / math.sqrt(2 * math.pi * xi**2)]
    expected = (w[0] * 2.0 + w[1] * 4.0) / 2
    assert gaussian_filter_targets(x, xt, yt, xi).item() == pytest.approx(expected, rel=1e-5)


def test_gaussian_filter_tends_to_the_exact_target():
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0.2, 0.8, 25).unsqueeze(-1)  # interior points of U(0, 1), where the density is 1
    errors = []
    for xi, m in ((0.05, 2_000), (0.01, 50_000), (0.003, 400_000)):
        xt = torch.rand(m, 1, generator=g, dtype=torch.float64)
        est = gaussian_filter_targets(x.double(), xt, torch.sin(7 * xt), xi)
        errors.append((est - torch.sin(7 * x.double())).abs().max().item())
    # bias ~ xi^2 |y''| / 2 and noise ~ 1 / sqrt(m xi): both shrink along this sequence
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_gaussian_filter_form_trains(make_cfg, tmp_path):
    metrics = run(make_cfg("method.form=gaussian_filter", "method.filter_std=0.05", "method.filter_samples=64"))
    assert metrics["runs/completed"] == 1


def test_a_fresh_optimizer_at_the_switch_clears_the_state_of_the_pre_training_and_changes_the_run(make_cfg, tmp_path):
    """homotopy.optimizer_at_switch=fresh: Adam's state is empty when target epoch 0 starts (its step count then
    restarts from 0), and the target curve differs from keeping the state; the source epochs are the same."""
    import pandas as pd

    from optrepro.loop import TrainingLoop
    from optrepro.train import run

    seen = {}
    original = TrainingLoop.on_train_epoch_start

    def record(self):
        original(self)
        if self.budget_epoch == 0:
            state = self.trainer.optimizers[0].state
            seen[self.method.fresh_optimizer] = [int(s["step"]) for s in state.values()] if state else []

    TrainingLoop.on_train_epoch_start = record
    try:
        for switch in ("keep", "fresh"):
            run(make_cfg("method=warm_start", f"homotopy.optimizer_at_switch={switch}", run_dir=tmp_path / switch))
    finally:
        TrainingLoop.on_train_epoch_start = original
    keep, fresh = (pd.read_csv(tmp_path / s / "metrics.csv") for s in ("keep", "fresh"))
    source_steps = int(keep.loc[keep.epoch == -1, "grad_evals"].iloc[0])  # Adam: one gradient per step
    assert seen[True] == [] and set(seen[False]) == {source_steps} and source_steps > 0
    source = keep.epoch < 0
    pd.testing.assert_frame_equal(keep[source], fresh[source])
    assert (keep.loc[~source, "train/loss"].to_numpy() != fresh.loc[~source, "train/loss"].to_numpy()).all()


def test_a_switch_that_is_neither_keep_nor_fresh_is_refused_by_key(make_cfg):
    from optrepro.train import run

    with pytest.raises(Exception, match="homotopy.optimizer_at_switch='reset' is not one of"):
        run(make_cfg("method=warm_start", "homotopy.optimizer_at_switch=reset"))
