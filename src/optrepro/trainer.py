"""The Lightning Trainer and its callbacks, from the ``trainer`` and ``callbacks`` config nodes.

Every argument of ``lightning.pytorch.Trainer`` may be set under ``trainer`` (``+trainer.gradient_clip_val=1.0``);
the project's own keys (``OWN_KEYS``) are read here, the arguments the project sets itself (``MANAGED``) are
refused with the key to use instead, and any other key is refused by name: nothing in the node is ignored.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.profilers import PassThroughProfiler
from omegaconf import DictConfig, OmegaConf

from optrepro.config import ConfigError
from optrepro.utils import build

log = logging.getLogger(__name__)

#: keys of the ``trainer`` node that are the project's own, not Trainer arguments
OWN_KEYS = ("epochs", "limit_batches", "checkpoint", "checkpoint_every", "compile")
#: Trainer arguments the project sets itself, and what to set instead
MANAGED = {
    "max_epochs": "trainer.epochs (the target budget; a method's source pre-training comes on top)",
    "limit_train_batches": "trainer.limit_batches",
    "logger": "logger=wandb, logger=tensorboard or logger=[wandb,tensorboard]",
    "callbacks": "callbacks=lr_monitor, callbacks=[lr_monitor,early_stopping,rich_progress]",
    "enable_checkpointing": "trainer.checkpoint=true (checkpoints/last.ckpt, resumed by a rerun)",
    "default_root_dir": "paths.run_dir",
    "enable_progress_bar": "callbacks=rich_progress (a bar) or nothing (one line per epoch)",
    "limit_val_batches": "nothing: the loop evaluates the task's whole splits at each epoch's end",
    "check_val_every_n_epoch": "nothing: the loop evaluates the task's whole splits at each epoch's end",
    "val_check_interval": "nothing: the loop evaluates the task's whole splits at each epoch's end",
    "num_sanity_val_steps": "nothing: there is no validation loop",
    "reload_dataloaders_every_n_epochs": "nothing: each epoch draws its own order from the seed and the epoch",
    "use_distributed_sampler": "nothing: the datamodules shard their data by rank themselves",
}


def trainer_arguments(cfg: DictConfig) -> dict[str, Any]:
    """The Trainer arguments the ``trainer`` node sets, checked: a managed or unknown key raises ``ConfigError``."""
    allowed = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    out = {}
    for key, value in node.items():
        if key in OWN_KEYS:
            continue
        if key in MANAGED:
            raise ConfigError(f"trainer.{key} is set by optrepro: use {MANAGED[key]}")
        if key not in allowed:
            raise ConfigError(
                f"trainer.{key} is not an argument of lightning.pytorch.Trainer (nor an optrepro key: "
                f"{', '.join(OWN_KEYS)}); see `python -c 'import lightning; help(lightning.Trainer)'`"
            )
        out[key] = value
    return out


def check_devices(cfg: DictConfig) -> None:
    """Refuse, by key, a device this machine does not have (Lightning would stop later with a traceback)."""
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not available:
        raise ConfigError(
            f"trainer.accelerator={accelerator} is not possible here: no CUDA GPU is visible to torch "
            "(torch.cuda.is_available() is False); use trainer=cpu, or run where a GPU is"
        )
    devices = cfg.trainer.get("devices", "auto")
    if isinstance(devices, int) and devices > available:
        raise ConfigError(f"trainer.devices={devices} is not possible here: torch sees {available} GPU(s)")


def check_callbacks(cfg: DictConfig) -> None:
    """Refuse, before anything runs, a callback that cannot work with the configured loggers."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if str(node.get("_target_", "")).endswith("LearningRateMonitor") and "tensorboard" not in (cfg.logger or {}):
            raise ConfigError(
                f"callbacks.{name} (LearningRateMonitor) sends the learning rate to a live logger, and this run has "
                "none: add logger=tensorboard (metrics.csv has the lr of every epoch, and W&B gets it from there)"
            )


def build_callbacks(cfg: DictConfig, loggers: list) -> list[L.Callback]:
    """The ``callbacks`` node's callbacks (a learning-rate monitor is left out, with a warning, when the logger it
    reports to could not start)."""
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = build(node)
        if isinstance(callback, LearningRateMonitor) and not loggers:
            log.warning("callbacks.%s left out: no logger started to send the learning rate to", name)
            continue
        callbacks.append(callback)
    return callbacks


class NoProfiler(PassThroughProfiler):
    """Lightning's "no profiler", without its cost: Lightning wraps each hook and each part of a training step in
    ``profiler.profile(name)`` (some 80 per step), a generator-based context manager even when it records nothing;
    this one hands back one shared ``nullcontext``. ``+trainer.profiler=simple`` (or any) replaces it."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:
        return self._nothing


def has_progress_bar(callbacks: list[L.Callback]) -> bool:
    return any(isinstance(c, ProgressBar) for c in callbacks)


def build_trainer(
    cfg: DictConfig, run_dir: Path, max_epochs: int, loggers: list, callbacks: list, bar: bool
) -> L.Trainer:
    """The Trainer for one run: the node's arguments, then what the project sets (``MANAGED``).

    Under SLURM, Lightning's own requeue-on-SIGUSR1 is switched off: submitit (``hydra/launcher=slurm``) owns
    requeueing, and a stop signal is the run's to handle (``optrepro.interrupts``)."""
    arguments = {"enable_model_summary": False, "profiler": NoProfiler(), **trainer_arguments(cfg)}
    if os.environ.get("SLURM_NTASKS") and SLURMEnvironment.detect():
        plugins = arguments.get("plugins") or []
        arguments["plugins"] = [
            *(plugins if isinstance(plugins, list) else [plugins]),
            SLURMEnvironment(auto_requeue=False),
        ]
    return L.Trainer(
        **arguments,
        use_distributed_sampler=False,  # datamodules shard by rank themselves (data.images)
        max_epochs=max_epochs,
        limit_train_batches=None,  # the datamodules apply trainer.limit_batches themselves
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=bool(cfg.trainer.checkpoint),  # only LastCheckpoint writes: checkpoints/last.ckpt
        enable_progress_bar=bar or has_progress_bar(callbacks),
        limit_val_batches=0,  # the loop evaluates whole splits itself at each epoch's end (Task.evaluate)
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1,  # each epoch draws its own order (data.sine.epoch_permutation)
        default_root_dir=str(run_dir),
    )
