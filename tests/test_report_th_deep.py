"""optrepro-report on TH deep-learning runs: fabricated metrics.csv / summary.json in the real on-disk format."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from optrepro.report.cli import main as report_main
from optrepro.report.load import load
from optrepro.report.th_deep import run_table


def fake_run(root: Path, name: str, experiment: str, optimizer: dict, acc: list[float] | None, loss: list[float],
             seed: int = 0, status: str = "completed", model: str = "optrepro.models.ResNet20",
             data: str = "cifar10", module: str = "classification", reuse: int = 1) -> Path:  # fmt: skip
    run = root / name / f"seed={seed}"
    run.mkdir(parents=True)
    cols = ["epoch", "step", "grad_evals", "lr", "train/loss", "test/loss"] + (["test/acc"] if acc else [])
    lines = [",".join(cols)]
    for e, v in enumerate(loss):
        row = [e, 10 * (e + 1), 20 * (e + 1), 0.1, v, 2 * v] + ([acc[e]] if acc else [])
        lines.append(",".join(map(str, row)))
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    config = {
        "task": {"name": data, "data": data, "module": module, "reuse_batch": reuse},
        "model": {"_target_": model},
        "optimizer": optimizer,
        "schedule": {"_target_": "optrepro.optim.schedules.Power", "exponent": 0.501},
        "trainer": {"epochs": len(loss)},
    }
    final = {"train/loss": loss[-1]}
    summary = {"kind": "run", "experiment": experiment, "method": "plain", "seed": seed, "status": status,
               "config": config, "final": final}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    return run


SGD = {"_target_": "torch.optim.SGD", "lr": 0.1}
STS = {"_target_": "optrepro.optim.StepTunedSGD", "lr": 0.1, "nu": 2.0}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    # problem (a): SGD 3 seeds, Step-Tuned SGD 2 seeds + 1 diverged
    for seed, (a, l) in enumerate([(0.80, 0.30), (0.84, 0.20), (0.86, 0.10)]):
        fake_run(root, "sgd", "th/f4_4a", SGD, [0.5, a], [1.0, l], seed=seed)
    for seed, (a, l) in enumerate([(0.90, 0.05), (0.92, 0.04)]):
        fake_run(root, "sts", "th/f4_4a", STS, [0.6, a], [1.0, l], seed=seed)
    fake_run(root, "sts", "th/f4_4a", STS, None, [1.0, float("nan")], seed=2, status="diverged")
    # problem (d): the auto-encoder has no accuracy
    for seed in (0, 1):
        fake_run(root, "ae", "th/f4_4d", SGD, None, [0.1, 0.02 + 0.01 * seed], seed=seed,
                 model="optrepro.models.AutoEncoder", data="mnist", module="autoencoding")  # fmt: skip
    # chapter 2: INNA with two (alpha, beta) pairs
    for ab in ((0.5, 0.1), (0.5, 1.0)):
        inna = {"_target_": "optrepro.optim.INNA", "lr": 0.01, "alpha": ab[0], "beta": ab[1]}
        fake_run(root, f"inna{ab[1]}", "th/f2_cifar10", inna, [0.3, 0.6], [2.0, 1.0], model="optrepro.models.NiN")
    return root


def test_table_of_final_accuracy_beside_references(runs, tmp_path):
    out = tmp_path / "report"
    assert report_main([str(runs), "--out", str(out)]) == 0
    table = pd.read_csv(out / "th_deep_accuracy.csv")
    sgd = table[(table.optimizer == "SGD") & table.problem.str.contains(r"\(a\)")].iloc[0]
    assert sgd.runs == 3
    assert sgd["final test acc %"] == pytest.approx(100 * (0.80 + 0.84 + 0.86) / 3)
    assert (sgd["min %"], sgd["max %"]) == pytest.approx((80.0, 86.0))
    assert sgd["final train loss"] == pytest.approx(0.2)
    assert "91.3%" in sgd.reference
    sts = table[table.optimizer == "Step-Tuned SGD"].iloc[0]
    assert sts.runs == 2 and sts.diverged == 1 and sts["final test acc %"] == pytest.approx(91.0)
    ae = table[table.problem.str.contains("auto-encoder")].iloc[0]
    assert pd.isna(ae["final test acc %"]) and ae["final test loss"] == pytest.approx(2 * 0.025)
    labels = set(table[table.problem.str.contains("2.2")].optimizer)
    assert labels == {"INNA (alpha=0.5, beta=0.1)", "INNA (alpha=0.5, beta=1.0)"}
    text = (out / "report.md").read_text()
    assert "## TH: deep-learning benchmarks" in text and "low-dimensional" not in text
    for stem in ("th_f4_4a", "th_f4_4d", "th_f2_cifar10"):
        assert (out / f"{stem}.png").stat().st_size > 1000
    assert "against gradient evaluations" in text and "band: best and worst run" in text


def test_labels_only_name_what_varies(runs):
    table = run_table(load([runs])[0])
    assert set(table[table.experiment == "th/f4_4a"].label) == {"SGD", "Step-Tuned SGD"}


def test_figure_4_5_is_named_when_minibatches_are_reused(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        fake_run(root, "sgd", "th/f4_4b", SGD, [0.3, 0.4], [1.0, 0.5], seed=seed, data="cifar100", reuse=2)
        fake_run(root, "sts", "th/f4_4b", STS, [0.3, 0.5], [1.0, 0.4], seed=seed, data="cifar100")
    assert report_main([str(root), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "TH Figure 4.5 (b): CIFAR-100, ResNet-20, every minibatch used twice" in text
    assert (tmp_path / "r" / "th_f4_4b_reuse.png").is_file()
    table = pd.read_csv(tmp_path / "r" / "th_deep_accuracy.csv")
    assert set(table.optimizer) == {"SGD", "Step-Tuned SGD"} and "68-69%" in table.reference.iloc[0]
