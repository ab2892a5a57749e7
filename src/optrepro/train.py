"""One run: ``run(cfg) -> dict``, called by ``optrepro-train`` (``optrepro.cli``), tests and scripts.

run(cfg): profile -> checks -> skip if already completed -> seed -> datamodule and task -> members (one model or a
vmapped ensemble) -> the one loop (``optrepro.loop``) with the method and optimizer -> loggers and callbacks ->
Trainer.fit -> per-member ``metrics.csv`` and ``summary.json``, and the run's own ``summary.json``.
"""

from __future__ import annotations

import logging
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
from optrepro.loggers import build_loggers, finish_loggers, log_tables, toy_tables, upload_to_wandb
from optrepro.loop import TrainingLoop
from optrepro.methods.base import check_applicable
from optrepro.progress import CompactProgress
from optrepro.records import MemberLog, Timer, provenance, read_summary, write_summary
from optrepro.tasks import make_task, task_class
from optrepro.trainer import build_callbacks, build_trainer, check_callbacks, has_progress_bar, trainer_arguments
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
    """Train one preset (one seed, or ``ensemble.size`` seeds at once) and return its final metrics."""
    cfg = apply_profile(cfg)
    validate(cfg)
    trainer_arguments(cfg)  # an unknown or managed Trainer flag is refused before anything runs
    check_callbacks(cfg)
    if cfg.task.module == "toy":
        _check_toy(cfg)
    save_config_that_runs(cfg)
    hydra_dir, multirun, tag = _hydra_context()
    run_dir = Path(cfg.paths.get("run_dir") or hydra_dir or "outputs/run")
    chash = config_hash(cfg)
    previous = read_summary(run_dir)
    if previous and previous.get("status") == "completed" and previous.get("config_hash") == chash:
        print(f"[{tag or run_dir}] already completed, skipped ({run_dir / 'summary.json'})", file=sys.stderr)
        return previous["metrics"]
    if cfg.task.module == "toy":
        return run_toy(cfg, run_dir, chash)

    # An interrupted run (summary says running or failed, same config) continues from its last checkpoint.
    ckpt = run_dir / LAST
    same_config = previous is not None and previous.get("config_hash") == chash
    resume_at = resumable_epoch(ckpt) if cfg.trainer.checkpoint and same_config else None

    seeds = [cfg.seed + i for i in range(cfg.ensemble.size)]
    tag = f"{cfg.name} {tag} seed={cfg.seed}".replace("  ", " ")
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    _check_task(cfg, task_class(cfg.task.module), len(seeds))
    datamodule = build(cfg.task, seeds=seeds, limit_batches=cfg.trainer.limit_batches)
    task = make_task(cfg.task.module, cfg.task.name, datamodule)
    method = build(cfg.method, keep=("name",))
    check_applicable(method, task, len(seeds))
    optimizer = build(cfg.optimizer, _partial_=True)
    if len(seeds) > 1 and not getattr(optimizer.func, "elementwise", True):
        raise ConfigError(
            f"optimizer {optimizer.func.__name__} reduces over all parameters, which would mix the members of an "
            f"ensemble: use ensemble.size=1 (and sweep seeds) with it, not ensemble.size={len(seeds)}"
        )
    keep_before = None if resume_at is None else resume_at - method.source_epochs
    # Under DDP every rank runs this function; only rank 0 writes metrics and summaries.
    writer = rank_zero_only.rank == 0
    member_log = MemberLog(run_dir, seeds, task.metrics(), resume_before_epoch=keep_before)
    members = build_members(lambda: build(cfg.model), seeds, compile=cfg.trainer.compile)
    lr_schedule = build(cfg.schedule, total=cfg.trainer.epochs)
    module = TrainingLoop(
        members,
        task,
        method,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        log=member_log if writer else None,
        weight_decay=cfg.weight_decay,
        train_metrics=cfg.train_metrics,
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    loggers = build_loggers(cfg.logger, run_dir, cfg.name, [str(t) for t in cfg.get("tags", [])], resolved)
    callbacks = build_callbacks(cfg, loggers)  # after the loggers: a W&B that did not start is a logger less
    interactive = sys.stderr.isatty() and not multirun and len(seeds) == 1
    if writer and not interactive and not has_progress_bar(callbacks):
        callbacks.append(CompactProgress(tag, len(seeds)))
    if cfg.trainer.checkpoint:
        callbacks.append(LastCheckpoint(ckpt, cfg.trainer.checkpoint_every))
    max_epochs = method.source_epochs + cfg.trainer.epochs
    trainer = build_trainer(cfg, run_dir, max_epochs, loggers, callbacks, interactive)

    base = {"experiment": cfg.name, "method": method.name, "config_hash": chash, "config": resolved, **provenance()}
    if writer:
        write_summary(run_dir, {**base, "kind": "ensemble" if len(seeds) > 1 else "run", "status": "running"})
    timer, failed = Timer(), False
    try:
        if resume_at is not None:
            print(f"[{tag}] resuming from {ckpt} at epoch {resume_at}", file=sys.stderr)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt if resume_at is not None else None)
        if trainer.interrupted:  # Ctrl-C: Lightning returns quietly; the run is not complete
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        failed = True
        raise
    except Exception:
        failed = True
        if not multirun:
            raise
        log.error("run %s failed (the sweep goes on):\n%s", run_dir, traceback.format_exc())
    finally:
        base["wall_time_s"] = timer.seconds
        stopped = [c.stopped_epoch for c in callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch]
        if stopped:  # the run ended before its budget: the summary says where
            base["stopped_early_at_epoch"] = stopped[0] - method.source_epochs
        summaries = member_log.finish(base, failed=failed) if writer else []
        finish_loggers(loggers, failed)
    if not writer:  # DDP ranks other than 0: rank 0 reports the run
        return {}
    upload_to_wandb(cfg.logger, list(zip(member_log.dirs, summaries)), _hydra_context()[2])
    metrics = _aggregate(summaries, cfg.monitor)
    if len(seeds) == 1:
        write_summary(run_dir, {**summaries[0], "metrics": metrics})
    else:
        members = {s["seed"]: s["status"] for s in summaries}
        status = "failed" if failed else "completed" if metrics["runs/completed"] else "diverged"
        write_summary(run_dir, {**base, "kind": "ensemble", "status": status, "members": members, "metrics": metrics})
    return metrics


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
    if cfg.trainer.compile and members > 1:
        raise ConfigError(
            f"trainer.compile=true is not allowed with ensemble.size={members}: only a single model is compiled "
            "(a vmapped ensemble is not)"
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
        metrics = build(cfg.task, run_dir=run_dir, seed=cfg.seed)
        log_tables(loggers, run_dir, metrics)
        failed = False
    except Exception:
        write_summary(run_dir, {**base, "kind": "run", "status": "failed", "seed": cfg.seed})
        raise
    finally:
        torch.set_num_threads(threads)
        finish_loggers(loggers, failed)
    metrics = {**metrics, "monitor": cfg.monitor}
    summary = {**base, "kind": "run", "status": "completed", "seed": cfg.seed, "wall_time_s": timer.seconds}
    write_summary(run_dir, {**summary, "final": metrics, "metrics": metrics})
    upload_to_wandb(cfg.logger, [(run_dir, {**summary, "final": metrics})], _hydra_context()[2], toy_tables(run_dir))
    return metrics


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
