"""Optional features and the extras that install them (``[project.optional-dependencies]`` in pyproject.toml).

A core install (``pip install optrepro``) trains every preset with the CSV logger and the local launchers; each
extra adds one feature, and ``all`` adds them all. Code that needs an optional package imports it through
:func:`require` when the option that needs it is chosen, so that a missing extra is named in the error:

    wandb = require("wandb", "wandb", "logger=wandb")
"""

from __future__ import annotations

import importlib
from types import ModuleType

from optrepro.config import ConfigError

#: extra -> the distributions it installs (pyproject.toml lists the same with their version ranges; a test checks)
EXTRAS: dict[str, tuple[str, ...]] = {
    "wandb": ("wandb", "wandb-workspaces"),
    "slurm": ("hydra-submitit-launcher",),
    "optuna": ("hydra-optuna-sweeper",),
    "tensorboard": ("tensorboard",),
    "ode": ("torchdiffeq",),
}


def require(module: str, extra: str, option: str) -> ModuleType:
    """Import ``module`` and return it; if it is not installed, raise ``ConfigError`` naming ``option`` (what the
    config chose, e.g. 'logger=wandb') and the extra that installs it:
    "logger=wandb needs the wandb package: pip install 'optrepro[wandb]'".

    A module that is installed but fails to import one of its own dependencies raises that error unchanged.
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra={extra!r} is not one of {', '.join(EXTRAS)} (optrepro.extras.EXTRAS)")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = err.name or module
        if module != missing and not module.startswith(missing + "."):
            raise  # the module itself is there: something it imports is missing
        top = missing.split(".")[0]  # the distribution that provides the missing module, else the extra's first
        package = next((d for d in EXTRAS[extra] if d.replace("-", "_") == top), EXTRAS[extra][0])
        raise ConfigError(f"{option} needs the {package} package: pip install 'optrepro[{extra}]'") from err
