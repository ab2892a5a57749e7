"""optrepro-report turns run directories into report.md, CSV tables and figures."""

import subprocess
import sys

import pandas as pd
import pytest

from optrepro.report.cli import main as report_main
from optrepro.train import run


@pytest.fixture(scope="module")
def three_methods(tmp_path_factory):
    from conftest import tiny

    from optrepro.config import compose

    root = tmp_path_factory.mktemp("runs")
    for method in ("random_init", "warm_start", "data_homotopy"):
        overrides = [*tiny(f"method={method}", "ensemble.size=2"), f"paths.run_dir={root / method}"]
        run(compose(overrides))
    return root


def test_report_has_table_figures_and_counts(three_methods, tmp_path):
    assert report_main([str(three_methods), "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "6 runs" in text and "HT Figure 1b" in text and "two orders of magnitude" in text
    for ext in ("png", "pdf"):
        assert (tmp_path / f"ht_sine_sine_f1_omega137.{ext}").stat().st_size > 1000
    table = pd.read_csv(tmp_path / "final_losses.csv")
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 6 and set(runs.method) == {"random_init", "warm_start", "data_homotopy"}
    # the ratios are the medians' ratios, recomputed here from the members' own metrics files
    finals = {}
    for method in ("random_init", "warm_start", "data_homotopy"):
        values = [
            pd.read_csv(three_methods / method / f"seed={s}" / "metrics.csv")["train/loss"].iloc[-1] for s in (0, 1)
        ]
        finals[method] = sum(values) / 2  # the median of two values is their mean
        assert table[f"{method} median"].iloc[0] == pytest.approx(finals[method], rel=1e-6)
    assert table["homotopy / warm_start"].iloc[0] == pytest.approx(finals["data_homotopy"] / finals["warm_start"])


def test_report_figure_five_needs_no_runs(tmp_path):
    assert report_main(["--figure", "ht-f5", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ht_f5_homotopy_pictures.png").stat().st_size > 1000


def test_report_on_an_empty_directory_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "optrepro.report.cli", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no runs" in result.stderr


def test_figure_five_goes_into_the_report_it_is_drawn_with(three_methods, tmp_path):
    assert report_main([str(three_methods), "--figure", "ht-f5", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "## Figures drawn from the equations" in text and "(ht_f5_homotopy_pictures.png)" in text
