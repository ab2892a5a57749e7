"""optrepro-report's HTA section on fabricated run directories: Tables 1-3 beside the paper, Figures 2 and 3."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from optrepro.report.cli import write_report
from optrepro.toys.hta_function import table_1


def fake_vgg_run(root, experiment, method, depth, seed, accs):
    d = root / experiment.replace("/", "_") / f"method={method},model.depth={depth}" / f"seed={seed}"
    d.mkdir(parents=True)
    cfg = {"task": {"name": "cifar10", "module": "classification"}, "model": {"depth": depth}, "method": {}}
    summary = {"kind": "run", "status": "completed", "experiment": experiment, "method": method, "seed": seed}
    (d / "summary.json").write_text(json.dumps({**summary, "config": cfg}))
    pd.DataFrame({"epoch": range(len(accs)), "test/acc": accs}).to_csv(d / "metrics.csv", index=False)


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    t1 = root / "t1"
    t1.mkdir(parents=True)
    homotopy = [{"label": "t = 0", "anchor": "zero", "L": {"start": 2.0, "stop": 0.1, "step": 0.1}}]
    table_1(t1, 0, [{"n": 2, "grid": [0, 1, 2, 3, 4, 5]}], homotopy, starts=6)
    cfg = {"task": {"name": "hta_function", "module": "toy"}}
    summary = {"kind": "run", "status": "completed", "experiment": "hta/function_t1", "method": "hta_function"}
    (t1 / "summary.json").write_text(json.dumps({**summary, "seed": 0, "config": cfg}))
    for depth, plain, hta in ((11, 0.92, 0.93), (13, 0.94, 0.95)):
        fake_vgg_run(root, "hta/vgg_t2", "plain", depth, 0, [0.5, 0.8, plain])
        fake_vgg_run(root, "hta/vgg_t2", "hta", depth, 0, [0.5, 0.85, hta])
        fake_vgg_run(root, "hta/vgg_f3", "plain", depth, 0, [0.5, 0.8, plain])
        fake_vgg_run(root, "hta/vgg_f3", "hta_conv", depth, 0, [0.5, 0.8, hta])
    for seed, acc in enumerate((0.91, 0.92, 0.93)):
        fake_vgg_run(root, "hta/vgg_t3", "hta", 11, seed, [0.5, acc])
    return root


def test_hta_report_tables_and_figures(runs, tmp_path):
    out = tmp_path / "report"
    text = write_report([runs], out).read_text()
    for heading in ("HTA Table 1", "HTA Table 2", "HTA Table 3", "HTA Figure 2", "HTA Figure 3"):
        assert heading in text
    t1 = pd.read_csv(out / "hta_t1_function.csv").set_index("method")
    assert t1.loc["plain", "paper"] == 24 and t1.loc["t = 0", "paper"] == 36 and (t1.starts == 6).all()
    t2 = pd.read_csv(out / "hta_t2_vgg.csv").set_index("model")
    # VGG11: 8 % error plain, 7 % with HTA: improvement 1/8 = 12.5 %; the paper's 7.83 -> 7.02 is 10.34 %
    assert t2.loc["VGG11", "plain error %"] == pytest.approx(8.0)
    assert t2.loc["VGG11", "HTA error %"] == pytest.approx(7.0)
    assert t2.loc["VGG11", "improvement %"] == pytest.approx(12.5)
    assert t2.loc["VGG11", "paper improvement %"] == pytest.approx(10.34)
    assert t2.loc["VGG13", "paper HTA %"] == 5.14
    t3 = pd.read_csv(out / "hta_t3_vgg_repeats.csv").set_index("model")
    assert (t3.loc["VGG11", "runs"], t3.loc["VGG11", "mean %"], t3.loc["VGG11", "max %"]) == (3, 92.0, 93.0)
    assert t3.loc["VGG11", "std %"] == pytest.approx(1.0)
    for stem in ("hta_f2_vgg13", "hta_f3_vgg11", "hta_f3_vgg13"):
        assert (out / f"{stem}.png").is_file()
