"""A sweep through sbatch: every point completes, and the same command again submits nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from slurm_tier import SMALL, sacct_jobs, train_command, wait_for

pytestmark = pytest.mark.cluster

SWEEP = ["-m", "experiment=ht/sine_f1", "profile=smoke", "method=random_init,warm_start,data_homotopy", "seed=0,1"]


def _records(sweep_dir: Path) -> dict[str, bytes]:
    """Every summary and metrics file of the sweep, by path, with its bytes."""
    files = [*sweep_dir.rglob("summary.json"), *sweep_dir.rglob("metrics.csv")]
    return {str(p.relative_to(sweep_dir)): p.read_bytes() for p in files}


def test_a_six_point_sweep_completes_through_sbatch_and_its_rerun_submits_only_what_is_left(
    tmp_path, slurm_env, job_name
):
    sweep_dir = tmp_path / "sweep"
    command = train_command(
        *SWEEP, "hydra/launcher=slurm", f"hydra.sweep.dir={sweep_dir}", f"hydra.launcher.name={job_name}", *SMALL
    )
    done = subprocess.run(command, env=slurm_env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]

    # one array of six; the command returns once every result is in, as the last jobs' processes exit
    wait_for(lambda: all(j.endswith("|COMPLETED") for j in sacct_jobs(slurm_env, job_name)), 60, "jobs completed")
    jobs = sacct_jobs(slurm_env, job_name)
    assert len(jobs) == 6 and len({j.split("_")[0] for j in jobs}) == 1, jobs
    points = sorted(p.parent for p in sweep_dir.glob("method=*/*/summary.json"))
    assert [f"{p.parent.name}/{p.name}" for p in points] == [
        f"method={m}/seeds={s}-{s + 1}" for m in ("data_homotopy", "random_init", "warm_start") for s in (0, 1)
    ]
    for point in points:
        summary = json.loads((point / "summary.json").read_text())
        assert summary["status"] == "completed", point
        assert summary["metrics"]["runs/completed"] == 2  # profile=smoke: two members per point
    records = _records(sweep_dir)
    submitted = sorted(p.name for p in (sweep_dir / ".submitit").iterdir())

    again = subprocess.run(command, env=slurm_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(finished: not submitted)") == 6, again.stdout[-3000:]
    assert sacct_jobs(slurm_env, job_name) == jobs  # no job submitted
    assert sorted(p.name for p in (sweep_dir / ".submitit").iterdir()) == submitted
    assert _records(sweep_dir) == records  # results untouched

    # a point whose records broke is the one a rerun submits again (the run itself then redoes it)
    broken = sweep_dir / "method=warm_start" / "seeds=1-2" / "seed=2" / "metrics.csv"
    broken.unlink()
    third = subprocess.run(command, env=slurm_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stdout.count("(finished: not submitted)") == 5, third.stdout[-3000:]
    assert len(sacct_jobs(slurm_env, job_name)) == 7
    assert broken.is_file()
    assert json.loads((broken.parent.parent / "summary.json").read_text())["status"] == "completed"
