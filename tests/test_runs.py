"""What a run leaves behind: metrics rows, summaries with status, divergence, skipping completed runs, W&B."""

import json

import pytest
from conftest import read_metrics

from optrepro.train import run


def test_run_writes_metrics_and_summary(make_cfg, tmp_path):
    metrics = run(make_cfg())
    run_dir = tmp_path / "run"
    rows = read_metrics(run_dir)
    # one row per epoch: 1 source epoch (epoch -1) then the 3-epoch target budget
    assert list(rows.epoch) == [-1, 0, 1, 2]
    assert list(rows["homotopy/lambda"]) == [0.0, 0.5, 1.0, 1.0]  # gamma = 2 steps of k = 1 epoch
    # 160 training samples in batches of 32: 5 gradient evaluations per epoch
    assert list(rows.grad_evals) == [5, 10, 15, 20]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["seed"] == 0 and summary["method"] == "data_homotopy"
    assert summary["final"]["train/loss"] == pytest.approx(rows["train/loss"].iloc[-1])
    assert summary["best"]["train/loss"] == pytest.approx(rows["train/loss"].min())
    assert {"config_hash", "git_revision", "versions", "wall_time_s", "config"} <= set(summary)
    assert metrics["train/loss"] == pytest.approx(rows["train/loss"].iloc[-1])


def test_non_finite_loss_marks_the_run_diverged(make_cfg, tmp_path):
    # Adam moves every weight by about lr per step: with lr = 1e20 the outputs overflow float32 at once
    metrics = run(make_cfg("optimizer.lr=1e20", "ensemble.size=2", "trainer.epochs=3"))
    assert metrics["runs/diverged"] == 2 and metrics["runs/completed"] == 0
    for seed in (0, 1):
        member = json.loads((tmp_path / "run" / f"seed={seed}" / "summary.json").read_text())
        assert member["status"] == "diverged"
        assert member["diverged_at_epoch"] == -1  # during the first (source) epoch
        assert len(read_metrics(tmp_path / "run" / f"seed={seed}")) == 1  # rows stop where it diverged
    ensemble = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert ensemble["kind"] == "ensemble" and ensemble["members"] == {"0": "diverged", "1": "diverged"}


