"""Where the configs live, how a profile shrinks a preset, and the value checks that run before any training."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict


class ConfigError(ValueError):
    """A config value that cannot be run; the message names the key, the value and what is allowed."""


def config_dir() -> Path:
    """``$OPTREPRO_CONFIG_DIR``, else the configs that ship inside the package (``optrepro/configs``; the
    checkout's top-level ``configs`` is a link to them)."""
    env = os.environ.get("OPTREPRO_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent / "configs"
    if not (path / "train.yaml").is_file():
        where = "OPTREPRO_CONFIG_DIR" if env else "the installed package"
        raise FileNotFoundError(f"no train.yaml in {path} ({where}): point OPTREPRO_CONFIG_DIR at a configs/ folder")
    return path


def apply_profile(cfg: DictConfig) -> DictConfig:
    """Shrink a preset as ``cfg.profile`` says, keeping its structure (docs/architecture.md "Configuration").

    A profile multiplies every count it lists (epochs, iterations, starting points) by ``count_scale``, rounding
    down but keeping at least 1 (so a schedule that fitted its budget still fits); it caps the number of seeds
    trained at once, the dataset size and the batches per epoch. ``profile=paper`` changes nothing.
    """
    p = cfg.profile
    cfg = cfg.copy()
    with open_dict(cfg):
        before = {key: OmegaConf.select(cfg, key) for key in ("trainer.epochs", "homotopy.gamma", "homotopy.k")}
        for key in p.get("scaled_counts", []):
            value = OmegaConf.select(cfg, key)
            if isinstance(value, int) and value > 0:
                OmegaConf.update(cfg, key, max(1, math.floor(value * p.count_scale)))
        _keep_staircase_in_budget(cfg, before)
        if p.get("max_members") is not None:
            cfg.ensemble.size = min(cfg.ensemble.size, p.max_members)
        if p.get("max_samples") is not None and "n_samples" in cfg.task:
            cfg.task.n_samples = min(cfg.task.n_samples, p.max_samples)
        for key in ("max_train_samples", "max_test_samples"):  # image tasks (data.images)
            if p.get("max_samples") is not None and key in cfg.task:
                cfg.task[key] = min(cfg.task[key] or p.max_samples, p.max_samples)
        if p.get("synthetic") and "synthetic" in cfg.task:
            cfg.task.synthetic = True  # generated images of the right shape and classes: no dataset needed
        if p.get("limit_batches") is not None:
            cfg.trainer.limit_batches = p.limit_batches
        for key in ("batch_size", "eval_batch_size"):
            if p.get("max_batch_size") is not None and key in cfg.task:
                cfg.task[key] = min(cfg.task[key], p.max_batch_size)
    return cfg


def _keep_staircase_in_budget(cfg: DictConfig, before: dict) -> None:
    """After scaling, a data-homotopy budget that held gamma * k epochs (and some after) still holds them.

    Rounding short budgets down (HT classification: 30 epochs, gamma 5, k 2) would leave fewer epochs than the
    gamma steps of one epoch each; the budget is lengthened to gamma * k (+1 if the preset trained on after the
    staircase). Only presets of the data-homotopy methods, so that all three HT methods keep the same budget.
    """
    if not str(OmegaConf.select(cfg, "method._target_", default="")).endswith("DataHomotopy"):
        return
    epochs, gamma, k = before["trainer.epochs"], before["homotopy.gamma"], before["homotopy.k"]
    if not all(isinstance(v, int) for v in (epochs, gamma, k)) or gamma * k > epochs:
        return
    need = cfg.homotopy.gamma * cfg.homotopy.k + (1 if epochs > gamma * k else 0)
    if cfg.trainer.epochs < need:
        cfg.trainer.epochs = need


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
    _require(cfg, "optimizer.lr", lambda v: math.isfinite(v) and v > 0, "finite and > 0")
    _require(cfg, "optimizer.momentum", lambda v: 0 <= v < 1, "in [0, 1)")
    _require(cfg, "optimizer.weight_decay", lambda v: math.isfinite(v) and v >= 0, "finite and >= 0")
    _require(
        cfg,
        "optimizer.betas",
        lambda v: not isinstance(v, int | float | str) and len(v) == 2 and all(0 <= b < 1 for b in v),
        "two values in [0, 1) (Adam's beta1, beta2)",
    )
    _require(cfg, "trainer.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "trainer.limit_batches", lambda v: _is_int(v) and v >= 1, "an integer >= 1 or null")
    _require(cfg, "task.omega", lambda v: v > 0, "> 0")
    _require(cfg, "task.source_omega", lambda v: v > 0, "> 0")
    _require(cfg, "task.n_samples", lambda v: _is_int(v) and v >= 2, "an integer >= 2")
    _require(cfg, "task.train_fraction", lambda v: 0 < v < 1, "in (0, 1)")
    _require(cfg, "task.noise_std", lambda v: v >= 0, ">= 0")
    _require(cfg, "task.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "task.reuse_batch", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (times each batch is served)")
    _require(cfg, "task.max_train_samples", lambda v: _is_int(v) and v >= 1, "an integer >= 1 or null")
    _require(cfg, "task.max_test_samples", lambda v: _is_int(v) and v >= 1, "an integer >= 1 or null")
    _require(cfg, "task.pad_to", lambda v: _is_int(v) and v >= 1, "an integer (image side) or null")
    _require(cfg, "weight_decay", lambda v: v >= 0, ">= 0 (lambda of the term lambda/2 ||theta||^2)")
    _require(cfg, "train_metrics", lambda v: v in ("minibatch", "full"), "minibatch or full")
    _require(cfg, "grid_epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (epochs of a grid-search run)")
    _require(cfg, "homotopy.source_epochs", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _require(cfg, "homotopy.gamma", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "homotopy.k", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (epochs per step)")
    _require(cfg, "method.schedule.value", lambda v: 0 <= v <= 1, "in [0, 1] (lambda)")
    _require(cfg, "method.form", lambda v: v in ("exact", "gaussian_filter"), "exact or gaussian_filter")
    _require(cfg, "method.filter_std", lambda v: v > 0, "> 0 (the Gaussian filter's xi)")
    # GC (method=gaussian_continuation reads these through the method node)
    _require(cfg, "continuation.lr", lambda v: v > 0, "> 0 (the continuation learning rate)")
    _require(cfg, "continuation.beta", lambda v: v >= 0, ">= 0")
    _require(cfg, "continuation.warmup_epochs", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _require(cfg, "continuation.samples", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _require(cfg, "continuation.variance_cap", lambda v: v > 0, "> 0 (a multiple of lambda_0) or null")
    _require(
        cfg,
        "continuation.schedule",
        lambda v: v in ("learned", "constant", "geometric", "inverse_power"),
        "learned, constant, geometric or inverse_power",
    )
    _require(cfg, "continuation.estimator", lambda v: v in ("pathwise", "score"), "pathwise or score")
    _require(cfg, "continuation.regularization", lambda v: v in ("authors", "paper"), "authors or paper")
    # HTA
    _require(cfg, "method.variant", lambda v: v in ("paper", "authors"), "paper or authors (HTA)")
    _require(cfg, "method.scope", lambda v: v in ("all", "conv", "classifier"), "all, conv or classifier (HTA)")
    _require(cfg, "method.split", lambda v: v in ("units", "layers", "random"), "units, layers or random (HTA)")
    _require(cfg, "method.anchor", lambda v: v in ("zero", "init", "random"), "zero, init or random (HTA)")
    _require(cfg, "method.schedule.epochs_per_value", lambda v: _is_int(v) and v >= 1, "an integer >= 1 (HTA)")
    _require(
        cfg,
        "method.schedule.values",
        lambda v: not isinstance(v, int | float) and len(v) >= 1 and min(v) > 0,
        "a list of L > 0 (HTA eq. 3)",
    )
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


#: the longest sweep folder name kept as it is (a file system allows 255 bytes per name)
MAX_FOLDER_NAME = 200


def sweep_subdir(overrides: str, seed: int, size: int = 1, max_members: int | None = None) -> str:
    """A sweep point's folder: 'overrides/seed=N', or 'overrides/seeds=N-M' for an ensemble (the seeds the profile
    will really train; its members 'seed=K' inside). An overrides name longer than ``MAX_FOLDER_NAME`` keeps its
    first overrides whole and ends with a hash of all of them: still one folder per point, and a valid name."""
    size = min(size, max_members) if max_members else size  # what the profile will train
    leaf = f"seed={seed}" if size == 1 else f"seeds={seed}-{seed + size - 1}"
    if len(overrides.encode()) > MAX_FOLDER_NAME:
        digest = hashlib.sha256(overrides.encode()).hexdigest()[:12]
        head = overrides.encode()[: MAX_FOLDER_NAME - 20].decode(errors="ignore").rsplit(",", 1)[0]
        overrides = f"{head},...{digest}"
    return f"{overrides}/{leaf}" if overrides else leaf


def register_resolvers() -> None:
    """The resolvers of train.yaml: ``${optrepro.subdir:overrides,seed,size,max_members}`` (``sweep_subdir``) and
    ``${optrepro.profile_dir:name}``."""
    if not OmegaConf.has_resolver("optrepro.subdir"):
        OmegaConf.register_new_resolver("optrepro.subdir", sweep_subdir)
    if not OmegaConf.has_resolver("optrepro.profile_dir"):  # runs of a non-paper profile keep to their own folder
        OmegaConf.register_new_resolver(
            "optrepro.profile_dir", lambda name: "" if name == "paper" else f"/profile={name}"
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

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides or []), return_hydra_config=hydra_config)
