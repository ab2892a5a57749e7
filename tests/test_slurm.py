"""hydra/launcher=slurm without a cluster: what a job books, the refusals, the sbatch file, the requeue signal.
The cluster tier (tests/cluster, ``make test-cluster``) runs the same against a real SLURM."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from optrepro.config import ConfigError, compose
from optrepro.interrupts import RunInterrupted, StopRequests
from optrepro.slurm import (
    OWN_KEYS,
    Booking,
    Node,
    StopThenRequeue,
    booking,
    check_partition,
    executor,
    parse_gpus,
    setup_lines,
)

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

CPU = {"accelerator": "cpu", "devices": 1}
NODES = [Node("n1", cpus=2, memory_mb=8000, gpus=0)]


def launcher(**values) -> dict:
    cfg = compose(["hydra/launcher=slurm"], hydra_config=True).hydra.launcher
    return {**cfg, **values}


@pytest.mark.parametrize(
    ("trainer", "expected"),
    [
        (CPU, Booking(1, 1, 0)),
        ({"accelerator": "gpu", "devices": 1}, Booking(1, 1, 1)),
        ({"accelerator": "cpu", "devices": 2, "strategy": "ddp"}, Booking(1, 2, 0)),
        ({"accelerator": "gpu", "devices": 4, "strategy": "ddp", "num_nodes": 2}, Booking(2, 4, 4)),
    ],
)
def test_the_booking_follows_the_trainer(trainer, expected):
    assert booking(trainer, launcher()) == expected


@pytest.mark.parametrize(
    ("trainer", "values", "message"),
    [
        ({"accelerator": "gpu", "devices": -1}, {}, r"trainer.devices=-1 cannot be booked on SLURM: give a number"),
        ({"accelerator": "auto", "devices": 1}, {}, r"trainer.accelerator=auto cannot be booked on SLURM"),
        (CPU, {"gpus_per_node": 1}, r"gpus_per_node=1 books GPUs that trainer.accelerator=cpu does not use"),
        ({"accelerator": "gpu", "devices": 2}, {"gpus_per_node": 1}, r"gpus_per_node=1 does not match .*devices=2"),
        ({"accelerator": "cpu", "devices": 2}, {"tasks_per_node": 1}, r"tasks_per_node=1 does not match .*devices=2"),
        (CPU, {"nodes": 2}, r"hydra.launcher.nodes=2 does not match trainer.num_nodes=1"),
        (CPU, {"gres": "gpu:1"}, r"hydra.launcher.gres=gpu:1 books GPUs behind trainer.devices' back"),
        (CPU, {"gpus_per_task": 1}, r"hydra.launcher.gpus_per_task is not used"),
        (CPU, {"additional_parameters": {"ntasks": 2}}, r"hydra.launcher.additional_parameters.ntasks books"),
    ],
)
def test_a_launcher_value_that_disagrees_with_the_trainer_is_refused_by_key(trainer, values, message):
    with pytest.raises(ConfigError, match=message):
        booking(trainer, launcher(**values))


@pytest.mark.parametrize(
    ("gres", "gpus"), [("(null)", 0), ("gpu:4", 4), ("gpu:a100:2(S:0-1)", 2), ("gpu:1,shard:8", 1), ("", 0)]
)
def test_gpus_are_read_from_sinfos_gres(gres, gpus):
    assert parse_gpus(gres) == gpus


def test_a_booking_the_partition_cannot_hold_is_refused():
    check_partition(Booking(1, 2, 0), {"cpus_per_task": 1, "mem_gb": 4}, "debug", NODES)  # fits
    with pytest.raises(ConfigError, match="partition debug has no GPUs"):
        check_partition(Booking(1, 1, 1), {"cpus_per_task": 1}, "debug", NODES)
    with pytest.raises(ConfigError, match=r"nodes of partition gpu have at most 2: use trainer.devices<=2"):
        check_partition(Booking(1, 4, 4), {"cpus_per_task": 0}, "gpu", [Node("g", 64, 10**6, 2)])
    with pytest.raises(ConfigError, match=r"cpus_per_task=2 x 2 task\(s\) per node = 4 CPUs.* has 2"):
        check_partition(Booking(1, 2, 0), {"cpus_per_task": 2}, "debug", NODES)
    with pytest.raises(ConfigError, match=r"hydra.launcher.mem_gb=16 is more than the largest node"):
        check_partition(Booking(1, 1, 0), {"cpus_per_task": 1, "mem_gb": 16}, "debug", NODES)


def test_the_sbatch_file_books_the_trainers_devices_activates_the_environment_and_asks_for_requeue(
    tmp_path, monkeypatch
):
    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as if srun were installed
    params = launcher(cpus_per_task=4, setup=["module load cuda"], submitit_folder=str(tmp_path / "%j"))
    params = {k: v for k, v in params.items() if k not in ("_target_", *OWN_KEYS)}
    text = executor(
        params, {"gpu_type": "a100"}, Booking(1, 2, 2), Path(sys.prefix)
    )._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--ntasks-per-node=2", "--gpus-per-node=a100:2", "--cpus-per-task=4", "--mem=32GB", "--requeue"):
        assert f"#SBATCH {line}\n" in text, text
    assert "#SBATCH --signal=USR2@300\n" in text  # submitit's signal, signal_delay_s before the time limit
    setup = text[text.index("# setup") : text.index("# command")].strip().splitlines()[1:]
    assert setup == setup_lines(Path(sys.prefix), ["module load cuda"])
    assert setup[1] == 'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"'


def test_the_environment_this_command_runs_from_is_activated(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    (venv / "pyvenv.cfg").write_text("")
    assert setup_lines(venv, None)[0] == f"source {venv}/bin/activate"
    conda = tmp_path / "conda"
    (conda / "bin").mkdir(parents=True)
    assert setup_lines(conda, [])[0] == f'export PATH={conda}/bin:"$PATH"'
    assert setup_lines(None, ["x"]) == ['export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"', "x"]


class FakeSubmitit:
    """Stands for submitit's handler of its requeue signal: checkpoint and requeue, then SystemExit."""

    def __init__(self):
        self.calls = 0

    def __call__(self, signum, frame):
        self.calls += 1
        raise SystemExit(-1)


