"""SLURM through submitit (``hydra/launcher=slurm``, docs/architecture.md "Clusters").

What a job books follows its trainer: ``trainer.devices`` processes (SLURM tasks) per node, as many GPUs when
``trainer.accelerator=gpu``, ``trainer.num_nodes`` nodes. A launcher value set by hand that disagrees with the
trainer, or a booking the partition cannot hold, is refused here, naming the keys, before anything is submitted.
The launcher (``hydra_plugins.optrepro_slurm``) also leaves out the sweep points that are already finished, so a
rerun submits only what is left, and makes submitit's requeue signal stop a run at its boundary before requeueing.

Nothing here imports torch: the submitting process only composes configs and reads run folders.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from omegaconf import DictConfig

from optrepro.config import ConfigError, apply_profile
from optrepro.records import FINISHED, finished_problems, read_summary
from optrepro.utils import config_hash

#: launcher keys that are optrepro's own (the rest are the Hydra submitit launcher's)
OWN_KEYS = ("activate", "gpu_type")
#: sbatch options that would book processes or GPUs behind trainer.devices' back (additional_parameters)
BOOKING_FLAGS = ("gres", "gpus", "gpus-per-node", "gpus-per-task", "ntasks", "ntasks-per-node", "nodes")
GPU_ACCELERATORS = ("gpu", "cuda")


@dataclass(frozen=True, order=True)
class Booking:
    """What one job asks SLURM for, beyond CPUs and memory."""

    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0

    def parameters(self, gpu_type: str | None = None) -> dict[str, Any]:
        """The submitit parameters of this booking (``gpus_per_node`` only when it books GPUs)."""
        out: dict[str, Any] = {"nodes": self.nodes, "tasks_per_node": self.tasks_per_node}
        if self.gpus_per_node:
            out["gpus_per_node"] = f"{gpu_type}:{self.gpus_per_node}" if gpu_type else self.gpus_per_node
        return out


def booking(trainer: Mapping[str, Any], launcher: Mapping[str, Any]) -> Booking:
    """The booking one job's ``trainer`` node needs; ``ConfigError`` when the launcher's explicit values disagree.

    Lightning under SLURM runs one process per SLURM task and checks that the tasks per node equal
    ``trainer.devices``; with ``trainer.accelerator=gpu`` each process takes one of the node's GPUs.
    """
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator not in ("cpu", *GPU_ACCELERATORS):
        raise ConfigError(
            f"trainer.accelerator={accelerator} cannot be booked on SLURM: the launcher books what the trainer "
            "names, so say trainer=cpu or trainer=gpu"
        )
    devices = trainer.get("devices", 1)
    if not (isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1):
        raise ConfigError(
            f"trainer.devices={devices!r} cannot be booked on SLURM: give a number (trainer.devices=2 books two "
            "tasks per node, and two GPUs with trainer=gpu)"
        )
    num_nodes = trainer.get("num_nodes", 1)
    need = Booking(nodes=num_nodes, tasks_per_node=devices, gpus_per_node=devices if accelerator != "cpu" else 0)
    _check_explicit(launcher, need, accelerator, devices)
    return need


def _check_explicit(launcher: Mapping[str, Any], need: Booking, accelerator: str, devices: int) -> None:
    nodes, tasks, gpus = (launcher.get(k) for k in ("nodes", "tasks_per_node", "gpus_per_node"))
    if nodes is not None and nodes != need.nodes:
        raise ConfigError(
            f"hydra.launcher.nodes={nodes} does not match trainer.num_nodes={need.nodes}: Lightning must train on "
            f"the nodes SLURM gives; set +trainer.num_nodes={nodes} (it books them), or leave hydra.launcher.nodes "
            "unset"
        )
    if tasks is not None and tasks != need.tasks_per_node:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={tasks} does not match trainer.devices={devices}: under SLURM Lightning "
            f"runs one process per task, so {devices} device(s) need {devices} task(s) per node; leave "
            "hydra.launcher.tasks_per_node unset (it follows trainer.devices)"
        )
    if gpus is not None and gpus != need.gpus_per_node:
        if not need.gpus_per_node:
            raise ConfigError(
                f"hydra.launcher.gpus_per_node={gpus} books GPUs that trainer.accelerator={accelerator} does not "
                "use: add trainer=gpu (the GPUs follow trainer.devices), or leave hydra.launcher.gpus_per_node unset"
            )
        raise ConfigError(
            f"hydra.launcher.gpus_per_node={gpus} does not match trainer.devices={devices} on "
            f"trainer.accelerator={accelerator}: leave hydra.launcher.gpus_per_node unset (it follows trainer.devices)"
        )
    for key in ("gpus_per_task", "cpus_per_gpu", "mem_per_gpu"):
        if launcher.get(key) is not None:
            raise ConfigError(
                f"hydra.launcher.{key} is not used: GPUs are booked per node from trainer.devices (with "
                "hydra.launcher.gpu_type for a GPU type); give CPUs with hydra.launcher.cpus_per_task and memory "
                "with hydra.launcher.mem_gb"
            )
    if "gpu" in str(launcher.get("gres") or ""):
        raise ConfigError(
            f"hydra.launcher.gres={launcher['gres']} books GPUs behind trainer.devices' back: GPUs follow "
            "trainer=gpu trainer.devices=N (hydra.launcher.gpu_type=<type> names a GPU type)"
        )
    extra = launcher.get("additional_parameters") or {}
    for flag in BOOKING_FLAGS:
        for key in (flag, flag.replace("-", "_")):
            if key in extra:
                raise ConfigError(
                    f"hydra.launcher.additional_parameters.{key} books what trainer.devices and trainer.num_nodes "
                    "decide: leave it out (the launcher books tasks, GPUs and nodes from the trainer)"
                )


@dataclass(frozen=True)
class Node:
    """One node of a partition, as ``sinfo`` reports it."""

    name: str
    cpus: int
    memory_mb: int
    gpus: int


def parse_gpus(gres: str) -> int:
    """GPUs in a Gres string of sinfo (``gpu:4``, ``gpu:a100:2(S:0-1)``, ``gpu:1,shard:8``, ``(null)``)."""
    total = 0
    for item in gres.split(","):
        fields = re.sub(r"\(.*?\)", "", item).split(":")
        if fields[0] == "gpu":
            total += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return total


def partition_nodes(partition: str | None) -> tuple[str, list[Node]] | None:
    """(partition name, its nodes) from ``sinfo``; the default partition when ``partition`` is None. None when
    there is no ``sinfo`` to ask (then submitit reports what is missing)."""
    if shutil.which("sinfo") is None:
        return None
    cmd = ["sinfo", "--noheader", "--Node", "--format=%N|%c|%m|%G|%P"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 4]
    names = sorted({p.rstrip("*") for *_, p in rows})
    if partition is None:
        defaults = [p for *_, p in rows if p.endswith("*")]
        if not defaults:
            return None
        partition = defaults[0].rstrip("*")
    nodes = {}
    for name, cpus, mem, gres, part in rows:
        if part.rstrip("*") == partition:
            memory = int(re.sub(r"\D", "", mem) or 0)
            nodes[name] = Node(name, int(re.sub(r"\D", "", cpus) or 0), memory, parse_gpus(gres))
    if not nodes:
        raise ConfigError(
            f"hydra.launcher.partition={partition} is not a partition of this cluster (sinfo lists: "
            f"{', '.join(names) or 'none'})"
        )
    return partition, list(nodes.values())


def check_partition(need: Booking, launcher: Mapping[str, Any], partition: str, nodes: list[Node]) -> None:
    """Refuse a booking that no node of the partition can hold (SLURM would leave it pending or refuse it)."""
    where = f"partition {partition}"
    if need.gpus_per_node:
        most = max(n.gpus for n in nodes)
        if not most:
            raise ConfigError(
                f"trainer.accelerator=gpu books {need.gpus_per_node} GPU(s) per node, and {where} has no GPUs "
                "(sinfo shows no gpu Gres): choose a GPU partition with hydra.launcher.partition=<name>, or train "
                "on CPUs with trainer=cpu"
            )
        if most < need.gpus_per_node:
            raise ConfigError(
                f"trainer.devices={need.gpus_per_node} books {need.gpus_per_node} GPUs per node, and the nodes of "
                f"{where} have at most {most}: use trainer.devices<={most} (with +trainer.num_nodes for more)"
            )
    cpus = (launcher.get("cpus_per_task") or 1) * need.tasks_per_node
    if cpus > max(n.cpus for n in nodes):
        raise ConfigError(
            f"hydra.launcher.cpus_per_task={launcher.get('cpus_per_task') or 1} x {need.tasks_per_node} task(s) "
            f"per node = {cpus} CPUs, and the largest node of {where} has {max(n.cpus for n in nodes)}: lower "
            "hydra.launcher.cpus_per_task"
        )
    mem_gb = launcher.get("mem_gb")
    if mem_gb and mem_gb * 1024 > max(n.memory_mb for n in nodes):
        raise ConfigError(
            f"hydra.launcher.mem_gb={mem_gb} is more than the largest node of {where} has "
            f"({max(n.memory_mb for n in nodes)} MB): lower hydra.launcher.mem_gb"
        )
    if need.nodes > len(nodes):
        raise ConfigError(f"trainer.num_nodes={need.nodes} is more nodes than {where} has ({len(nodes)})")


def environment(activate: str | None) -> Path | None:
    """The Python environment the jobs run in: ``auto`` is the one this command runs from (``sys.prefix``), a path
    is that environment, ``none`` (or null) leaves it to the cluster's defaults and the ``setup`` lines."""
    if activate is None or str(activate).lower() in ("none", "null", ""):
        return None
    prefix = Path(sys.prefix if activate == "auto" else activate).expanduser().resolve()
    if activate != "auto" and not (prefix / "bin" / "python").exists():
        raise ConfigError(f"hydra.launcher.activate={activate}: no bin/python there (give a venv or conda env)")
    return prefix


