"""Requeue under SLURM: a job requeued while it trains (``scontrol requeue``, what preemption with requeue does) and
a job that reaches its time limit (submitit's signal, then its requeue) both resume from their checkpoint and end
with exactly the records of an uninterrupted run of the same config.

The three runs start together (the two jobs take the node's two CPUs; the uninterrupted one runs outside SLURM).
Each epoch is paced to at least half a second (``pace.Pace``) so that the jobs are training when they are
interrupted, whatever the machine's speed: 104 epochs, about a minute.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from slurm_tier import SMALL, job_states, sacct_jobs, train_command, wait_for

pytestmark = pytest.mark.cluster

LONG = [
    "experiment=ht/sine_f1",
    "profile=smoke",
    "profile.count_scale=0.04",  # 100 epochs and 4 of source pre-training, two members
    "+callbacks.pace._target_=pace.Pace",
    "+callbacks.pace.seconds=0.5",
]
#: a one-minute time limit; submitit's signal comes 5 s before it (SLURM sends it up to a minute early: 25-55 s in)
TIME_LIMIT = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5", "hydra.launcher.max_num_timeout=4"]


@dataclass
class Runs:
    env: dict[str, str]
    root: Path
    names: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def folder(self, which: str) -> Path:
        return self.root / which

    def log(self, which: str) -> str:
        return (self.root / f"{which}.log").read_text()

    def finish(self, which: str, timeout: float) -> None:
        code = self.procs[which].wait(timeout=timeout)
        assert code == 0, self.log(which)[-3000:]

    def job(self, which: str) -> str:
        (job,) = {j.split("|")[0] for j in sacct_jobs(self.env, self.names[which])}
        return job

    def states(self, job: str) -> list[str]:
        """The job's states, one per attempt, once its last one has ended (the command returns when the result is
        in, as the job's process exits)."""
        wait_for(lambda: job_states(self.env, job)[-1] not in ("RUNNING", "COMPLETING"), 60, f"job {job} ended")
        return job_states(self.env, job)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm_env):
    root = tmp_path_factory.mktemp("requeue")
    tag = uuid.uuid4().hex[:8]
    out = Runs(slurm_env, root, {"requeued": f"optrepro-requeued-{tag}", "timed_out": f"optrepro-timed-out-{tag}"})
    commands = {
        "requeued": [*LONG, "hydra/launcher=slurm", *SMALL],
        "timed_out": [*LONG, "hydra/launcher=slurm", *SMALL, *TIME_LIMIT],
    }
    for which, overrides in commands.items():
        name = f"hydra.launcher.name={out.names[which]}"
        command = train_command("-m", *overrides, f"hydra.sweep.dir={root / which}", name)
        with (root / f"{which}.log").open("w") as log:
            out.procs[which] = subprocess.Popen(command, env=slurm_env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    # the uninterrupted run, outside SLURM, with the one thread a SLURM job of one CPU gets (OMP_NUM_THREADS)
    with (root / "uninterrupted.log").open("w") as log:
        command = train_command(*LONG, f"paths.run_dir={root / 'uninterrupted'}")
        env = {**slurm_env, "OMP_NUM_THREADS": "1"}
        out.procs["uninterrupted"] = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    yield out
    for proc in out.procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for name in out.names.values():
        subprocess.run(["scancel", f"--name={name}"], env=slurm_env, capture_output=True)


def _run_dir(sweep: Path) -> Path:
    (summary,) = [p for p in sweep.rglob("summary.json") if p.parent.name.startswith("seeds=")]
    return summary.parent


def _rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1 if path.is_file() else 0


def assert_same_records(run_dir: Path, reference: Path) -> None:
    """Both members' metrics.csv byte for byte, and the run's final metrics."""
    summary = json.loads((run_dir / "summary.json").read_text())
    expected = json.loads((reference / "summary.json").read_text())
    assert summary["status"] == expected["status"] == "completed"
    assert summary["config_hash"] == expected["config_hash"]
    assert summary["metrics"] == expected["metrics"]
    for seed in (0, 1):
        rows = (run_dir / f"seed={seed}" / "metrics.csv").read_text()
        assert rows == (reference / f"seed={seed}" / "metrics.csv").read_text(), f"seed={seed}"
        assert len(rows.splitlines()) == 1 + 104


def test_a_job_requeued_while_it_trains_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(runs):
    sweep = runs.folder("requeued")
    member = sweep / "+callbacks.pace._target_=pace.Pace,+callbacks.pace.seconds=0.5,profile.count_scale=0.04"
    rows = member / "seeds=0-1" / "seed=0" / "metrics.csv"
    wait_for(lambda: _rows(rows) >= 8, 240, f"8 epochs in {rows}")
    job = runs.job("requeued")
    subprocess.run(["scontrol", "requeue", job], env=runs.env, check=True, capture_output=True)

    runs.finish("requeued", timeout=300)
    states = runs.states(job)
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED", states
    log = (sweep / ".submitit" / job / f"{job}_0_log.err").read_text()
    assert "interrupted (stopped by SIGTERM)" in log, log[-3000:]  # the run stopped itself, at an epoch's end
    resumed = re.findall(r"resuming from \S+last\.ckpt at epoch (\d+)", log)
    assert len(resumed) == 1 and int(resumed[0]) >= 1, log[-3000:]  # from its checkpoint, not from the start
    runs.finish("uninterrupted", timeout=300)
    assert_same_records(_run_dir(sweep), runs.folder("uninterrupted"))


def test_a_job_that_reaches_its_time_limit_is_requeued_and_completes(runs):
    sweep = runs.folder("timed_out")
    runs.finish("timed_out", timeout=480)
    job = runs.job("timed_out")
    states = runs.states(job)
    assert "REQUEUED" in states and states[-1] == "COMPLETED", states
    limits = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-D", "-j", job, "-o", "Timelimit"], env=runs.env, capture_output=True, text=True
    ).stdout.split()
    assert set(limits) == {"00:01:00"}, limits  # every attempt ran under the one-minute limit
    out = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    err = (sweep / ".submitit" / job / f"{job}_0_log.err").read_text()
    assert "this job is timed-out" in out and "Requeued job" in out, out[-3000:]  # submitit's requeue
    # submitit's signal stopped the run at an epoch's end (it did not exit mid-epoch), and the next run resumed
    assert "interrupted (stopped by SIGUSR2)" in err, err[-3000:]
    assert re.search(r"resuming from \S+last\.ckpt at epoch [1-9]", err), err[-3000:]
    runs.finish("uninterrupted", timeout=300)
    assert_same_records(_run_dir(sweep), runs.folder("uninterrupted"))
