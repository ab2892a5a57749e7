"""Reports aggregate only runs whose configs agree on every key but the seed: a swept learning rate, or two
profiles in one folder, give separate series (each its own report), never one merged curve or median."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import tiny

from optrepro.config import compose
from optrepro.report.cli import write_report
from optrepro.report.load import load
from optrepro.report.series import series_labels
from optrepro.train import run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    """Two methods x two learning rates, two seeds each (one ensemble), as `-m optimizer.lr=1e-3,1e-2` leaves."""
    root = tmp_path_factory.mktemp("sweep")
    for method in ("random_init", "warm_start"):
        for lr in ("1e-3", "1e-2"):
            run(
                compose(
                    [
                        *tiny(f"method={method}", f"optimizer.lr={lr}", "ensemble.size=2"),
                        f"paths.run_dir={root / f'{method}_lr{lr}'}",
                    ]
                )
            )
    return root


def final_loss(run_dir) -> float:
    return float(pd.read_csv(run_dir / "metrics.csv")["train/loss"].iloc[-1])


def test_a_learning_rate_sweep_gives_one_series_per_learning_rate(lr_sweep, tmp_path):
    runs, _ = load([lr_sweep])
    assert set(series_labels(runs)) == {"optimizer.lr=0.001", "optimizer.lr=0.01"}
    report = write_report([lr_sweep], tmp_path).read_text()
    assert "optimizer.lr=0.001" in report and "optimizer.lr=0.01" in report
    for lr, folder in (("1e-3", "optimizer.lr=0.001"), ("1e-2", "optimizer.lr=0.01")):
        table = pd.read_csv(tmp_path / folder / "final_losses.csv").iloc[0]
        for method in ("random_init", "warm_start"):
            # the median of this learning rate's two seeds only (of two values: their mean)
            finals = [final_loss(lr_sweep / f"{method}_lr{lr}" / f"seed={s}") for s in (0, 1)]
            assert table[f"{method} runs"] == 2
            assert table[f"{method} median"] == pytest.approx(sum(finals) / 2, rel=1e-6)
        assert (tmp_path / folder / "ht_sine_sine_f1_omega137.png").is_file()
    assert not (tmp_path / "final_losses.csv").exists()  # nothing was aggregated across the two


def test_two_profiles_in_one_folder_are_never_aggregated(lr_sweep, tmp_path):
    root = tmp_path / "runs"
    run(compose([*tiny("method=random_init", "ensemble.size=2"), f"paths.run_dir={root / 'paper'}"]))
    run(compose([*tiny("method=random_init", "ensemble.size=2", "profile=smoke"), f"paths.run_dir={root / 'smoke'}"]))
    runs, _ = load([root])
    labels = series_labels(runs)
    assert labels.nunique() == 2 and all("profile.name=" in label for label in labels)
    write_report([root], tmp_path / "out")
    counts = [pd.read_csv(p).iloc[0]["random_init runs"] for p in (tmp_path / "out").rglob("final_losses.csv")]
    assert sorted(counts) == [2, 2]  # two series of two seeds, not one of four


def test_seeds_and_methods_alone_make_one_series(lr_sweep):
    runs, _ = load([lr_sweep])
    same_lr = runs[runs.lr == 1e-3]
    assert set(series_labels(same_lr)) == {""}


def test_a_figure_below_paper_scale_says_so(lr_sweep, tmp_path):
    """The tiny runs train 3 of the preset's 2500 target epochs with 2 of its 100 seeds per method."""
    from optrepro.report.series import scale_note

    runs, _ = load([lr_sweep])
    note = scale_note(runs[runs.lr == 1e-3])
    assert note == "not paper scale: 3 of 2500 epochs, 2 of 100 seeds per method"
    write_report([lr_sweep], tmp_path)
    assert (
        "Not paper scale: 3 of 2500 epochs, 2 of 100 seeds per method."
        in (tmp_path / "optimizer.lr=0.001" / "report.md").read_text()
    )


def test_sweep_folders_keep_profiles_apart():
    import subprocess
    from pathlib import Path

    dirs = {p: compose(["experiment=ht/sine_f1", f"profile={p}"], hydra_config=True).hydra.sweep.dir
            for p in ("paper", "quick", "smoke")}  # fmt: skip
    assert dirs == {"paper": "outputs/multirun/ht/sine_f1", "quick": "outputs/multirun/ht/sine_f1/profile=quick",
                    "smoke": "outputs/multirun/ht/sine_f1/profile=smoke"}  # fmt: skip
    script = Path(__file__).parents[1] / "scripts" / "output_root.sh"

    def out(*args: str) -> str:
        cmd = f'source "{script}"; echo "$out"'
        return subprocess.run(["bash", "-c", cmd, "x", *args], capture_output=True, text=True, env={}).stdout.strip()

    assert out("trainer=gpu") == out("profile=paper") == "outputs"
    assert out("trainer=gpu", "profile=quick") == "outputs/profile=quick"


def test_a_key_added_later_is_compared_as_the_value_older_runs_behaved_as():
    import pandas as pd

    from optrepro.report.series import series_labels

    old = {"optimizer": {"lr": 0.1}, "homotopy": {"gamma": 10}}
    kept = {"optimizer": {"lr": 0.1}, "homotopy": {"gamma": 10, "optimizer_at_switch": "keep"}}
    fresh = {"optimizer": {"lr": 0.1}, "homotopy": {"gamma": 10, "optimizer_at_switch": "fresh"}}
    runs = pd.DataFrame({"experiment": ["ht/sine_f1"] * 3, "config": [old, kept, fresh]})
    assert list(series_labels(runs)) == [
        "homotopy.optimizer_at_switch=keep",
        "homotopy.optimizer_at_switch=keep",
        "homotopy.optimizer_at_switch=fresh",
    ]
    assert list(series_labels(runs.iloc[:2])) == ["", ""]  # an old run and a new one with the old behaviour agree


def test_members_of_an_ensemble_and_single_runs_of_the_same_seeds_are_two_series():
    import pandas as pd

    from optrepro.report.series import series_labels

    ensemble = {"seed": 0, "ensemble": {"size": 5}, "optimizer": {"lr": 0.1}}
    single = {"seed": 0, "ensemble": {"size": 1}, "optimizer": {"lr": 0.1}}
    runs = pd.DataFrame({"experiment": ["ht/sine_f1"] * 2, "config": [ensemble, single]})
    assert list(series_labels(runs)) == ["ensemble.size=5", "ensemble.size=1"]
