"""``hydra/launcher=slurm``: Hydra's submitit SLURM launcher with optrepro's bookings, skips and requeue.

- Each sweep point's booking follows its trainer (``optrepro.slurm.booking``); the points are submitted as one
  job array per distinct booking. A mismatch, or a booking the partition cannot hold, stops the command before
  anything is submitted (``optrepro-train: error: ...``, exit status 2).
- Points whose run is already finished with the same config (every record sound) are not submitted: a rerun of a
  sweep submits only what is left, and an unchanged one submits nothing.
- In the job, submitit's requeue signal stops the run at its boundary before submitit requeues it
  (``optrepro.slurm.StopThenRequeue``); requeueing itself is submitit's: ``checkpoint()`` resubmits the same
  arguments, and the run's folder (a sweep's folders are named from the overrides) holds its checkpoint.

Imported by Hydra's plugin scan at every start: nothing heavy at import time. (No ``from __future__ import
annotations``: the scan runs the module before it is in ``sys.modules``, where dataclasses look string annotations
up.)
"""

import copy
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict, read_write

try:  # the slurm extra; without it optrepro-train names the package to install (optrepro.extras)
    from hydra_plugins.hydra_submitit_launcher import config as submitit_config
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher
except ImportError:
    submitit_config = submitit_launcher = None

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """One sweep point, before submission."""

    idx: int
    overrides: list[str]
    booking: Any  # optrepro.slurm.Booking
    finished: JobReturn | None = None  # the point's result when its run has nothing left to do


if submitit_config is not None:

    @dataclass
    class OptreproSlurmConf(submitit_config.SlurmQueueConf):
        """The submitit SLURM launcher's keys, with the booking left to the trainer (None: follow it)."""

        _target_: str = "hydra_plugins.optrepro_slurm.launcher.OptreproSlurmLauncher"
        nodes: Optional[int] = None  # noqa: UP045 (Hydra's structured configs read typing.Optional)
        tasks_per_node: Optional[int] = None  # noqa: UP045
        gpus_per_node: Optional[int] = None  # noqa: UP045
        gpu_type: Optional[str] = None  # noqa: UP045
        activate: Optional[str] = "auto"  # noqa: UP045

    ConfigStore.instance().store(
        group="hydra/launcher", name="optrepro_slurm", node=OptreproSlurmConf(), provider="optrepro"
    )

    class OptreproSlurmLauncher(submitit_launcher.SlurmLauncher):
        """Hydra's ``SlurmLauncher`` with optrepro's ``launch`` (bookings, skips) and ``__call__`` (requeue)."""

        def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
            """One sweep point, in its SLURM job."""
            import signal

            import submitit

            from optrepro.slurm import StopThenRequeue

            try:
                signum = submitit.JobEnvironment()._usr_sig()
            except Exception:  # not the SLURM environment (a test calling the launcher directly)
                signum = signal.SIGUSR2
            with StopThenRequeue(signum):
                result = super().__call__(*args, **kwargs)
            # the point is done: a time-limit signal from now on (SLURM sends it on its own clock) would only kill a
            # finished job while it exits, and SLURM would call it FAILED
            signal.signal(signum, signal.SIG_IGN)
            return result

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            from optrepro import slurm
            from optrepro.config import ConfigError

            assert self.config is not None and self.hydra_context is not None
            params = dict(self.params)
            own = {key: params.pop(key, None) for key in slurm.OWN_KEYS}
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            try:
                prefix = slurm.environment(own["activate"])
                jobs = [self._prepare(list(o), initial_job_idx + i, params) for i, o in enumerate(job_overrides)]
                pending = [j for j in jobs if j.finished is None]
                if pending:
                    found = slurm.partition_nodes(params.get("partition"))
                    for need in sorted({j.booking for j in pending}):
                        if found is not None:
                            slurm.check_partition(need, params, *found)
            except ConfigError as err:
                print(f"optrepro-train: error: {err}", file=sys.stderr)
                sys.exit(2)

            log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            for j in jobs:
                note = "  (finished: not submitted)" if j.finished is not None else ""
                log.info(f"\t#{j.idx} : {' '.join(filter_overrides(j.overrides))}{note}")

            handles: dict[int, Any] = {}
            for need in sorted({j.booking for j in pending}):
                group = [j for j in pending if j.booking == need]
                executor = slurm.executor(params, own, need, prefix)
                state = Singleton.get_state()
                args = [(j.overrides, "hydra.sweep.dir", j.idx, f"job_id_for_{j.idx}", state) for j in group]
                for j, handle in zip(group, executor.map_array(self, *zip(*args))):
                    handles[j.idx] = handle
            return [j.finished if j.finished is not None else handles[j.idx].results()[0] for j in jobs]

        def _prepare(self, overrides: list[str], idx: int, params: dict[str, Any]) -> _Job:
            """The point's booking, and its result when its run is already finished (composed as the job will be:
            ``hydra.core.utils.run_job`` sets the Hydra config and the output folder the same way)."""
            from optrepro import slurm

            assert self.config is not None and self.hydra_context is not None
            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config.hydra.job):
                config.hydra.job.num = idx
                config.hydra.job.id = f"job_id_for_{idx}"
            hydra_config = HydraConfig.instance()
            saved = hydra_config.cfg
            try:
                hydra_config.set_config(config)
                out = Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
                with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                    config.hydra.runtime.output_dir = os.path.abspath(out)
                hydra_config.set_config(config)
                task_cfg = copy.deepcopy(config)
                with read_write(task_cfg), open_dict(task_cfg):
                    del task_cfg["hydra"]
                trainer = OmegaConf.to_container(task_cfg.trainer, resolve=True)
                need = slurm.booking(trainer, params)
                run_dir = Path(task_cfg.paths.get("run_dir") or out)
                summary = slurm.finished(task_cfg, run_dir)
                done = None
                if summary is not None:
                    done = JobReturn(
                        overrides=overrides,
                        cfg=task_cfg,
                        hydra_cfg=copy.deepcopy(hydra_config.cfg),
                        working_dir=str(run_dir),
                        task_name=str(config.hydra.job.name),
                        status=JobStatus.COMPLETED,
                        _return_value=slurm.monitored_value(summary),
                    )
                return _Job(idx, overrides, need, done)
            finally:
                hydra_config.cfg = saved
