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

from optrepro.config import ConfigError
from optrepro.extras import require

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


def build_loggers(cfg: DictConfig | None, run_dir: Path, name: str, tags: list[str], config: dict[str, Any]) -> list:
    """The live Lightning loggers of the ``logger`` node: TensorBoard. W&B runs are made from the records when the
    job ends, one per seed (``optrepro.wandb_runs``); ``csv`` is always on."""
    loggers = []
    for kind in cfg or {}:
        if kind == "tensorboard":
            require("tensorboard", "tensorboard", "logger=tensorboard")
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
        elif kind == "wandb":
            require("wandb", "wandb", "logger=wandb")  # refused now, not when the job ends
        else:
            raise ConfigError(f"logger {kind!r} is not one of wandb, tensorboard (csv is always on)")
    return loggers


def upload_to_wandb(cfg: DictConfig | None, members: list, overrides: str = "", tables: dict | None = None) -> None:
    """When ``logger=wandb`` is chosen: one W&B run per ``(member folder, summary)`` (``optrepro.wandb_runs``)."""
    if not cfg or "wandb" not in cfg:
        return
    from optrepro.wandb_runs import upload

    options = dict(cfg.wandb or {})
    try:
        upload(members, options, wandb_mode(options.get("mode")), overrides, tables)
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B upload failed (%s); the records are on disk: run the job again to retry", err)


def finish_loggers(loggers: list, failed: bool) -> None:
    """Flush and close the live loggers (their own errors are only reported)."""
    for logger in loggers:
        try:
            logger.finalize("failed" if failed else "success")
        except Exception as err:  # noqa: BLE001
            log.warning("%s could not finish: %s", type(logger).__name__, err)


def toy_tables(run_dir: Path) -> dict:
    """A toy run's CSV tables (``run_dir/*.csv``) by name."""
    import pandas as pd

    return {path.stem: pd.read_csv(path) for path in sorted(Path(run_dir).glob("*.csv"))}


def log_tables(loggers: list, run_dir: Path, metrics: dict[str, float]) -> None:
    """A toy run's CSV tables and headline numbers, sent to the live loggers (TensorBoard text; W&B gets them with
    the run's upload). Nothing a logger does may fail the run."""
    tables = toy_tables(run_dir)
    for logger in loggers:
        try:
            if type(logger).__name__ == "TensorBoardLogger":
                for name, frame in tables.items():
                    logger.experiment.add_text(f"tables/{name}", "    " + frame.to_string().replace("\n", "\n    "))
                logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=0)
                logger.experiment.flush()
        except Exception as err:  # noqa: BLE001
            log.warning("could not send the tables to %s: %s", type(logger).__name__, err)
