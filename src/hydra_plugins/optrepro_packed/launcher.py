"""``hydra/launcher=packed``: Hydra's basic launcher, with the jobs that can train together packed into ensembles.

1. Every job is set up as Hydra's basic launcher sets it up (``hydra.core.utils.run_job``: its folder, its
   ``.hydra/`` files, its log), and checked as a run checks itself (``optrepro.train.prepare``): a refused job
   fails alone, with the reason in its summary.
2. Finished jobs are left out; the rest are grouped (``optrepro.packing.plan``), and the launcher logs which jobs
   pack, which run alone and why, and which keys kept packs apart.
3. Each pack trains as one ensemble (``optrepro.packed.train_pack``); a job that runs alone runs as under
   the basic launcher. Every job returns what it would alone (the monitored metric), so sweepers see no difference.

Imported by Hydra's plugin scan at every start: nothing heavy at import time. (No ``from __future__ import
annotations``: the scan runs the module before it is in ``sys.modules``, where dataclasses look string annotations
up.)
"""

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.optrepro_packed.launcher.PackedLauncher"
    max_members: Optional[int] = None  # noqa: UP045 (Hydra's structured configs read typing.Optional)


ConfigStore.instance().store(
    group="hydra/launcher", name="optrepro_packed", node=PackedLauncherConf, provider="optrepro"
)


def _prepare(cfg: DictConfig) -> Any:
    """The job function of step 1: the config that runs, checked and saved, with the job's folder and label."""
    from optrepro.config import ConfigError
    from optrepro.packed import PackJob
    from optrepro.train import _hydra_context, prepare, sweep_point_refused

    try:
        ready = prepare(cfg)
    except ConfigError as err:
        print(f"optrepro-train: error: {err}", file=sys.stderr)
        sweep_point_refused(cfg, err)
        raise
    hydra_dir, _, tag = _hydra_context()
    return PackJob(ready, Path(ready.paths.get("run_dir") or hydra_dir), tag)


class PackedLauncher(Launcher):
    def __init__(self, max_members: Optional[int] = None) -> None:  # noqa: UP045
        self.max_members = max_members
        self.config: Optional[DictConfig] = None  # noqa: UP045
        self.task_function: Optional[TaskFunction] = None  # noqa: UP045
        self.hydra_context: Optional[HydraContext] = None  # noqa: UP045

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def _run(self, idx: int, overrides: Sequence[str], function: TaskFunction) -> JobReturn:
        assert self.config is not None and self.hydra_context is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from optrepro.packed import train_pack
        from optrepro.packing import plan
        from optrepro.slurm import finished, monitored_value

        setup_globals()
        assert self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs, packed where they can be")
        runs: list[JobReturn] = []
        ready: dict[int, Any] = {}  # position -> PackJob of the jobs left to train
        for k, overrides in enumerate(job_overrides):
            idx = initial_job_idx + k
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            ret = self._run(idx, overrides, _prepare)
            runs.append(ret)
            if ret.status != JobStatus.COMPLETED:
                continue  # refused: its summary says why, and the sweep fails at its end
            job = ret.return_value
            done = finished(job.cfg, job.run_dir, profile_applied=True)
            if done is not None:
                log.info(f"\t#{idx} finished already: skipped")
                ret.return_value = monitored_value(done)
                continue
            ready[k] = job
        positions = list(ready)
        configs = [OmegaConf.to_container(ready[k].cfg, resolve=True) for k in positions]
        sizes = [int(ready[k].cfg.ensemble.size) for k in positions]
        the_plan = plan(configs, sizes, self.max_members)
        for line in the_plan.messages(lambda i: f"#{initial_job_idx + positions[i]}"):
            log.info(line)
        for pack in the_plan.packs:
            jobs = [ready[positions[i]] for i in pack]

            def alone(j: int, pack: list[int] = pack) -> JobReturn:
                k = positions[pack[j]]
                return self._run(initial_job_idx + k, job_overrides[k], self.task_function)

            try:
                metrics = train_pack(jobs, sweep_dir, alone)
            except SystemExit:
                raise  # interrupted: every job's summary says so; the same command resumes
            except Exception as err:  # the sweep goes on with the other packs, then fails
                log.error("a pack of %d jobs failed (the sweep goes on): %s", len(jobs), err)
                for i in pack:
                    runs[positions[i]].status, runs[positions[i]].return_value = JobStatus.FAILED, err
                continue
            for i, m in zip(pack, metrics):
                if isinstance(m, JobReturn):
                    runs[positions[i]] = m
                else:
                    runs[positions[i]].return_value = monitored_value({"metrics": m})
        for i in sorted(the_plan.alone):
            k = positions[i]
            runs[k] = self._run(initial_job_idx + k, job_overrides[k], self.task_function)
        return runs
