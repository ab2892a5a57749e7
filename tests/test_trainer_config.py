"""The Trainer, callbacks and loggers come from config: every Trainer flag can be set, none is ignored, and an
option that does not apply to a run is refused by name before anything runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hydra.errors import MissingConfigException

from optrepro.config import ConfigError, compose
from optrepro.train import run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_any_trainer_flag_is_passed_to_lightning(make_cfg, tmp_path):
    """A gradient norm clipped to 1e-6 leaves Adam's first steps unchanged (Adam is scale-invariant) but an SGD
    step of lr 0.1 at most 1e-7 long: the clipped run's weights barely move, the plain run's do."""
    plain = make_cfg("optimizer=sgd", "optimizer.lr=0.1", run_dir=tmp_path / "plain")
    clipped = make_cfg(
        "optimizer=sgd", "optimizer.lr=0.1", "+trainer.gradient_clip_val=1e-6", run_dir=tmp_path / "clipped"
    )
    run(plain), run(clipped)
    a, b = pd.read_csv(tmp_path / "plain" / "metrics.csv"), pd.read_csv(tmp_path / "clipped" / "metrics.csv")
    first = b["test/loss"].iloc[0]
    assert b["test/loss"].iloc[-1] == pytest.approx(first, rel=1e-4)  # 5 steps of at most 1e-7 each
    assert abs(a["test/loss"].iloc[-1] - a["test/loss"].iloc[0]) > 1e-3
    saved = json.loads((tmp_path / "clipped" / "summary.json").read_text())["config"]["trainer"]
    assert saved["gradient_clip_val"] == 1e-6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+trainer.gradient_clip_valu=1.0",
            "trainer.gradient_clip_valu is not an argument of lightning.pytorch.Trainer",
        ),
        ("+trainer.max_epochs=3", "trainer.max_epochs is set by optrepro: use trainer.epochs"),
        ("+trainer.logger=false", "trainer.logger is set by optrepro: use logger=wandb"),
        ("callbacks=lr_monitor", "callbacks.lr_monitor .* this run has none: add logger=tensorboard"),
    ],
)
def test_options_that_cannot_apply_are_refused_by_name_before_anything_runs(make_cfg, tmp_path, override, message):
    cfg = make_cfg("ensemble.size=2", override)
    with pytest.raises(ConfigError, match=message):
        run(cfg)
    assert not (tmp_path / "run").exists()


def test_an_unknown_callback_is_refused_with_the_options_listed():
    with pytest.raises(MissingConfigException, match="callbacks/learning_rate") as err:
        compose(["callbacks=learning_rate"])
    assert "lr_monitor" in str(err.value) and "early_stopping" in str(err.value)


def test_toy_tasks_refuse_a_method_and_lightning_callbacks(tmp_path):
    with pytest.raises(ConfigError, match="method=hta does not apply to task=gc_saddle"):
        run(compose(["experiment=gc/saddle_f4", "method=hta", f"paths.run_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="callbacks=rich_progress do not apply to task=gc_saddle"):
        run(compose(["experiment=gc/saddle_f4", "callbacks=rich_progress", f"paths.run_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="trainer.gradient_clip_val do not apply to task=gc_saddle"):
        run(compose(["experiment=gc/saddle_f4", "+trainer.gradient_clip_val=1", f"paths.run_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu do not apply to task=hta_function"):
        run(compose(["experiment=hta/function_t1", "trainer=gpu", f"paths.run_dir={tmp_path}"]))
    assert not (tmp_path / "summary.json").exists()


def test_early_stopping_ends_the_run_and_the_summary_says_where(make_cfg, tmp_path):
    # min_delta 10: no epoch improves train/loss by 10. The first check (the source epoch, -1) sets the best; with
    # patience 1 the first check without improvement (target epoch 0) stops training
    cfg = make_cfg(
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "callbacks.early_stopping.min_delta=10",
        "trainer.epochs=6",
    )
    metrics = run(cfg)
    rows = pd.read_csv(tmp_path / "run" / "metrics.csv")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert metrics["runs/completed"] == 1 and rows.epoch.tolist() == [-1, 0]
    assert summary["stopped_early_at_epoch"] == 0


def test_several_loggers_at_once_and_a_learning_rate_monitor(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(make_cfg("logger=[wandb,tensorboard]", "callbacks=[lr_monitor,rich_progress]"))
    run_dir = tmp_path / "run"
    assert list((run_dir / "wandb").glob("offline-run-*"))
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0].parent)).Reload().Tags()["scalars"]
    assert {"train/loss", "test/loss", "lr-Adam"} <= set(tags)


def test_a_toy_experiment_sends_its_tables_to_the_configured_loggers(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose(
        ["experiment=hta/function_t1", "profile=smoke", "logger=[wandb,tensorboard]", f"paths.run_dir={tmp_path}"]
    )
    run(cfg)
    tables = {p.stem for p in tmp_path.glob("*.csv")}
    assert tables == {"table", "starts"}
    logged = list((tmp_path / "wandb").rglob("*.table.json"))
    assert {p.name.split("_")[0] for p in logged} == tables  # one W&B table per CSV
    table = json.loads(next(p for p in logged if p.name.startswith("table_")).read_text())
    assert table["columns"] == list(pd.read_csv(tmp_path / "table.csv").columns)
    assert len(table["data"]) == len(pd.read_csv(tmp_path / "table.csv"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert {"tables/table/text_summary", "tables/starts/text_summary"} <= set(events.Tags()["tensors"])


def test_best_follows_each_metrics_declared_direction(tmp_path):
    """The summary's best is the minimum of a loss and the maximum of an accuracy, as the task declares them; a
    method's extra column (no direction) gets none. train/objective is a loss: its best is its minimum (it used to
    be recorded at its maximum, guessed from the key's name)."""
    from optrepro.records import MemberLog
    from optrepro.tasks import Classification

    directions = Classification("cifar10").metrics()
    assert directions["test/acc"] == "max" and directions["train/objective"] == "min"
    log = MemberLog(tmp_path, [0], directions)
    rows = [(0.9, 0.2, 3.0, 5.0), (0.5, 0.6, 1.0, 7.0), (0.7, 0.4, 2.0, 6.0)]
    for epoch, (loss, acc, objective, coupling) in enumerate(rows):
        log.write(0, {"epoch": epoch, "test/loss": loss, "test/acc": acc, "train/objective": objective,
                      "homotopy/coupling": coupling})  # fmt: skip
    (summary,) = log.finish({})
    assert summary["best"] == {"test/loss": 0.5, "test/acc": 0.6, "train/objective": 1.0}


def test_long_toy_loops_print_their_progress_to_a_log(capsys):
    from optrepro.toys import steps

    assert list(steps(range(5), "HTA Table 1, n=6, plain", every=0.0)) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.strip().splitlines()  # stderr is not a terminal under pytest: plain lines
    assert [line.split(" (")[0] for line in lines] == [f"HTA Table 1, n=6, plain: {i}/5" for i in range(1, 6)]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_a_gpu_trainer_without_a_gpu_is_refused_by_key_before_anything_runs(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu is not possible here: no CUDA GPU"):
        run(make_cfg("trainer=gpu"))
    assert not (tmp_path / "run").exists()
