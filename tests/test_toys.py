"""The thesis's two-dimensional INNA experiments: gradients, the saddle-escape statistics, presets and figures."""

import math

import pandas as pd
import pytest
import torch

from optrepro.config import compose, experiment_names
from optrepro.optim import INNA
from optrepro.report.cli import main as report_main
from optrepro.toys import inna_toys as toys
from optrepro.train import run

TH_PRESETS = [n for n in experiment_names() if n.startswith("th/")]


@pytest.mark.parametrize(
    ("objective", "grad"),
    [
        (toys.rosenbrock_ns, toys.rosenbrock_ns_grad),
        (toys.quadratic, toys.quadratic_grad),
        (toys.saddle, toys.saddle_grad),
    ],
)
def test_gradients_match_autograd_away_from_kinks(objective, grad):
    t = torch.tensor([[0.7, -0.3], [-1.2, 1.9], [0.3, 0.8]], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(objective(t).sum(), t)
    torch.testing.assert_close(grad(t.detach()), auto)


def test_first_inna_step_on_the_quadratic_is_a_gradient_step():
    rows = [torch.tensor([[1.0, 1.0]], dtype=torch.float64)]
    path, _ = toys.descend(rows, toys.quadratic_grad, toys.inna_settings([(2.0, 0.1)], 0.01), 1)
    # grad J(1, 1) = (2, 4): theta_1 = (1 - 0.02, 1 - 0.04)
    torch.testing.assert_close(path[1, 0], torch.tensor([0.98, 0.96], dtype=torch.float64))


def test_escape_iterations_counts_the_first_exit():
    path = torch.tensor([[[0.0, 0.0]], [[0.05, 0.0]], [[0.2, 0.0]], [[0.01, 0.0]]], dtype=torch.float64)
    assert toys.escape_iterations(path, 0.1).tolist() == [2]
    assert toys.escape_iterations(path[:2], 0.1).tolist() == [-1]


def test_saddle_escape_at_100_starts(tmp_path):
    metrics = toys.saddle_t3_1(
        tmp_path,
        seed=3,
        starts=100,
        std=1e-12,
        lr=0.02,
        iterations=2000,
        inna=[[0.5, 1.0], [1.0, 1.1]],
        escape_radius=0.1,
    )
    table = pd.read_csv(tmp_path / "table.csv")
    off, on = table[table.start_set.str.startswith("off")], table[table.start_set.str.startswith("on")]
    assert (off["share (0, 0)"] == 0).all()  # no run off the manifold ends at the saddle
    assert (on["share (0, 0)"] == 1).all()  # every run on it does
    # each minimum gets a share consistent with 1/2: 4 binomial standard deviations, sqrt(1/4/100) = 0.05
    assert ((off["share (-sqrt2, 0)"] - 0.5).abs() <= 4 * math.sqrt(0.25 / 100)).all()
    # GD leaves a ball of 0.1 after about ln(0.1 / 1e-12) / ln(1 + 8 lr) = 25.3 / 0.148 = 171 iterations
    assert metrics["saddle/mean_escape_gd"] == pytest.approx(171, abs=10)


def test_a_row_of_inna_settings_is_the_single_run():
    rows = [torch.tensor([[-1.0, 1.5]], dtype=torch.float64) for _ in range(2)]
    _, both = toys.descend(rows, toys.rosenbrock_ns_grad, toys.inna_settings([(0.5, 0.1), (1.3, 0.1)], 1e-4), 50)
    theta = torch.nn.Parameter(torch.tensor([[-1.0, 1.5]], dtype=torch.float64))
    opt = INNA([theta], lr=1e-4, alpha=1.3, beta=0.1)
    for _ in range(50):
        theta.grad = toys.rosenbrock_ns_grad(theta.detach())
        opt.step()
    torch.testing.assert_close(both[1], theta.detach()[0])


@pytest.mark.parametrize("name", TH_PRESETS)
def test_th_preset_runs_at_quick_and_reports(name, tmp_path):
    cfg = compose([f"experiment={name}", "profile=quick", f"paths.run_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert isinstance(metrics[cfg.monitor], float)
    assert report_main([str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "TH " in text
    assert list((tmp_path / "report").glob("th_*"))
