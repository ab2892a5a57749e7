"""The deep MLP of GC Figure 5 on its own, and the F5 preset on generated images with a fixed lambda schedule."""

import json
import math

import pandas as pd
import pytest
import torch

from optrepro.config import compose
from optrepro.models import DeepMLP
from optrepro.train import run


def test_shapes_depth_and_init():
    torch.manual_seed(0)
    model = DeepMLP(in_features=784, num_classes=10, hidden=50, layers=30)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 30
    assert (linears[0].in_features, linears[0].out_features, linears[-1].out_features) == (784, 50, 10)
    assert sum(isinstance(m, torch.nn.ReLU) for m in model.net) == 29
    for m in linears:
        assert float(m.bias.detach().abs().max()) == 0.0
        bound = math.sqrt(6 / (m.in_features + m.out_features))  # Xavier uniform: U(-bound, bound)
        w = m.weight.detach()
        assert float(w.abs().max()) <= bound
        assert float(w.var()) == pytest.approx(bound**2 / 3, rel=0.2)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_softmax_flag():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    with_softmax = DeepMLP(784, 10, layers=3, softmax=True)
    logits = DeepMLP(784, 10, layers=3, softmax=False)
    logits.load_state_dict(with_softmax.state_dict())
    probs = with_softmax(x)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    torch.testing.assert_close(probs, logits(x).softmax(-1))
    # the authors' loss: cross-entropy on top of the softmax output, i.e. a second softmax
    y = torch.tensor([0, 1, 2, 3])
    quirk = torch.nn.functional.cross_entropy(probs, y)
    torch.testing.assert_close(quirk, -probs.log_softmax(-1)[torch.arange(4), y].mean())


def test_a_fixed_schedule_runs_to_the_end_with_lambda_on_its_schedule(tmp_path):
    """GC on a fixed schedule has no s-gradient to log; its run must complete (not be taken for diverged) with
    lambda_i = lambda_0 gamma^i at the start of epoch i (GC section 2.2)."""
    overrides = ["experiment=gc/mnist_mlp_f5", "profile=smoke", "profile.count_scale=1", "trainer.epochs=3"]
    overrides += ["+continuation.schedule=geometric", "+continuation.gamma=0.5", f"paths.run_dir={tmp_path}"]
    metrics = run(compose(overrides))
    assert metrics["runs/completed"] == 1
    assert json.loads((tmp_path / "summary.json").read_text())["diverged_at_epoch"] is None
    rows = pd.read_csv(tmp_path / "metrics.csv")
    lam0 = math.exp(-13.0)
    assert rows["homotopy/lambda"].tolist() == pytest.approx([lam0, lam0 / 2, lam0 / 4], rel=1e-12)
    assert "homotopy/s_grad" not in rows