def test_completed_run_is_skipped_and_a_changed_one_is_not(make_cfg, tmp_path, capsys):
    cfg = make_cfg()
    run(cfg)
    stamp = (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns
    run(cfg)
    assert "already completed, skipped" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns == stamp
    run(make_cfg("optimizer.lr=2e-3"))  # another config in the same directory runs again
    assert (tmp_path / "run" / "metrics.csv").stat().st_mtime_ns != stamp


def test_wandb_offline_run_holds_the_logged_metrics(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    metrics = run(make_cfg("logger=wandb"))
    assert metrics["runs/completed"] == 1
    from optrepro.wandb_runs import run_id

    records = list((tmp_path / "run" / "wandb").glob(f"offline-run-*/run-{run_id(tmp_path / 'run')}.wandb"))
    assert len(records) == 1  # the training run (the source pre-training is a W&B run of its own)
    data = records[0].read_bytes()
    for key in (b"train/loss", b"test/loss", b"homotopy/lambda"):
        assert key in data
    final = read_metrics(tmp_path / "run")["train/loss"].iloc[-1]
    assert repr(float(final)).encode() in data  # the last epoch's value, exactly as in metrics.csv


def test_wandb_failure_does_not_fail_the_run(make_cfg, monkeypatch):
    pytest.importorskip("wandb")
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no W&B today")

    monkeypatch.setattr(wandb, "init", broken)
    assert run(make_cfg("logger=wandb"))["runs/completed"] == 1


@pytest.mark.parametrize("crash", ["before_the_row", "after_the_row"])
def test_interrupted_run_resumes_from_its_checkpoint_and_ends_as_if_uninterrupted(
    make_cfg, tmp_path, monkeypatch, capsys, crash
):
    from optrepro.loop import TrainingLoop as RegressionModule

    overrides = ("trainer.checkpoint=true", "trainer.checkpoint_every=1", "trainer.epochs=4", "ensemble.size=2")
    run(make_cfg(*overrides, run_dir=tmp_path / "straight"))

    original = RegressionModule.on_train_epoch_end

    def crash_at_the_end_of_target_epoch_1(self):
        if self.budget_epoch == 1 and crash == "before_the_row":
            raise RuntimeError("node preempted")
        original(self)
        if self.budget_epoch == 1:
            raise RuntimeError("node preempted")

    monkeypatch.setattr(RegressionModule, "on_train_epoch_end", crash_at_the_end_of_target_epoch_1)
    with pytest.raises(RuntimeError, match="preempted"):
        run(make_cfg(*overrides, run_dir=tmp_path / "resumed"))
    assert json.loads((tmp_path / "resumed" / "seed=0" / "summary.json").read_text())["status"] == "failed"
    monkeypatch.setattr(RegressionModule, "on_train_epoch_end", original)

    capsys.readouterr()
    metrics = run(make_cfg(*overrides, run_dir=tmp_path / "resumed"))
    assert metrics["runs/completed"] == 2
    # the checkpoint of an epoch is written after the module's epoch end, so the crash (with or without the row of
    # target epoch 1 written) came before it: training resumes at trainer epoch 2 (target epoch 1) and redoes it
    assert "last.ckpt at epoch 1 (trainer epoch 2, after 1 source epochs)" in capsys.readouterr().err
    for seed in (0, 1):
        straight = read_metrics(tmp_path / "straight" / f"seed={seed}")
        resumed = read_metrics(tmp_path / "resumed" / f"seed={seed}")
        assert list(resumed.epoch) == list(straight.epoch) == [-1, 0, 1, 2, 3]  # no row lost, none twice
        for column in ("train/loss", "test/loss", "grad_evals"):
            assert resumed[column].tolist() == pytest.approx(straight[column].tolist(), rel=1e-5)


def test_tensorboard_logger_writes_event_files(make_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    run(make_cfg("logger=tensorboard"))
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "inna", "step_tuned_sgd"])
def test_every_optimizer_trains_a_run(make_cfg, tmp_path, optimizer):
    metrics = run(make_cfg(f"optimizer={optimizer}", "optimizer.lr=0.01"))
    assert metrics["runs/completed"] == 1
    rows = read_metrics(tmp_path / "run")
    per_step = 2 if optimizer == "step_tuned_sgd" else 1
    assert rows.grad_evals.tolist() == [5 * per_step * (i + 1) for i in range(4)]  # 5 batches per epoch
    if optimizer == "step_tuned_sgd":  # defaults (nu, m, M) = (2, 0.5, 2)
        assert rows["optim/step_size"].between(0.5, 2.0).all()
        assert (rows.loc[rows["optim/curvature"] <= 0, "optim/step_size"] == 2.0).all()


def test_step_tuned_sgd_refuses_to_mix_ensemble_members(make_cfg):
    from optrepro.config import ConfigError

    with pytest.raises(ConfigError, match="mix the members"):
        run(make_cfg("optimizer=step_tuned_sgd", "ensemble.size=2"))


def test_a_failed_run_in_a_sweep_is_logged_and_raised_for_hydra(make_cfg, tmp_path, monkeypatch, caplog):
    """In a multirun, an exception during training marks the run failed (with the error) and reaches Hydra, which
    runs the sweep's other points and then exits non-zero (tests/test_run_store.py runs such a sweep)."""
    import lightning

    from optrepro import train

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(train, "_hydra_context", lambda: (None, True, "method=x"))
    monkeypatch.setattr(lightning.Trainer, "fit", boom)
    run_dir = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="boom"):
        train.run(make_cfg(run_dir=run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: boom"
    assert summary["metrics"]["runs/failed"] == 1 and summary["metrics"]["runs/completed"] == 0
    assert "boom" in caplog.text and "the sweep goes on" in caplog.text
