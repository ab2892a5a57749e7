"""Helpers of the cluster tier's tests: the command line, and what SLURM's accounting says about jobs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

#: what every job of the tier books: the test node has 2 CPUs
SMALL = ["hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "optrepro.cli", *overrides]


def sacct_jobs(env: dict[str, str], name: str) -> list[str]:
    """The ids of the jobs (arrays' members included) named ``name`` that the cluster's accounting knows."""
    done = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-D", f"--name={name}", "-S", "now-1days", "-o", "JobID,State"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in done.stdout.splitlines() if line.strip()]


def job_states(env: dict[str, str], job_id: str) -> list[str]:
    """Every state a job went through, one per attempt (``sacct -D``: a requeued job has one row per run)."""
    done = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-D", "-j", job_id, "-o", "State"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [s.split()[0] for s in done.stdout.split()]


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)
