"""Nothing is lost when a run is interrupted: a run stopped after some epochs and started again from its checkpoint
ends as the uninterrupted run does, for the method's own state (GC's learned lambda), image classification and the
data order, and a run that had diverged stays diverged. Sine regression is resumed in tests/test_runs.py."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import read_metrics

from optrepro.config import compose
from optrepro.data.ode import ODEDataModule
from optrepro.loop import TrainingLoop
from optrepro.train import run

CHECKPOINT_EVERY_EPOCH = ["trainer.checkpoint=true", "trainer.checkpoint_every=1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def interrupted_then_resumed(overrides: list[str], run_dir: Path, module_class, budget_epoch: int, monkeypatch):
    """Run until the end of ``budget_epoch``, raise there (after the epoch's row, before its checkpoint: a
    preempted node), then run the same command again, which resumes from the last checkpoint."""
    original = module_class.on_train_epoch_end

    def preempted(self):
        original(self)
        if self.budget_epoch == budget_epoch:
            raise RuntimeError("node preempted")

    cfg = compose([*overrides, f"paths.run_dir={run_dir}"])
    with monkeypatch.context() as patch:
        patch.setattr(module_class, "on_train_epoch_end", preempted)
        with pytest.raises(RuntimeError, match="preempted"):
            run(cfg)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    return run(cfg)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_an_interrupted_gc_run_resumes_its_learned_lambda(tmp_path, monkeypatch):
    """GC learns s (lambda = e^s) with its own Adam after the warm-up; the resumed run must go on with the same s,
    the same Adam moments and the same noise, and end with the uninterrupted run's lambda and losses."""
    overrides = [
        "experiment=gc/mnist_mlp_f5",
        "profile=smoke",  # generated MNIST-shaped images, 2 batches of 16 per epoch
        "profile.count_scale=1",  # the epochs below as given
        "trainer.epochs=4",
        "continuation.warmup_epochs=1",  # s frozen in target epoch 0, learned from epoch 1 on
        "optimizer.lr=1e-2",  # the weights move enough that a different noise draw shows in the losses
        *CHECKPOINT_EVERY_EPOCH,
    ]
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    run(compose([*overrides, f"paths.run_dir={straight_dir}"]))
    interrupted_then_resumed(overrides, resumed_dir, TrainingLoop, 2, monkeypatch)

    straight, resumed = read_metrics(straight_dir), read_metrics(resumed_dir)
    assert list(straight.epoch) == list(resumed.epoch) == [0, 1, 2, 3]
    lam0 = math.exp(-13.0)  # the preset's log_lambda0
    lam_end = straight["homotopy/lambda_end"]
    # not a vacuous comparison: lambda stayed at lambda_0 through the warm-up, then s moved in every epoch
    assert lam_end.iloc[0] == pytest.approx(lam0, rel=1e-6)
    assert all(abs(math.log(b / a)) > 1e-3 for a, b in zip(lam_end.iloc[:-1], lam_end.iloc[1:]))
    for column in ("homotopy/lambda", "homotopy/lambda_end", "homotopy/s_grad", "train/loss", "test/loss"):
        assert resumed[column].tolist() == pytest.approx(straight[column].tolist(), rel=1e-6), column
    assert summary(resumed_dir)["status"] == "completed"
    assert summary(resumed_dir)["final"] == pytest.approx(summary(straight_dir)["final"], rel=1e-6)


def test_an_interrupted_image_run_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    overrides = [
        "task=mnist5k",
        "model=lenet",
        "task.pad_to=32",  # LeNet-5 reads 32x32 images
        "task.height=32",
        "task.width=32",
        "method=plain",
        "optimizer=sgd",
        "optimizer.lr=0.05",
        "profile=smoke",  # generated images, 2 batches of 16 per epoch
        "profile.count_scale=1",  # the epochs below as given
        "trainer.epochs=4",
        *CHECKPOINT_EVERY_EPOCH,
    ]
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    expected = run(compose([*overrides, f"paths.run_dir={straight_dir}"]))
    metrics = interrupted_then_resumed(overrides, resumed_dir, TrainingLoop, 1, monkeypatch)

    straight, resumed = read_metrics(straight_dir), read_metrics(resumed_dir)
    assert list(straight.epoch) == list(resumed.epoch) == [0, 1, 2, 3]  # no row lost, none twice
    assert resumed.step.tolist() == straight.step.tolist() == [2, 4, 6, 8]  # the step counter resumed too
    # the model moved between epochs: equal curves are not equal because nothing trained
    assert straight["test/loss"].nunique() == 4
    for column in ("train/loss", "train/acc", "test/loss", "test/acc"):
        assert resumed[column].tolist() == pytest.approx(straight[column].tolist(), rel=1e-6), column
    assert {k: v for k, v in metrics.items() if "/" in k} == pytest.approx(
        {k: v for k, v in expected.items() if "/" in k}, rel=1e-6
    )


def test_a_diverged_trajectory_run_stays_diverged_when_run_again(tmp_path, monkeypatch):
    """A run whose loss turned non-finite at target epoch 1 stops there; running the same command again resumes
    from the checkpoint written when it stopped and must keep it diverged at epoch 1, its rows unchanged."""
    overrides = ["experiment=gc/lotka_volterra_f6", "profile=smoke", "profile.count_scale=1", "trainer.epochs=4"]
    overrides += ["method=plain", *CHECKPOINT_EVERY_EPOCH]
    cfg = compose([*overrides, f"paths.run_dir={tmp_path}"])
    original = TrainingLoop.evaluate

    def nan_from_epoch_1(self, split):
        metrics = original(self, split)
        return {k: v * float("nan") for k, v in metrics.items()} if self.budget_epoch >= 1 else metrics

    with monkeypatch.context() as patch:
        patch.setattr(TrainingLoop, "evaluate", nan_from_epoch_1)
        first = run(cfg)
    rows = read_metrics(tmp_path)
    assert first["runs/diverged"] == 1 and summary(tmp_path)["diverged_at_epoch"] == 1
    assert list(rows.epoch) == [0, 1] and math.isnan(rows["train/loss"].iloc[1])

    # the model itself is finite (only the evaluation was made NaN): without the checkpoint's record of the
    # divergence, the second run would train on to epoch 3 and call the run completed
    again = run(cfg)
    assert again["runs/diverged"] == 1 and again["runs/completed"] == 0
    assert summary(tmp_path)["status"] == "diverged" and summary(tmp_path)["diverged_at_epoch"] == 1
    assert read_metrics(tmp_path).equals(rows)


def test_ode_minibatch_order_follows_the_trainer_epoch_not_the_calls():
    """A resumed run asks for its first loader at its checkpoint's epoch: it must get that epoch's order."""
    dm = ODEDataModule("lotka_volterra", seeds=[0], batch_size=4)
    dm.setup()

    def order(epoch: int) -> list[int]:
        dm.trainer = SimpleNamespace(current_epoch=epoch)
        return [i for (mu, x0), traj in dm.train_dataloader() for i in _instances(dm, mu)]

    assert order(3) == order(3)  # the same epoch twice: the same order
    assert order(3) != order(0)
    assert sorted(order(3)) == list(range(len(dm.train)))  # every train trajectory once


def _instances(dm: ODEDataModule, mu: torch.Tensor) -> list[int]:
    """Indices into the train split of a batch's parameter rows (each instance has its own parameters)."""
    return [int((dm.train.mu == row).all(1).nonzero()) for row in mu]
