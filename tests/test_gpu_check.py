"""scripts/gpu_check.py (``make gpu-check``) and the measuring tools it shares with the benchmarks: each section
survives another's failure, the operation counts are exact, and (slow tier) the whole check runs at its CPU size
and reports every section with numbers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402
from bench_common import OpCounter, count_hand_written, framework_run, sine_overrides  # noqa: E402
from sine_baseline import HandWrittenSine  # noqa: E402

SECTIONS = ("machine", "cuda_tests", "ensemble", "versus_hand", "resnet", "optimizers", "ht_f1b")


def test_a_section_that_fails_dies_or_hangs_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    def raises(rec, ctx):
        rec["measured"] = 1.5
        raise RuntimeError("boom")

    def dies(rec, ctx):
        rec["measured"] = 2.5
        print("last words", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def hangs(rec, ctx):
        rec["measured"] = 3.5
        time.sleep(60)

    def fine(rec, ctx):
        rec["measured"] = 4.5

    for name, section in {"raises": raises, "dies": dies, "hangs": hangs, "fine": fine}.items():
        monkeypatch.setitem(gpu_check.SECTIONS, name, section)
    ctx = {"work": tmp_path}
    failed = gpu_check.run_section("raises", 30, ctx)
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom" and failed["measured"] == 1.5
    died = gpu_check.run_section("dies", 30, ctx)
    assert died["status"] == "failed" and "-9" in died["error"] and died["measured"] == 2.5
    assert "last words" in died["log_tail"]
    hung = gpu_check.run_section("hangs", 1.5, ctx)
    assert hung["status"] == "timed out" and hung["measured"] == 3.5 and hung["seconds"] < 15
    assert gpu_check.run_section("fine", 30, ctx) == {
        "measured": 4.5,
        "seconds": pytest.approx(0, abs=5),
        "status": "ok",
    }


def test_a_ratio_whose_section_failed_is_reported_as_not_measured():
    ensemble = {"1": {"train_s": 1.0, "epoch_s": 2.0}, "100": {"train_s": 3.0, "epoch_s": 5.0}}
    ratios = {what: (value, goal) for what, value, goal in gpu_check.ratios({"ensemble": ensemble})}
    assert ratios["sine ensemble, 100 members / 1 member, whole epoch"] == (2.5, "goal <= 3: met")
    assert ratios["sine, framework / hand-written, 100 member(s), whole epoch"] == (None, "not measured")


def test_the_op_counter_counts_operations_views_and_scalar_reads():
    a, b = torch.ones(3, 3), torch.ones(3, 3)
    with OpCounter() as counter:
        (a @ b).t().sum().item()
    summary = counter.summary()
    assert summary["by_name"] == {"aten.mm": 1, "aten.t": 1, "aten.sum": 1, "aten._local_scalar_dense": 1}
    assert (summary["ops"], summary["non_view_ops"], summary["host_syncs"]) == (4, 3, 1)


def test_every_counted_step_dispatches_the_same_operations(tmp_path, one_thread):
    """The framework's steps (counted inside Lightning) and the hand-written loop's are steady from the second step
    on, so a few steps stand for all; the framework's count holds the model's batched matmuls."""
    overrides = [*sine_overrides(2, 1, False, limit=6, n_samples=400), "model.hidden=8", "model.depth=2"]
    windows = framework_run(overrides, tmp_path / "run", timer=False, count_steps=3)["windows"]
    assert len(windows) == 3 and windows[0]["by_name"] == windows[1]["by_name"] == windows[2]["by_name"]
    assert windows[0]["by_name"].get("aten.bmm", 0) >= 3  # a 2-layer MLP's forward, vmapped, and its backward
    hand = count_hand_written(HandWrittenSine(2, n_samples=400, hidden=8, depth=2), steps=3)
    assert hand[0]["by_name"] == hand[1]["by_name"] == hand[2]["by_name"] and hand[0]["non_view_ops"] > 10


@pytest.mark.slow
def test_the_gpu_check_runs_at_cpu_size_and_reports_every_section_with_numbers(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--cpu-size", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((out / "gpu-check.json").read_text())
    sections = report["sections"]
    assert tuple(sections) == SECTIONS and report["size"] == "cpu"
    assert {name: s["status"] for name, s in sections.items()} == dict.fromkeys(SECTIONS, "ok")

    def positive(*values):
        return all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values)

    counts = sections["cuda_tests"]["counts"]
    assert counts["tests"] >= 7 and counts["failures"] == counts["errors"] == 0
    assert counts["passed" if torch.cuda.is_available() else "skipped"] == counts["tests"]
    for name in ("ensemble", "versus_hand"):
        for members in ("1", "4", "16"):
            timed = sections[name][members]
            assert positive(timed["train_s"], timed["epoch_s"]) and timed["epoch_s"] >= timed["train_s"]
    assert positive(sections["resnet"]["plain eager"]["train_s"], sections["resnet"]["lightning eager"]["epoch_s"])
    for wd in ("weight_decay=0", "weight_decay=0.0001"):
        assert positive(*sections["optimizers"][wd].values())
    ht = sections["ht_f1b"]
    assert set(ht["methods"]) == {"random_init", "warm_start", "data_homotopy"} and ht["stopped_at_deadline"] == []
    for method in ht["methods"].values():
        assert method["status"] == "completed" and method["members"] == 2
        assert method["epochs_done"] == method["planned_epochs"] and positive(method["median_train/loss"])
    assert ht["comparison"]["complete"] and positive(ht["comparison"]["homotopy_vs_best_baseline"])
    assert all(value is not None for _, value, _ in report["ratios"]) and len(report["ratios"]) >= 10
    text = (out / "gpu-check.md").read_text()
    assert text.rstrip().splitlines()[-1].startswith("- HT F1b") and "## Ratios" in text
    assert done.stdout.rstrip().splitlines()[-1].startswith("gpu-check: wrote")


@pytest.mark.slow
def test_the_figure_runs_are_stopped_at_the_deadline_and_reported_as_far_as_they_got(tmp_path):
    """HT F1b gets the time that is left: at the deadline the pack gets SIGTERM, finishes its epoch, checkpoints and
    stops (what happens on a GPU, where paper scale does not fit the budget); the report reads what they reached."""
    out, work = tmp_path / "out", tmp_path / "work"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "gpu_check.py"),
        "--cpu-size",
        "--only",
        "ht_f1b",
        "--budget",
        "60",
    ]
    command += ["--ht", "trainer.epochs=100000", "--out", str(out), "--work", str(work)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    ht = json.loads((out / "gpu-check.json").read_text())["sections"]["ht_f1b"]
    assert ht["status"] == "ok" and ht["stopped_at_deadline"] == ["random_init", "warm_start", "data_homotopy"]
    assert ht["exit_code"] == 128 + signal.SIGTERM
    for method in ht["methods"].values():
        assert method["status"] == "interrupted" and 0 < method["epochs_done"] < method["planned_epochs"]
    assert list((work / "ht_f1b").glob(".packed/*/checkpoints/last.ckpt"))  # the same command resumes the pack
    assert ht["comparison"]["complete"] is False and "before the end" in ht["comparison"]["verdict"]
