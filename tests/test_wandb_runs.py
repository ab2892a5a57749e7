"""W&B offline: one W&B run per seed, ensemble members included, holding every metrics.csv column with the
target-budget epoch as its x-axis, named and grouped as the docs say; a rerun writes into the same W&B run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import wandb_history

from optrepro.train import run

pytest.importorskip("wandb")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_two_member_ensemble_leaves_two_wandb_runs_with_every_column(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(make_cfg("logger=wandb", "ensemble.size=2", "method=warm_start"))
    for seed in (0, 1):
        member = tmp_path / "run" / f"seed={seed}"
        files = list((member / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 2, member  # per member: its training, and its source pre-training apart
        runs = {info["job_type"]: (info, rows) for info, rows in map(wandb_history, files)}
        csv = pd.read_csv(member / "metrics.csv")
        info, rows = runs["train"]
        assert info["group"] == "ht/sine_f1" and info["name"] == f"seed={seed}"
        assert info["metrics"]["*"] == "epoch"  # the paper's x-axis: the target-budget epoch
        source_info, source_rows = runs["source"]
        assert source_info["group"] == "ht/sine_f1" and source_info["name"] == f"seed={seed} source"
        assert [r["epoch"] for r in source_rows] == [-1]  # the source pre-training, left of the budget's epoch 0
        assert rows[0]["epoch"] == 0 and len(source_rows) + len(rows) == len(csv)
        for row, (_, expected) in zip(source_rows + rows, csv.iterrows()):
            assert set(row) == set(csv.columns)  # every column of metrics.csv
            assert row == pytest.approx(expected.to_dict(), rel=1e-12)
        summary = json.loads((member / "summary.json").read_text())
        assert summary["status"] == "completed"


def test_a_rerun_writes_into_the_same_wandb_run(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from optrepro.wandb_runs import run_id

    cfg = make_cfg("logger=wandb")
    run(cfg)
    (tmp_path / "run" / "summary.json").unlink()  # as if interrupted: the rerun trains again
    run(cfg)
    ids = {p.name.removeprefix("run-").removesuffix(".wandb") for p in (tmp_path / "run").rglob("run-*.wandb")}
    assert ids == {run_id(tmp_path / "run"), run_id(tmp_path / "run" / "source")}  # training, source pre-training


def test_the_report_logs_its_figures_and_tables_to_wandb(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    from conftest import wandb_records

    from optrepro.report.cli import main

    run(make_cfg("ensemble.size=2"))
    out = tmp_path / "report"
    assert main([str(tmp_path / "run"), "--out", str(out), "--wandb"]) == 0
    (file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    history = [i for r in wandb_records(file) if r.WhichOneof("record_type") == "history" for i in r.history.item]
    logged = {i.key or i.nested_key[0] for i in history}
    pngs = {f"figures/{p.relative_to(out).with_suffix('')}" for p in out.glob("*.png")}
    csvs = {f"tables/{p.relative_to(out).with_suffix('')}" for p in out.glob("*.csv")}
    assert pngs and csvs and pngs | csvs <= logged
    assert list((out / "wandb").rglob("media/images/figures/ht_sine_sine_f1_omega137_*.png"))  # the image itself
