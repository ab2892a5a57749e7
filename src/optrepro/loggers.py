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
    """Lightning loggers, one per entry of the ``logger`` node (``logger=[wandb,tensorboard]``: both; ``csv``:
    none, since metrics.csv is always written)."""
    loggers = []
    for kind, options in (cfg or {}).items():
        options = options or {}
        if kind == "tensorboard":
            require("tensorboard", "tensorboard", "logger=tensorboard")
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
        elif kind == "wandb":
            require("wandb", "wandb", "logger=wandb")
            loggers += _wandb_logger(options, run_dir, name, tags, config)
        else:
            raise ConfigError(f"logger {kind!r} is not one of wandb, tensorboard (csv is always on)")
    return loggers


def _wandb_logger(options, run_dir: Path, name: str, tags: list[str], config: dict[str, Any]) -> list:
    try:
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(
            project=options.get("project", "optrepro"),
            group=name,
            tags=tags,
            save_dir=str(run_dir),
            mode=wandb_mode(options.get("mode")),
            config=config,
            job_type=options.get("job_type"),
        )
        _ = logger.experiment  # start the run now, so that a failure shows here and not mid-training
        return [logger]
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B could not start (%s); this run goes on with CSV logging only", err)
        return []


def finish_loggers(loggers: list, failed: bool) -> None:
    """Close W&B runs whatever happened (wandb.finish always runs; its own errors are only reported)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            try:
                import wandb

                wandb.finish(exit_code=1 if failed else 0)
            except Exception as err:  # noqa: BLE001
                log.warning("wandb.finish failed: %s", err)


def log_tables(loggers: list, run_dir: Path, metrics: dict[str, float]) -> None:
    """A toy run's CSV tables (``run_dir/*.csv``) and headline numbers, sent to each logger: W&B tables and
    summary values, TensorBoard text. Nothing a logger does may fail the run."""
    import pandas as pd

    tables = {path.stem: pd.read_csv(path) for path in sorted(Path(run_dir).glob("*.csv"))}
    for logger in loggers:
        try:
            if type(logger).__name__ == "WandbLogger":
                for name, frame in tables.items():
                    logger.log_table(key=f"tables/{name}", dataframe=frame)
                logger.experiment.summary.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
            elif type(logger).__name__ == "TensorBoardLogger":
                for name, frame in tables.items():
                    logger.experiment.add_text(f"tables/{name}", "    " + frame.to_string().replace("\n", "\n    "))
                logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)}, step=0)
                logger.experiment.flush()
        except Exception as err:  # noqa: BLE001
            log.warning("could not send the tables to %s: %s", type(logger).__name__, err)
