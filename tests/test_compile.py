"""``trainer.compile=true`` on the CPU gives the eager path's numbers (slow tier: inductor builds C++ on the CPU,
tens of seconds; on a GPU, tests/test_cuda.py checks the same for LeNet)."""

from __future__ import annotations

import pytest
from conftest import read_metrics, tiny

from optrepro.config import compose
from optrepro.train import run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_a_compiled_sine_model_on_the_cpu_trains_as_the_eager_one(tmp_path):
    """The same seed, data and schedule: the compiled MLP's rows equal the eager one's to float rounding (inductor
    fuses and reorders the arithmetic, so not bitwise) over source pre-training and the homotopy's steps."""
    rows = {}
    for compiled in ("false", "true"):
        run(compose([*tiny(f"trainer.compile={compiled}"), f"paths.run_dir={tmp_path / compiled}"]))
        rows[compiled] = read_metrics(tmp_path / compiled)
    eager, compiled = rows["false"], rows["true"]
    assert len(eager) == len(compiled) == 4  # 1 source + 3 target epochs
    for column in ("train/loss", "test/loss", "train/objective"):
        assert compiled[column].values == pytest.approx(eager[column].values, rel=1e-4), column
    assert eager["train/loss"].nunique() == 4  # the runs trained: every epoch's loss differs


def test_a_compiled_ensemble_on_the_cpu_trains_as_the_eager_one(tmp_path):
    """trainer.compile=true with ensemble.size=2: the vmapped ensemble's forward (its linear-stack path) compiled,
    every member's rows equal to the eager ensemble's to float rounding."""
    for compiled in ("false", "true"):
        overrides = tiny("ensemble.size=2", f"trainer.compile={compiled}")
        run(compose([*overrides, f"paths.run_dir={tmp_path / compiled}"]))
    for seed in (0, 1):
        eager, compiled = (read_metrics(tmp_path / c / f"seed={seed}") for c in ("false", "true"))
        assert len(eager) == len(compiled) == 4
        for column in ("train/loss", "test/loss"):
            assert compiled[column].values == pytest.approx(eager[column].values, rel=1e-4), (seed, column)
