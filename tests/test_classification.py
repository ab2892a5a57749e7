"""ClassificationModule and AutoencodingModule: losses and terms against hand computations, and short runs on
generated images that write the per-epoch rows the contract lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict
from torch import nn

from optrepro.config import ConfigError, compose, validate
from optrepro.methods import Plain
from optrepro.modules import AutoencodingModule, ClassificationModule
from optrepro.modules.autoencoding import reconstruction_mse
from optrepro.modules.classification import correct_count, cross_entropy, weight_decay_term
from optrepro.train import run

TESTS = Path(__file__).parent


class TinyNet(nn.Module):
    """A two-layer conv net, small enough for runs of a second."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x):
        return self.net(x)


class ScaledIdentity(nn.Module):
    """x -> w * flatten(x) with w = 1: a perfect auto-encoder, where the loss and its gradient are zero."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * x.flatten(1)


class NaNNet(TinyNet):
    """Outputs NaN: its run must end as diverged."""

    def forward(self, x):
        return super().forward(x) * float("nan")


def image_cfg(tmp_path: Path, *overrides: str, model: str = "TinyNet"):
    cfg = compose(
        [
            "task=cifar10",
            "method=plain",
            "task.synthetic=true",
            "task.max_train_samples=128",
            "trainer.epochs=2",
            "task.batch_size=32",
            f"paths.run_dir={tmp_path / 'run'}",
            *overrides,
        ]
    )
    with open_dict(cfg):
        cfg.model = OmegaConf.create(
            {
                "_target_": f"test_classification.{model}",
                "in_channels": "${task.channels}",
                "num_classes": "${task.num_classes}",
            }
        )
    return cfg


def test_a_short_run_writes_the_contract_columns_and_counts_two_evals_per_step_tuned_step(tmp_path):
    cfg = image_cfg(tmp_path, "optimizer=step_tuned_sgd", "trainer.limit_batches=3")
    metrics = run(cfg)
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    columns = [
        "epoch",
        "step",
        "grad_evals",
        "lr",
        "optim/step_size",
        "optim/curvature",
        "train/loss",
        "train/acc",
        "test/loss",
        "test/acc",
    ]
    assert list(rows.columns) == columns
    assert rows["epoch"].tolist() == [0, 1] and rows["step"].tolist() == [3, 6]
    assert (rows["grad_evals"] == 2 * rows["step"]).all()
    assert ((rows["train/acc"] >= 0) & (rows["train/acc"] <= 1)).all()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and metrics["runs/completed"] == 1
    assert summary["final"]["test/loss"] == pytest.approx(rows["test/loss"].iloc[-1])


def test_full_train_metrics_equal_the_minibatch_means_when_the_model_does_not_move(tmp_path):
    # lr 1e-30: the model is the same at every step, and 128 samples make four equal batches of 32, so the mean of
    # the minibatch losses is the loss on the whole train split, which train_metrics=full evaluates at epoch end
    cfg = image_cfg(tmp_path, "optimizer=sgd", "optimizer.lr=1e-30", "train_metrics=full", "trainer.epochs=1")
    run(cfg)
    row = pd.read_csv(tmp_path / "run" / "metrics.csv").iloc[0]
    assert {"train/objective", "train/acc", "test/acc"} <= set(row.index)
    assert row["train/loss"] == pytest.approx(row["train/objective"], rel=1e-5)


def test_a_nan_loss_ends_the_run_as_diverged(tmp_path):
    metrics = run(image_cfg(tmp_path, "trainer.epochs=3", model="NaNNet"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_epoch"] == 0
    assert metrics["runs/diverged"] == 1
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 1  # stopped after the first epoch


def test_a_diverged_run_run_again_resumes_as_diverged_at_the_same_epoch(tmp_path):
    # its checkpoint is written when it stops at epoch 0; the rerun resumes from it and must not train on
    cfg = image_cfg(
        tmp_path, "trainer.epochs=3", "trainer.checkpoint=true", "trainer.checkpoint_every=5", model="NaNNet"
    )
    run(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    metrics = run(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_epoch"] == 0
    assert metrics["runs/diverged"] == 1
    assert pd.read_csv(tmp_path / "run" / "metrics.csv").epoch.tolist() == [0]


def test_image_tasks_refuse_an_ensemble(tmp_path):
    with pytest.raises(ConfigError, match="ensemble.size=3 is not allowed for task.module=classification"):
        validate(image_cfg(tmp_path, "ensemble.size=3"))


def test_ddp_is_refused_for_tasks_that_do_not_shard_their_data():
    with pytest.raises(ConfigError, match="trainer.strategy=ddp is not allowed for task.module=regression"):
        validate(compose(["experiment=ht/sine_f1", "trainer=ddp"]))
    validate(compose(["task=cifar10", "method=plain", "trainer=ddp"]))


def test_soft_labels_give_the_cross_entropy_of_class_indices():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels = torch.tensor([0, 2])
    by_hand = -(logits.log_softmax(1)[torch.arange(2), labels]).mean()
    assert cross_entropy(logits, labels) == pytest.approx(by_hand.item())
    assert cross_entropy(logits, F.one_hot(labels, 3).float()) == pytest.approx(by_hand.item())
    # a soft label [0.5, 0.5, 0]: the mean of the two classes' log-losses (HT's interpolated targets)
    soft = torch.tensor([[0.5, 0.5, 0.0]])
    want = -(logits[:1].log_softmax(1)[0, :2]).mean()
    assert cross_entropy(logits[:1], soft) == pytest.approx(want.item())
    assert correct_count(logits, F.one_hot(labels, 3).float()) == correct_count(logits, labels) == 2


def test_the_weight_decay_term_is_half_lambda_times_the_squared_norm():
    torch.manual_seed(0)
    model = TinyNet(3, 10)
    lam = 1e-4
    by_hand = lam / 2 * sum(float((p.detach() ** 2).sum()) for p in model.parameters())
    assert float(weight_decay_term(model.parameters(), lam).detach()) == pytest.approx(by_hand, rel=1e-6)
    # and the module adds exactly that to the cross-entropy it trains on
    module = ClassificationModule(model, Plain(), torch.optim.SGD, lambda t: 1.0, weight_decay=lam)
    module._sums, module._last_batch = torch.zeros(4), -1
    x, y = torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4])
    loss = module.training_step((x, y), 0).detach()
    assert float(loss) == pytest.approx(float(F.cross_entropy(model(x), y).detach()) + by_hand, rel=1e-6)
    assert module._sums.tolist()[1] == 1 and module._sums.tolist()[3] == 5  # one minibatch of five samples


def test_the_autoencoder_loss_is_the_mse_of_flattened_input_and_output():
    x = torch.randn(4, 1, 28, 28)
    out = torch.randn(4, 784)
    by_hand = sum(((out[i] - x[i].flatten()) ** 2).sum() / 784 for i in range(4)) / 4
    assert float(reconstruction_mse(out, x)) == pytest.approx(float(by_hand), rel=1e-6)
    assert float(reconstruction_mse(out, x, "sum")) == pytest.approx(4 * float(by_hand), rel=1e-6)

    class Decoder(nn.Module):
        def forward(self, inputs):
            return out

    module = AutoencodingModule(Decoder(), Plain(), torch.optim.SGD, lambda t: 1.0)
    module._sums, module._last_batch = torch.zeros(4), -1
    loss = module.training_step((x, torch.zeros(4, dtype=torch.long)), 0)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)


def test_an_autoencoding_run_writes_loss_columns_without_accuracy(tmp_path):
    cfg = image_cfg(tmp_path, "task=mnist", "task.module=autoencoding", "task.normalize=false")
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "test_classification.ScaledIdentity"})
    run(cfg)
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(rows.columns) == ["epoch", "step", "grad_evals", "lr", "train/loss", "test/loss"]
    assert rows["test/loss"].abs().max() < 1e-12  # a perfect reconstruction


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_finishes_and_writes_its_summary(tmp_path):
    extra = tmp_path / "configs" / "model"
    extra.mkdir(parents=True)
    (extra / "tiny_test.yaml").write_text(
        "_target_: test_classification.TinyNet\nin_channels: ${task.channels}\nnum_classes: ${task.num_classes}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    command = [
        sys.executable,
        "-m",
        "optrepro.cli",
        "task=mnist5k",
        "method=plain",
        "model=tiny_test",
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.epochs=2",
        "task.max_train_samples=256",
        "task.batch_size=32",
        f"paths.run_dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert rows["step"].tolist() == [4, 8]  # 256 samples, two ranks of 128, batches of 32


@pytest.mark.slow
def test_a_th_preset_runs_with_ddp_on_two_cpu_processes(tmp_path):
    """Issue 4: a benchmark preset (TH Figure 4.6 (e), LeNet on CIFAR-10, generated data) under DDP with gloo."""
    command = [
        sys.executable,
        "-m",
        "optrepro.cli",
        "experiment=th/f4_6e",
        "profile=smoke",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"paths.run_dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert rows["step"].tolist() == [2]  # one epoch (smoke), limit_batches=2 on each rank
