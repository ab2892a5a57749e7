"""One run: ``run(cfg) -> dict``, called by ``optrepro-train`` (``optrepro.cli``), tests and scripts.

run(cfg): profile -> checks -> skip if already completed -> seed -> datamodule and task -> members (one model or a
vmapped ensemble) -> the one loop (``optrepro.loop``) with the method and optimizer -> loggers and callbacks ->
Trainer.fit -> per-member ``metrics.csv`` and ``summary.json``, and the run's own ``summary.json``.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from optrepro.checkpoints import LAST, LastCheckpoint, resumable_epoch
from optrepro.config import ConfigError, apply_profile, validate
from optrepro.ensemble import build_members
from optrepro.interrupts import RunInterrupted, StopOnSignal, StopRequests
from optrepro.loggers import build_loggers, finish_loggers, log_tables, toy_tables, upload_to_wandb
from optrepro.loop import TrainingLoop
from optrepro.methods.base import check_applicable
from optrepro.optim import INNA
from optrepro.progress import CompactProgress
from optrepro.records import (
    FINISHED,
    METRICS,
    SUMMARY,
    CorruptRecords,
    DiskFull,
    MemberLog,
    RunLock,
    Timer,
    checkpoint_problem,
    finished_problems,
    load_summary,
    member_dirs,
    provenance,
    set_aside,
    write_summary,
)
from optrepro.tasks import make_task, task_class
from optrepro.trainer import (
    build_callbacks,
    build_trainer,
    check_callbacks,
    check_devices,
    has_progress_bar,
    trainer_arguments,
)
from optrepro.utils import build, config_hash

log = logging.getLogger("optrepro")


def save_config_that_runs(cfg: DictConfig) -> None:
    """Under Hydra, make ``.hydra/config.yaml`` the config that runs (the profile applied); Hydra's composition,
    saved before the profile, is kept beside it as ``.hydra/composed.yaml``."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None or rank_zero_only.rank != 0:
        return
    hc = HydraConfig.get()
    folder = Path(hc.runtime.output_dir) / hc.output_subdir
    saved = folder / "config.yaml"
    if saved.is_file() and not (folder / "composed.yaml").exists():
        saved.replace(folder / "composed.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "config.yaml.tmp"
    OmegaConf.save(cfg, tmp)
    tmp.replace(saved)


def sweep_point_refused(cfg: DictConfig, err: ConfigError) -> bool:
    """In a sweep, record a point whose config was refused (its folder's summary: ``failed``, with the reason) and
    return True: the point fails alone. Outside a sweep, return False (the command stops)."""
    hydra_dir, multirun, _ = _hydra_context()
    if not multirun or hydra_dir is None or rank_zero_only.rank != 0:
        return False
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # the refused value may be what does not resolve
        config = OmegaConf.to_container(cfg, resolve=False)
    summary = {"kind": "run", "status": "failed", "error": f"refused: {err}", "experiment": cfg.get("name")}
    write_summary(hydra_dir, {**summary, "seed": cfg.get("seed"), "config": config, **provenance()})
    return True


def _hydra_context() -> tuple[Path | None, bool, str]:
    """(output dir, multirun?, job tag) when running under Hydra, else (None, False, '')."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, False, ""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    tag = hc.job.override_dirname if multirun else ""
    return Path(hc.runtime.output_dir), multirun, tag


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train one preset (one seed, or ``ensemble.size`` seeds at once) and return its final metrics.

    A run directory is owned by one process at a time (``RunLock``): a second process that finds it taken skips
    it. A finished run (completed or diverged, same config) is skipped when all its records check out, and redone
    from the start when one does not (``records.record_problems``); an interrupted or failed one resumes from its
    checkpoint when the checkpoint is whole, and starts over when it is not (the broken file is set aside).
    """
    share = thread_share()
    if share is not None:
        torch.set_num_threads(share)
    cfg = prepare(cfg)
    hydra_dir, multirun, tag = _hydra_context()
    run_dir = Path(cfg.paths.get("run_dir") or hydra_dir or "outputs/run")
    label = tag or str(run_dir)
    lock = RunLock(run_dir) if rank_zero_only.rank == 0 else None  # DDP: the launching rank holds it
    if lock is not None and not lock.acquire():
        print(f"[{label}] in progress in process {lock.holder()}: skipped here", file=sys.stderr)
        return {"monitor": cfg.monitor}
    try:
        return _run_owned(cfg, run_dir, multirun, label)
    finally:
        if lock is not None:
            lock.release()


def prepare(cfg: DictConfig) -> DictConfig:
    """The config that runs (the profile applied), checked: whatever this run cannot do is refused here, before
    anything trains; under Hydra it is saved as the job's ``.hydra/config.yaml``."""
    cfg = apply_profile(cfg)
    validate(cfg)
    trainer_arguments(cfg)  # an unknown or managed Trainer flag is refused before anything runs
    check_callbacks(cfg)
    if cfg.task.module == "toy":
        _check_toy(cfg)
    else:
        _check_task(cfg, task_class(cfg.task.module), cfg.ensemble.size)
        check_devices(cfg)
    save_config_that_runs(cfg)
    return cfg


def thread_share() -> int | None:
    """Under Hydra's joblib launcher, each worker's share of the cores (``cpu_count // n_jobs``, at least 1), which
    ``run`` gives torch; None elsewhere, or when ``OMP_NUM_THREADS`` already says. Without it every worker takes
    every core, and two jobs on two cores run slower than one."""
    from hydra.core.hydra_config import HydraConfig

    if os.environ.get("OMP_NUM_THREADS") or not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = int(launcher.get("n_jobs") or -1)
    jobs = cores if jobs < 0 else jobs  # joblib: -1 is one job per core
    return max(1, cores // max(1, jobs))


def _say(label: str, message: str) -> None:
    print(f"[{label}] {message}", file=sys.stderr)


def _previous_summary(run_dir: Path, label: str) -> dict[str, Any] | None:
    """The summary left by an earlier attempt; an unreadable one is set aside (and the run starts over)."""
    try:
        return load_summary(run_dir)
    except FileNotFoundError:
        return None
    except CorruptRecords as err:
        _say(label, f"{err}: set aside as {set_aside(run_dir / SUMMARY).name}, the run starts over")
        return None


def _resume_point(cfg: DictConfig, ckpt: Path, previous: bool, label: str) -> int | None:
    """The trainer epoch to resume at from the checkpoint ``ckpt`` (a run's ``checkpoints/last.ckpt``, a pack's),
    or None to start from the beginning (no checkpoint, or ``previous`` false: no earlier attempt of this config).
    A checkpoint that is not whole is set aside, saying so."""
    if not (cfg.trainer.checkpoint and ckpt.is_file() and previous):
        return None
    problem = checkpoint_problem(ckpt)
    if problem:
        _say(label, f"{problem}: set aside as {set_aside(ckpt).name}, the run starts over from epoch 0")
        return None
    return resumable_epoch(ckpt)


def earlier_attempt(cfg: DictConfig, run_dir: Path, label: str) -> tuple[dict[str, Any] | None, bool]:
    """(the summary an earlier attempt of this config left, whether it finished with every record sound: nothing
    left to do). A summary of another config, or of a finished run whose records are broken, is no attempt: the run
    starts over (saying so)."""
    previous = _previous_summary(run_dir, label)
    if previous is not None and previous.get("config_hash") != config_hash(cfg):
        return None, False  # another config ran here: nothing of it is reused
    if previous is not None and previous["status"] in FINISHED:
        problems = _finished_problems(cfg, run_dir, [cfg.seed + i for i in range(cfg.ensemble.size)])
        if not problems:
            _say(label, f"already {previous['status']}, skipped ({run_dir / SUMMARY})")
            return previous, True
        _say(label, f"{previous['status']}, but {'; '.join(problems)}: redone from the start")
        return None, False
    return previous, False


def _run_owned(cfg: DictConfig, run_dir: Path, multirun: bool, label: str) -> dict[str, Any]:
    """``run`` once this process holds the run directory."""
    previous, done = earlier_attempt(cfg, run_dir, label)
    if done:
        return previous.get("metrics", {})
    chash = config_hash(cfg)
    if cfg.task.module == "toy":
        return run_toy(cfg, run_dir, chash)
    seeds = [cfg.seed + i for i in range(cfg.ensemble.size)]
    resume_at = _resume_point(cfg, run_dir / LAST, previous is not None, label)
    return _train(cfg, run_dir, chash, seeds, resume_at, multirun, label)


def _finished_problems(cfg: DictConfig, run_dir: Path, seeds: list[int]) -> list[str]:
    """What a rerun finds broken in a finished run (``records.finished_problems``); a broken checkpoint is set aside."""
    if cfg.task.module == "toy":
        return []  # a toy writes its tables and its summary once, at the end
    problems = finished_problems(run_dir, seeds, cfg.trainer.epochs, bool(cfg.trainer.checkpoint))
    ckpt = run_dir / LAST
    if ckpt.is_file() and any(p.startswith(str(ckpt)) for p in problems):
        set_aside(ckpt)
    return problems


def _train(
    cfg: DictConfig, run_dir: Path, chash: str, seeds: list[int], resume_at: int | None, multirun: bool, label: str
) -> dict[str, Any]:
    ckpt = run_dir / LAST
    tag = f"{cfg.name} {_hydra_context()[2]} seed={cfg.seed}".replace("  ", " ")
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build(cfg.task, seeds=seeds, limit_batches=cfg.trainer.limit_batches)
    task = make_task(cfg.task.module, cfg.task.name, datamodule)
    method = build(cfg.method, keep=("name",))
    check_applicable(method, task, len(seeds))
    optimizer = prefer_foreach(build(cfg.optimizer, _partial_=True))
    if len(seeds) > 1 and not getattr(optimizer.func, "elementwise", True):
        raise ConfigError(
            f"optimizer {optimizer.func.__name__} reduces over all parameters, which would mix the members of an "
            f"ensemble: use ensemble.size=1 (and sweep seeds) with it, not ensemble.size={len(seeds)}"
        )
    # Under DDP every rank runs this function; only rank 0 writes metrics and summaries.
    writer = rank_zero_only.rank == 0
    member_log = None
    if writer:
        member_log, resume_at = _member_log(run_dir, seeds, task.metrics(), resume_at, method.source_epochs, label)
    members = build_members(lambda: build(cfg.model), seeds, compile=cfg.trainer.compile)
    lr_schedule = build(cfg.schedule, total=cfg.trainer.epochs)
    module = TrainingLoop(
        members,
        task,
        method,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        log=member_log,
        weight_decay=cfg.weight_decay,
        train_metrics=cfg.train_metrics,
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loggers = build_loggers(cfg.logger, run_dir, cfg.name, [str(t) for t in cfg.get("tags", [])], resolved)
    callbacks = build_callbacks(cfg, loggers)  # after the loggers: a W&B that did not start is a logger less
    interactive = sys.stderr.isatty() and not multirun and len(seeds) == 1
    if writer and not interactive and not has_progress_bar(callbacks):
        callbacks.append(CompactProgress(tag, len(seeds)))
    stop = StopRequests()
    # with a checkpoint, a stop signal ends the epoch in progress and checkpoints it; without, the next batch stops
    callbacks.append(StopOnSignal(stop, finish_epoch=bool(cfg.trainer.checkpoint)))
    if cfg.trainer.checkpoint:
        callbacks.append(LastCheckpoint(ckpt, cfg.trainer.checkpoint_every, stop))
    max_epochs = method.source_epochs + cfg.trainer.epochs
    trainer = build_trainer(cfg, run_dir, max_epochs, loggers, callbacks, interactive)

    base = {"experiment": cfg.name, "method": method.name, "config_hash": chash, "config": resolved, **provenance()}
    base["torch_threads"] = torch.get_num_threads()
    kind = "ensemble" if len(seeds) > 1 else "run"
    if writer:
        write_summary(run_dir, {**base, "kind": kind, "status": "running"})
    timer, outcome, stopped_by = Timer(), "completed", None
    try:
        with stop:
            if resume_at is not None:
                source = method.source_epochs
                after = f" (trainer epoch {resume_at}, after {source} source epochs)" if source else ""
                _say(tag, f"resuming from {ckpt} at epoch {resume_at - source}{after}")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt if resume_at is not None else None)
            if trainer.interrupted:  # Lightning returned without finishing (a stop it handled itself)
                raise RunInterrupted(stop.signum or signal.SIGINT)
    except (RunInterrupted, KeyboardInterrupt, SystemExit) as err:  # SIGTERMException is a SystemExit
        outcome, stopped_by = "interrupted", err
    except Exception as err:
        outcome, stopped_by = "failed", err
    finally:
        base["wall_time_s"] = timer.seconds
        stopped = [c.stopped_epoch for c in callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch]
        if stopped:  # the run ended before its budget: the summary says where
            base["stopped_early_at_epoch"] = stopped[0] - method.source_epochs
        if outcome == "failed":
            base["error"] = f"{type(stopped_by).__name__}: {stopped_by}"
        finish_loggers(loggers, outcome != "completed")
    if not writer:  # DDP ranks other than 0: rank 0 reports the run
        if stopped_by is not None:
            raise stopped_by
        return {}
    resume = f"the same command resumes from {ckpt}" if cfg.trainer.checkpoint else "the same command starts over"
    top, summaries = finish_records(run_dir, member_log, base, outcome, cfg.monitor, resume)
    metrics = top["metrics"]
    if outcome == "interrupted":
        _say(tag, f"interrupted ({stopped_by}): summary says interrupted; {top['resume']}")
        code = stopped_by.exit_code if isinstance(stopped_by, RunInterrupted) else 1
        raise SystemExit(code) from stopped_by
    if outcome == "failed":
        if multirun and not isinstance(stopped_by, DiskFull):  # Hydra goes on with the other points, then fails
            log.error(
                "run %s failed (the sweep goes on):\n%s", run_dir, "".join(traceback.format_exception(stopped_by))
            )
        raise stopped_by
    upload_to_wandb(cfg.logger, list(zip(member_log.dirs, summaries)), _hydra_context()[2])
    return metrics


#: optimizers whose multi-tensor (foreach) implementation computes, on a CPU, the same bits as their per-tensor loop
#: (tests/test_step_cost.py); on a GPU torch takes foreach by itself
FOREACH_SAME_BITS = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.SGD,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    INNA,
)


def prefer_foreach(factory: functools.partial) -> functools.partial:
    """``factory`` with ``foreach=True`` when its optimizer is one of ``FOREACH_SAME_BITS`` and the config chose
    neither ``foreach`` nor ``fused`` (nor ``differentiable``): the results are the same, and a CPU step runs one
    loop in C++ per operation instead of a Python loop over the parameters. The config, and so its hash, is as
    it was."""
    chosen = {"foreach", "fused", "differentiable"} & set(factory.keywords)
    if factory.func not in FOREACH_SAME_BITS or chosen:
        return factory
    return functools.partial(factory, foreach=True)


def _member_log(
    run_dir: Path, seeds: list[int], directions: dict[str, str], resume_at: int | None, source_epochs: int, label: str
) -> tuple[MemberLog, int | None]:
    """The members' records, continued from an interrupted run's rows when resuming; records that cannot be
    continued (a member's metrics.csv broken) make the run start over."""
    if resume_at is None:
        return MemberLog(run_dir, seeds, directions), None
    try:
        return MemberLog(run_dir, seeds, directions, resume_before_epoch=resume_at - source_epochs), resume_at
    except CorruptRecords as err:
        _say(label, f"{err}: the run starts over from epoch 0")
        for d in member_dirs(run_dir, seeds):
            if (d / METRICS).is_file():
                set_aside(d / METRICS)
        return MemberLog(run_dir, seeds, directions), None


#: the trainer values a toy task runs with (its loop is a plain CPU loop; anything else would be ignored)
TOY_TRAINER = {"accelerator": "cpu", "checkpoint": False, "compile": False}


def _check_toy(cfg: DictConfig) -> None:
    """A toy task runs its own loop over its own methods: the Lightning-only options do not apply to it."""
    if cfg.method.name != "plain":
        raise ConfigError(
            f"method={cfg.method.name} does not apply to task={cfg.task.name}: it runs its own loop over the methods "
            "its config lists (task.*); use method=plain"
        )
    if cfg.get("callbacks"):
        raise ConfigError(
            f"callbacks={','.join(cfg.callbacks)} do not apply to task={cfg.task.name}: it runs its own loop, "
            "without Lightning"
        )
    if cfg.ensemble.size != 1:
        raise ConfigError(f"ensemble.size={cfg.ensemble.size} does not apply to task={cfg.task.name}: sweep seeds")
    # the Trainer never runs: a Trainer flag, a device, a checkpoint or compilation would be silently ignored
    extra = sorted(
        set(trainer_arguments(cfg)) - {"accelerator", "devices", "precision", "strategy", "log_every_n_steps"}
    )
    lightning_only = [f"trainer.{k}" for k in extra] + [
        f"trainer.{k}={cfg.trainer[k]}" for k, plain in TOY_TRAINER.items() if cfg.trainer.get(k) != plain
    ]
    if lightning_only:
        raise ConfigError(
            f"{', '.join(lightning_only)} do not apply to task={cfg.task.name}: it runs its own loop on the CPU, "
            "without Lightning"
        )


def _check_task(cfg: DictConfig, task, members: int) -> None:
    """Refuse, before training, what this kind of task (its class) cannot do."""
    if members > 1 and not task.supports_ensemble:
        raise ConfigError(
            f"ensemble.size={members} is not allowed for task={cfg.task.name}: this task trains one model per run; use "
            "ensemble.size=1 and sweep seeds (seed=0,1,2 -m)"
        )
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if "ddp" in strategy and not task.shards_data:
        raise ConfigError(
            f"trainer.strategy={strategy} is not allowed for task={cfg.task.name}: only image tasks shard their data "
            "across processes; run this task with trainer=cpu or trainer=gpu"
        )


def run_toy(cfg: DictConfig, run_dir: Path, chash: str) -> dict[str, Any]:
    """A low-dimensional experiment (``optrepro.toys``): a plain loop on tensors, no Lightning.

    The task node's target is a function ``f(run_dir: Path, seed: int, **settings) -> dict`` that writes its own
    tables (CSV) into ``run_dir`` and returns its headline numbers; the summary records them.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    base = {"experiment": cfg.name, "method": cfg.task.name, "config_hash": chash, "config": resolved, **provenance()}
    write_summary(run_dir, {**base, "kind": "run", "status": "running", "seed": cfg.seed})
    loggers = build_loggers(cfg.logger, run_dir, cfg.name, [str(t) for t in cfg.get("tags", [])], resolved)
    timer, threads, failed = Timer(), torch.get_num_threads(), True
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronization (100x slower on a busy machine)
    try:
        with StopRequests(immediate=True):  # a toy writes its tables at the end: a signal stops it at once
            metrics = build(cfg.task, run_dir=run_dir, seed=cfg.seed)
        log_tables(loggers, run_dir, metrics)
        failed = False
    except (RunInterrupted, KeyboardInterrupt) as err:
        write_summary(run_dir, {**base, "kind": "run", "status": "interrupted", "seed": cfg.seed})
        _say(cfg.name, f"interrupted ({err or 'Ctrl-C'}): the same command runs it again")
        raise SystemExit(err.exit_code if isinstance(err, RunInterrupted) else 130) from err
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
        write_summary(run_dir, {**base, "kind": "run", "status": "failed", "seed": cfg.seed, "error": error})
        raise
    finally:
        torch.set_num_threads(threads)
        finish_loggers(loggers, failed)
    metrics = {**metrics, "monitor": cfg.monitor}
    summary = {**base, "kind": "run", "status": "completed", "seed": cfg.seed, "wall_time_s": timer.seconds}
    write_summary(run_dir, {**summary, "final": metrics, "metrics": metrics})
    upload_to_wandb(cfg.logger, [(run_dir, {**summary, "final": metrics})], _hydra_context()[2], toy_tables(run_dir))
    return metrics


def finish_records(
    run_dir: Path, member_log: MemberLog, base: dict[str, Any], outcome: str, monitor: str, resume: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write every member's summary and the run's own (``resume``: what the same command does after an
    interruption); return the run's summary and the members'."""
    summaries = member_log.finish(base, outcome=outcome)
    metrics = _aggregate(summaries, monitor)
    if len(summaries) == 1:
        top = {**summaries[0], "metrics": metrics}
    else:
        members = {s["seed"]: s["status"] for s in summaries}
        status = outcome if outcome != "completed" else "completed" if metrics["runs/completed"] else "diverged"
        top = {**base, "kind": "ensemble", "status": status, "members": members, "metrics": metrics}
    if outcome == "interrupted":
        top["resume"] = resume
    write_summary(run_dir, top)
    return top, summaries


def _aggregate(summaries: list[dict[str, Any]], monitor: str) -> dict[str, Any]:
    """Median final metrics over the members that completed, with the count of each status."""
    done = [s for s in summaries if s["status"] == "completed"]
    keys = {k for s in done for k, v in s["final"].items() if "/" in k}
    out: dict[str, Any] = {k: float(torch.tensor([s["final"][k] for s in done]).median()) for k in sorted(keys) if done}
    for status in ("completed", "diverged", "failed"):
        out[f"runs/{status}"] = sum(s["status"] == status for s in summaries)
    out["monitor"] = monitor
    return out


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (accelerator report, tips) out of run logs; warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # a machine with SLURM installed runs local jobs too; under SLURM the launcher starts the tasks (srun)
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system but is not used.*")
