"""Optional experiment trackers (W&B, TensorBoard). The run's own CSV files are always written regardless.

W&B is opt-in (``logger=wandb``): project ``optrepro``, group = experiment name, tags = paper and figure. It runs
offline unless the user has configured W&B (``WANDB_API_KEY``, ``wandb login``, or ``WANDB_MODE`` set), and
nothing W&B does may fail a run: set-up errors are reported and the run goes on without it.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def wandb_mode(requested: str | None) -> str:
    """``requested`` if given, else $WANDB_MODE, else online when credentials exist, else offline."""
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators("api.wandb.ai"):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def build_loggers(cfg: DictConfig, run_dir: Path, name: str, tags: list[str], config: dict[str, Any]) -> list:
    """Lightning loggers for ``cfg.logger.kind`` in (csv, wandb, tensorboard); csv adds none (always on)."""
    kind = cfg.kind
    if kind == "csv":
        return []
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")]
    if kind == "wandb":
        try:
            from lightning.pytorch.loggers import WandbLogger

            logger = WandbLogger(
                project=cfg.project,
                group=name,
                tags=tags,
                save_dir=str(run_dir),
                mode=wandb_mode(cfg.get("mode")),
                config=config,
                job_type=cfg.get("job_type"),
            )
            _ = logger.experiment  # start the run now, so that a failure shows here and not mid-training
            return [logger]
        except Exception as err:  # noqa: BLE001 - W&B must never fail a run
            log.warning("W&B could not start (%s); this run goes on with CSV logging only", err)
            return []
    raise ValueError(f"logger.kind={kind!r} is not one of csv, wandb, tensorboard")


def finish_loggers(loggers: list, failed: bool) -> None:
    """Close W&B runs whatever happened (wandb.finish always runs; its own errors are only reported)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                import wandb

                wandb.finish(exit_code=1 if failed else 0)
            except Exception as err:  # noqa: BLE001
                log.warning("wandb.finish failed: %s", err)