def setup_lines(prefix: Path | None, user_lines: list[str] | None) -> list[str]:
    """The sbatch lines run before the job starts: activate the environment, give torch the job's CPUs (else every
    job takes every core of its node), then the user's own ``setup`` lines."""
    lines = []
    if prefix is not None:
        q = shlex.quote(str(prefix))
        if (prefix / "bin" / "activate").is_file() and (prefix / "pyvenv.cfg").is_file():
            lines.append(f"source {q}/bin/activate")
        else:  # a conda env or a plain installation: its programs first on PATH
            lines.append(f'export PATH={q}/bin:"$PATH"')
    lines.append('export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"')
    return lines + list(user_lines or [])


def submitit_parameters(
    params: Mapping[str, Any], own: Mapping[str, Any], need: Booking, prefix: Path | None
) -> dict[str, Any]:
    """The submitit parameters of one job array: the launcher's keys (``submitit_folder`` and
    ``max_num_timeout`` go to the executor itself), the booking, the setup lines, and ``--requeue`` (submitit
    requeues with ``scontrol requeue``, which a cluster with ``JobRequeue=0`` refuses without it)."""
    out = {k: v for k, v in params.items() if k not in ("submitit_folder", "max_num_timeout", *OWN_KEYS)}
    out.pop("gpus_per_node", None)
    out.update(need.parameters(own.get("gpu_type")))
    out["setup"] = setup_lines(prefix, out.get("setup"))
    out["additional_parameters"] = {"requeue": True, **(out.get("additional_parameters") or {})}
    return out


