"""DDP under SLURM: trainer=ddp trainer.devices=2 books one job with two tasks, and Lightning trains on both."""

from __future__ import annotations

import json
import subprocess

import pytest
from slurm_tier import SMALL, sacct_jobs, train_command, wait_for

pytestmark = pytest.mark.cluster


def test_ddp_on_two_cpu_processes_is_one_slurm_job_with_two_tasks(tmp_path, slurm_env, job_name):
    from submitit.core.utils import pickle_load

    sweep_dir = tmp_path / "sweep"
    command = train_command(
        "-m",
        "experiment=th/f4_6e",  # LeNet on generated CIFAR-10 images at profile=smoke (an image task shards by rank)
        "profile=smoke",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.name={job_name}",
        *SMALL,
    )
    done = subprocess.run(command, env=slurm_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    wait_for(lambda: all(j.endswith("|COMPLETED") for j in sacct_jobs(slurm_env, job_name)), 60, "job completed")
    (job,) = [j.split("|")[0] for j in sacct_jobs(slurm_env, job_name)]
    steps = subprocess.run(
        ["sacct", "-n", "-P", "-j", job, "-o", "JobID,NTasks,State"], env=slurm_env, capture_output=True, text=True
    ).stdout.split()
    assert f"{job}.0|2|COMPLETED" in steps, steps  # one job step of two tasks

    (run_dir,) = [p.parent for p in sweep_dir.rglob("summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (summary["config"]["trainer"]["strategy"], summary["config"]["trainer"]["devices"]) == ("ddp", 2)
    # both tasks ran the job: rank 0 wrote the run and returned its monitored metric, rank 1 trained beside it
    # without writing (a second lone run would have returned the metric too, or found the folder locked)
    results = {t: pickle_load(sweep_dir / ".submitit" / job / f"{job}_{t}_result.pkl") for t in (0, 1)}
    assert [results[t][0] for t in (0, 1)] == ["success", "success"]
    assert results[0][1].return_value == summary["metrics"][summary["metrics"]["monitor"]]
    assert results[1][1].return_value is None
    rank1_log = (sweep_dir / ".submitit" / job / f"{job}_1_log.err").read_text()
    assert "skipped here" not in rank1_log and "epoch 1/1" not in rank1_log
