"""Fault injection on real sweeps (slow tier): kill -9 at random points, inside a resume's rewrite, and two sweeps
into one folder. Every job must end complete and equal, row for row, to the same sweep run undisturbed."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from optrepro.records import METRICS, record_problems

pytestmark = pytest.mark.slow

#: 4 jobs of 12 epochs (profile=smoke), each checkpointing every epoch
SWEEP = [
    "experiment=ht/sine_f1",
    "profile=smoke",
    "ensemble.size=1",
    "method=random_init,warm_start",
    "seed=0,1",
    "trainer.checkpoint_every=1",
]
TRIALS = 10


def start(sweep_dir: Path, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "optrepro.cli", "-m", *SWEEP, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        start_new_session=True,  # its own process group: kill -9 reaches every process of the sweep
    )


def finish(sweep_dir: Path) -> str:
    proc = start(sweep_dir)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return err


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def jobs(sweep_dir: Path) -> dict[str, pd.DataFrame]:
    found = {p.parent.relative_to(sweep_dir).as_posix(): p for p in sweep_dir.glob("*/seed=*/" + METRICS)}
    return {name: pd.read_csv(path) for name, path in sorted(found.items())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, pd.DataFrame]:
    sweep_dir = tmp_path_factory.mktemp("reference") / "sweep"
    finish(sweep_dir)
    curves = jobs(sweep_dir)
    assert len(curves) == 4
    return curves


def assert_like_reference(sweep_dir: Path, reference: dict[str, pd.DataFrame]) -> None:
    curves = jobs(sweep_dir)
    assert list(curves) == list(reference)
    for name, frame in curves.items():
        pd.testing.assert_frame_equal(frame, reference[name], obj=name)
        assert (
            record_problems(sweep_dir / name, [int(name.rpartition("=")[2])], epochs=int((frame.epoch >= 0).sum()))
            == []
        )
        assert not list((sweep_dir / name).rglob("*.tmp"))


def rows_written(sweep_dir: Path) -> int:
    total = 0
    for path in sweep_dir.glob("*/seed=*/" + METRICS):
        try:
            total += max(0, len(path.read_bytes().splitlines()) - 1)
        except OSError:
            pass
    return total


def test_kill_9_at_random_points_and_inside_a_resume_then_rerun_ends_as_if_undisturbed(tmp_path, reference):
    rng = random.Random(0)
    total_rows = sum(len(frame) for frame in reference.values())
    rewrites_hit = 0
    for trial in range(TRIALS):
        sweep_dir = tmp_path / f"trial{trial}"
        # kill -9 when a random share of the sweep's rows is on disk: inside some job, at a random epoch
        proc, point = start(sweep_dir), rng.randrange(1, total_rows - 1)
        while proc.poll() is None and rows_written(sweep_dir) < point:
            time.sleep(0.02)
        kill(proc)
        # the rerun resumes that job: hold its rewrite of metrics.csv open and kill -9 inside it
        proc = start(sweep_dir, OPTREPRO_TEST_PAUSE_IN_REWRITE="2")
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if list(sweep_dir.glob("*/seed=*/" + METRICS + ".tmp")):
                kill(proc)
                rewrites_hit += 1
                break
            time.sleep(0.02)
        if proc.poll() is None:
            kill(proc)
        finish(sweep_dir)
        assert_like_reference(sweep_dir, reference)
    # a kill that lands right after a checkpointed epoch's row, before the next one, leaves nothing to rewrite
    assert rewrites_hit >= TRIALS // 2, f"only {rewrites_hit} of {TRIALS} kills landed inside a rewrite"


def test_two_sweeps_into_one_folder_run_each_job_once_and_end_as_one_sweep(tmp_path, reference):
    sweep_dir = tmp_path / "sweep"
    first, second = start(sweep_dir), start(sweep_dir)
    errs = [p.communicate(timeout=600)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errs
    trained = [line for err in errs for line in err.splitlines() if re.search(r" epoch (\d+)/\1 100% ", line)]
    assert len(trained) == 4, trained  # each job's last epoch, trained by one of the two
    assert_like_reference(sweep_dir, reference)
