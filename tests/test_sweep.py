"""Slow tier: a real multirun through the console script, its report, and resuming it."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TINY = [
    "experiment=ht/sine_f1",
    "task.n_samples=200",
    "task.batch_size=50",
    "model.hidden=8",
    "model.depth=2",
    "homotopy.gamma=2",
    "homotopy.k=1",
    "homotopy.source_epochs=1",
    "trainer.epochs=3",
    "ensemble.size=1",
]


def sweep(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "optrepro.cli",
        "-m",
        *TINY,
        "seed=0,1",
        "method=random_init,warm_start,data_homotopy",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_sweep_report_and_resume(tmp_path):
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    summaries = sorted((tmp_path / "sweep").rglob("summary.json"))
    assert len(summaries) == 6
    assert {p.parent.name for p in summaries} == {"seed=0", "seed=1"}
    # sweep sub-directories are named from the overrides, seed excluded, then seed=N
    names = {p.parent.parent.name for p in summaries}
    assert len(names) == 3 and all("seed" not in n and "task.n_samples=200" in n for n in names)
    assert {n for n in names for m in ("random_init", "warm_start", "data_homotopy") if f"method={m}" in n} == names

    out = tmp_path / "report"
    rep = subprocess.run(
        [sys.executable, "-m", "optrepro.report.cli", str(tmp_path / "sweep"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr
    assert (out / "ht_sine_sine_f1_omega137.png").is_file() and (out / "final_losses.csv").is_file()
    assert "| ht/sine_f1 | 137 |" in (out / "report.md").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in summaries}
    second = sweep(tmp_path)
    assert second.returncode == 0
    assert second.stderr.count("already completed, skipped") == 6
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