def executor(params: Mapping[str, Any], own: Mapping[str, Any], need: Booking, prefix: Path | None) -> Any:
    """The submitit executor of one job array, given the launcher's keys as Hydra's submitit launcher passes them
    (its base keys plain, the others prefixed ``slurm_``)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    init: dict[str, Any] = {"slurm_max_num_timeout": params["max_num_timeout"]}
    python = job_python(prefix)
    if python is not None:
        init["slurm_python"] = python
    out = submitit.AutoExecutor(cluster="slurm", folder=params["submitit_folder"], **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    rest = submitit_parameters(params, own, need, prefix)
    # a typed GPU count ("a100:2") is no int: it goes by the slurm-specific name, which skips the generic type check
    typed = {k for k, v in rest.items() if k == "gpus_per_node" and isinstance(v, str)}
    out.update_parameters(**{k if k in base - typed else f"slurm_{k}": v for k, v in rest.items()})
    return out


def job_python(prefix: Path | None) -> str | None:
    """The Python that runs the job, when it is not this one (an explicit ``hydra.launcher.activate``)."""
    if prefix is None or prefix == Path(sys.prefix).resolve():
        return None
    return shlex.quote(str(prefix / "bin" / "python"))


def finished(cfg: DictConfig, run_dir: Path, profile_applied: bool = False) -> dict[str, Any] | None:
    """The summary of a run that has nothing left to do (finished with this config, every record sound), else None.

    The same test the run itself makes before skipping (``optrepro.train``); anything in doubt (a value the profile
    refuses, a broken record) is None, so the job is submitted and the run itself decides and says why.
    ``profile_applied``: ``cfg`` is already the config that runs (``train.prepare``'s; a profile applied twice would
    scale its counts twice), not Hydra's composition.
    """
    try:
        cfg = cfg if profile_applied else apply_profile(cfg)
        chash = config_hash(cfg)
    except Exception:
        return None
    summary = read_summary(run_dir)
    if not summary or summary.get("status") not in FINISHED or summary.get("config_hash") != chash:
        return None
    if cfg.task.get("module") == "toy":
        return summary
    seeds = [cfg.seed + i for i in range(cfg.ensemble.size)]
    if finished_problems(run_dir, seeds, cfg.trainer.epochs, bool(cfg.trainer.checkpoint)):
        return None
    return summary


def monitored_value(summary: dict[str, Any]) -> float | None:
    """What a finished job returns to the sweeper (``optrepro.cli``: the monitored metric)."""
    metrics = summary.get("metrics") or {}
    value = metrics.get(metrics.get("monitor", ""))
    return value if isinstance(value, float) else None


class StopThenRequeue:
    """In a submitit job, submitit's requeue signal (``USR2``; SLURM sends it ``signal_delay_s`` before the time
    limit) first stops the run the way SIGTERM does (``optrepro.interrupts``: the epoch in progress finishes and is
    checkpointed, the summary says ``interrupted``), then submitit requeues the job with the same arguments.

    Submitit's own handler would raise ``SystemExit`` at once, mid-epoch, losing the epoch. When the signal comes
    while no run is training (starting up, writing its results), there is nothing to save: submitit's handler runs
    at once. A context manager around the job.
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.asked = False
        self.handled = False
        self._submitit: Any = None

    def __enter__(self) -> StopThenRequeue:
        self._submitit = signal.getsignal(self.signum)
        signal.signal(self.signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        from optrepro.interrupts import request_stop

        self.asked = True
        if not request_stop(signum):  # no run is training: nothing to save, requeue at once
            self._requeue(frame)
        # else the run stops at its boundary; __exit__ then requeues

    def _requeue(self, frame: FrameType | None) -> None:
        if self.handled or not callable(self._submitit):
            return
        self.handled = True
        self._submitit(self.signum, frame)  # checkpoint() and `scontrol requeue`, then SystemExit

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        signal.signal(self.signum, self._submitit)
        if self.asked and exc_type is not None and issubclass(exc_type, SystemExit):
            self._requeue(None)
