"""Bookings the trainer would not use, or the partition cannot hold, stop the command before anything is
submitted (nothing trains, no job or run folder is written), with a message that names the keys."""

from __future__ import annotations

import subprocess

import pytest
from slurm_tier import SMALL, sacct_jobs, train_command

pytestmark = pytest.mark.cluster

CASES = {
    "a GPU where the partition has none": (
        ["trainer=gpu"],
        r"trainer.accelerator=gpu books 1 GPU(s) per node, and partition debug has no GPUs",
    ),
    "DDP devices that do not match the tasks": (
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "hydra.launcher.tasks_per_node=1"],
        "hydra.launcher.tasks_per_node=1 does not match trainer.devices=2",
    ),
    "a GPU launcher with a CPU trainer": (
        ["hydra.launcher.gpus_per_node=1"],
        "hydra.launcher.gpus_per_node=1 books GPUs that trainer.accelerator=cpu does not use",
    ),
    "a partition the cluster does not have": (
        ["hydra.launcher.partition=gpu"],
        "hydra.launcher.partition=gpu is not a partition of this cluster (sinfo lists: debug)",
    ),
    "more CPUs than the node has": (
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "hydra.launcher.cpus_per_task=2"],
        "hydra.launcher.cpus_per_task=2 x 2 task(s) per node = 4 CPUs, and the largest node of partition debug has 2",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_booking_that_cannot_work_is_refused_before_anything_is_submitted(case, tmp_path, slurm_env, job_name):
    overrides, message = CASES[case]
    sweep_dir = tmp_path / "sweep"
    command = train_command(
        "-m",
        "experiment=th/f4_6e",
        "profile=smoke",
        "seed=0,1",
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.name={job_name}",
        *SMALL,
        *overrides,
    )
    done = subprocess.run(command, env=slurm_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"optrepro-train: error: {message}" in done.stderr
    assert "Traceback" not in done.stderr
    written = sorted(p.name for p in sweep_dir.rglob("*")) if sweep_dir.exists() else []
    assert written in ([], ["multirun.yaml"])  # Hydra's record of the sweep at most: no job folder, no run folder
    assert sacct_jobs(slurm_env, job_name) == []
