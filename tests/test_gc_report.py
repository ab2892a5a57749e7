"""The GC report: Figure 4 from a saddle run, and mean curves with spread from per-seed ODE metrics."""

import numpy as np
import pandas as pd
import pytest
from conftest import keep_figures

from optrepro.config import compose
from optrepro.records import write_summary
from optrepro.report import gc
from optrepro.report.cli import write_report
from optrepro.train import run


def _fake_ode_run(run_dir, method, seed, losses):
    write_summary(
        run_dir,
        {
            "kind": "run",
            "status": "completed",
            "experiment": "gc/lotka_volterra_f6",
            "method": method,
            "seed": seed,
            "config": {"task": {"name": "gc_lotka_volterra"}},
        },
    )
    rows = [{"epoch": e, "train/loss": v, "test/loss": 2 * v} for e, v in enumerate(losses)]
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)


def test_report_draws_the_gc_figures_and_averages_over_seeds(tmp_path):
    run(compose(["experiment=gc/saddle_f4", "profile=smoke", f"paths.run_dir={tmp_path / 'runs/saddle'}"]))
    _fake_ode_run(tmp_path / "runs/gc0", "gaussian_continuation", 0, [1.0, 0.5])
    _fake_ode_run(tmp_path / "runs/gc1", "gaussian_continuation", 1, [3.0, 1.5])
    _fake_ode_run(tmp_path / "runs/plain0", "plain", 0, [2.0, 2.0])
    report = write_report([tmp_path / "runs"], tmp_path / "out")
    text = report.read_text()
    assert "## GC: Gaussian continuation" in text
    for stem in ("gc_f4_saddle", "gc_lotka_volterra_f6"):
        assert (tmp_path / "out" / f"{stem}.png").is_file()
    table = pd.read_csv(tmp_path / "out" / "gc_final.csv").set_index("method")
    assert table.loc["gaussian_continuation", "train/loss mean"] == 1.0  # (0.5 + 1.5) / 2 at the last epoch
    assert table.loc["gaussian_continuation", "runs"] == 2 and table.loc["plain", "test/loss mean"] == 4.0


def test_report_names_mnist5k_runs_a_subset_and_keeps_them_apart_from_full_runs(tmp_path):
    for method, data in (("gaussian_continuation", "mnist5k"), ("plain", "mnist5k"), ("plain", "mnist")):
        run_dir = tmp_path / "runs" / f"{method}_{data}"
        write_summary(
            run_dir,
            {
                "kind": "run",
                "status": "completed",
                "experiment": "gc/mnist_mlp_f5",
                "method": method,
                "seed": 0,
                "config": {"task": {"name": data, "data": data}},
            },
        )
        rows = [{"epoch": e, "train/loss": 2.3 - e, "train/acc": 0.1 * e} for e in range(2)]
        pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    text = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    # the dataset differs between runs of one experiment: two series, each its own report, never one median
    assert "task.data=mnist5k" in text and "task.data=mnist," in text
    subset = tmp_path / "out" / "task.data=mnist5k_task.name=mnist5k"
    assert "SUBSET RUN" in (subset / "report.md").read_text()
    table = pd.read_csv(subset / "gc_final.csv", keep_default_na=False).set_index("method")
    assert table.loc["gaussian_continuation", "subset run"] == table.loc["plain", "subset run"] == "yes (mnist5k)"
    assert table.loc["plain", "runs"] == 1
    full = pd.read_csv(tmp_path / "out" / "task.data=mnist_task.name=mnist" / "gc_final.csv", keep_default_na=False)
    assert full.set_index("method").loc["plain", "subset run"] == "" and len(full) == 1


def test_the_band_is_the_range_over_runs_and_stays_positive_on_the_log_axis(tmp_path, monkeypatch):
    # two runs that differ by four orders of magnitude at epoch 0: mean 50.005, std (100 - 0.01) / sqrt(2) = 70.7,
    # so a mean +- std band would reach -20.7, below any log axis; the range is [0.01, 100]
    for seed, losses in enumerate(([0.01, 0.02], [100.0, 0.04])):
        _fake_ode_run(tmp_path / f"runs/gc{seed}", "gaussian_continuation", seed, losses)
    curves = pd.concat(
        [pd.read_csv(tmp_path / f"runs/gc{seed}/metrics.csv").assign(run_dir=str(seed)) for seed in (0, 1)]
    )
    band = gc.mean_and_range(curves, "train/loss")
    assert band.loc[0].tolist() == pytest.approx([50.005, 0.01, 100.0])
    assert band.loc[1].tolist() == pytest.approx([0.03, 0.02, 0.04])

    drawn = keep_figures(monkeypatch, gc)
    text = write_report([tmp_path / "runs"], tmp_path / "out").read_text()
    assert "shaded from the lowest to the highest run" in text
    train_axis, test_axis = drawn["gc_lotka_volterra_f6"].axes
    assert train_axis.get_yscale() == test_axis.get_yscale() == "log"
    (shaded,) = train_axis.collections
    y = np.concatenate([path.vertices[:, 1] for path in shaded.get_paths()])
    assert y.min() == pytest.approx(0.01) and y.max() == pytest.approx(100.0)
    (test_shaded,) = test_axis.collections  # the fake runs' test loss is twice the train loss
    y = np.concatenate([path.vertices[:, 1] for path in test_shaded.get_paths()])
    assert y.min() == pytest.approx(0.02) and y.max() == pytest.approx(200.0)
