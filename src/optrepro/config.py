"""Where the configs live, how a profile shrinks a preset, and the value checks that run before any training."""

from __future__ import annotations

import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A config value that cannot be run; the message names the key, the value and what is allowed."""


def config_dir() -> Path:
    """``$OPTREPRO_CONFIG_DIR``, else ``configs/`` at the root of the checkout this package is installed from."""
    env = os.environ.get("OPTREPRO_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    if not (path / "train.yaml").is_file():
        raise FileNotFoundError(
            f"no train.yaml in {path}: install optrepro from a checkout (pip install -e .) "
            "or point OPTREPRO_CONFIG_DIR at its configs/ folder"
        )
    return path


def apply_profile(cfg: DictConfig) -> DictConfig:
    """Shrink a preset as ``cfg.profile`` says, keeping its structure (DESIGN.md "Configuration").

    A profile multiplies every count it lists (epochs, iterations, starting points) by ``count_scale``, rounding
    down but keeping at least 1 (so a schedule that fitted its budget still fits); it caps the number of seeds
    trained at once, the dataset size and the batches per epoch. ``profile=paper`` changes nothing.
    """
    p = cfg.profile
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in p.get("scaled_counts", []):
            value = OmegaConf.select(cfg, key)
            if isinstance(value, int) and value > 0:
                OmegaConf.update(cfg, key, max(1, math.floor(value * p.count_scale)))
        if p.get("max_members") is not None:
            cfg.ensemble.size = min(cfg.ensemble.size, p.max_members)
        if p.get("max_samples") is not None and "n_samples" in cfg.task:
            cfg.task.n_samples = min(cfg.task.n_samples, p.max_samples)
        if p.get("limit_batches") is not None:
            cfg.trainer.limit_batches = p.limit_batches
    return cfg


def _require(cfg: DictConfig, key: str, ok, allowed: str) -> None:
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        return
    try:
        good = ok(value)
    except TypeError:
        good = False
    if not good:
        raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {allowed}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg: DictConfig) -> None:
    """Check the values a run depends on; raise ``ConfigError`` naming the first bad key."""
    _require(cfg, "seed", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _require(cfg, "ensemble.size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "optimizer.lr", lambda v: v > 0, "> 0")
    _require(cfg, "trainer.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "trainer.limit_batches", lambda v: _is_int(v) and v >= 1, "an integer >= 1 or null")
    _require(cfg, "task.omega", lambda v: v > 0, "> 0")
    _require(cfg, "task.source_omega", lambda v: v > 0, "> 0")
    _require(cfg, "task.n_samples", lambda v: _is_int(v) and v >= 2, "an integer >= 2")
    _require(cfg, "task.train_fraction", lambda v: 0 < v < 1, "in (0, 1)")
    _require(cfg, "task.noise_std", lambda v: v >= 0, ">= 0")
    _require(cfg, "task.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "homotopy.source_epochs", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _require(cfg, "homotopy.gamma", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "homotopy.k", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (epochs per step)")
    _require(cfg, "method.schedule.value", lambda v: 0 <= v <= 1, "in [0, 1] (lambda)")
    _require(cfg, "method.form", lambda v: v in ("exact", "gaussian_filter"), "exact or gaussian_filter")
    _require(cfg, "method.filter_std", lambda v: v > 0, "> 0 (the Gaussian filter's xi)")
    _require(cfg, "method.variant", lambda v: v in ("paper", "authors"), "paper or authors (HTA)")
    _require(cfg, "method.scope", lambda v: v in ("all", "conv", "classifier"), "all, conv or classifier (HTA)")
    _require(cfg, "method.split", lambda v: v in ("units", "layers", "random"), "units, layers or random (HTA)")
    _require(cfg, "method.anchor", lambda v: v in ("zero", "init", "random"), "zero, init or random (HTA)")
    _require(cfg, "method.schedule.epochs_per_value", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (HTA)")
    _require(cfg, "method.schedule.values", lambda v: len(v) >= 1 and min(v) > 0, "a list of L > 0 (HTA eq. 3)")
    _require(cfg, "method.schedule.stop", lambda v: v > 0, "> 0 (HTA's L)")
    _require(cfg, "schedule.step_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (epochs)")
    gamma, k = OmegaConf.select(cfg, "homotopy.gamma"), OmegaConf.select(cfg, "homotopy.k")
    epochs = OmegaConf.select(cfg, "trainer.epochs")
    staircase = str(OmegaConf.select(cfg, "method.schedule._target_", default="")).endswith("Staircase")
    trains = OmegaConf.select(cfg, "task.module", default=None) != "toy"
    if trains and staircase and None not in (gamma, k, epochs) and gamma * k > epochs:
        raise ConfigError(
            f"homotopy.gamma * homotopy.k = {gamma} * {k} = {gamma * k} epochs of homotopy "
            f"exceed trainer.epochs={epochs}: the budget must hold the whole schedule"
        )


def experiment_names() -> list[str]:
    """Every preset under configs/experiment, as the value of ``experiment=`` (e.g. 'ht/sine_f1')."""
    root = config_dir() / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def compose(overrides: list[str] | None = None, hydra_config: bool = False) -> DictConfig:
    """The config ``optrepro-train`` would run with these overrides, composed without starting Hydra's job.

    For tests, notebooks and scripts; ``paths.run_dir`` says where the run writes.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from optrepro.train import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides or []), return_hydra_config=hydra_config)
