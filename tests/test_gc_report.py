"""The GC report: Figure 4 from a saddle run, and mean curves with spread from per-seed ODE metrics."""

import pandas as pd

from optrepro.config import compose
from optrepro.records import write_summary
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


def test_report_names_mnist5k_runs_a_subset(tmp_path):
    for method, data in (("gaussian_continuation", "mnist5k"), ("plain", "mnist")):
        run_dir = tmp_path / "runs" / method
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
    assert "SUBSET RUN" in text
    table = pd.read_csv(tmp_path / "out" / "gc_final.csv", keep_default_na=False).set_index("method")
    assert table.loc["gaussian_continuation", "subset run"] == "yes (mnist5k)"
    assert table.loc["plain", "subset run"] == ""