@pytest.fixture
def submitit():
    """submitit's requeue handler, as it stands on SIGUSR2 in a job (the previous handler comes back after)."""
    handler = FakeSubmitit()
    previous = signal.signal(signal.SIGUSR2, handler)
    yield handler
    signal.signal(signal.SIGUSR2, previous)


def test_the_requeue_signal_first_stops_a_training_run_at_its_boundary_then_requeues(submitit):
    stop = StopRequests()
    with pytest.raises(SystemExit) as exited, StopThenRequeue(signal.SIGUSR2), stop:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert submitit.calls == 0 and stop.signum == signal.SIGUSR2  # noted; training goes on to its boundary
        try:
            stop.check()
        except RunInterrupted as err:  # what the run does at its boundary: summary interrupted, then exit
            raise SystemExit(err.exit_code) from err
    assert submitit.calls == 1 and exited.value.code == -1  # then submitit requeues
    assert signal.getsignal(signal.SIGUSR2) is submitit


def test_the_requeue_signal_outside_training_requeues_at_once_and_once(submitit):
    with pytest.raises(SystemExit), StopThenRequeue(signal.SIGUSR2):
        os.kill(os.getpid(), signal.SIGUSR2)  # no run is training: nothing to save
        raise AssertionError("not reached: submitit's handler exits")
    assert submitit.calls == 1


def test_a_run_that_finishes_after_the_signal_is_not_requeued(submitit):
    with StopThenRequeue(signal.SIGUSR2), StopRequests():
        os.kill(os.getpid(), signal.SIGUSR2)  # the last epoch ends the run: it completes
    assert submitit.calls == 0
