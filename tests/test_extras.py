"""Optional packages: optrepro.extras.require names the extra to install; pyproject's extras match it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from optrepro.config import ConfigError
from optrepro.extras import EXTRAS, require

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_require_returns_the_module():
    import json
    import os.path

    assert require("json", "wandb", "logger=wandb") is json
    assert require("os.path", "ode", "task=gc_lorenz") is os.path


def test_require_names_option_package_and_extra_of_a_missing_module():
    with pytest.raises(ConfigError) as err:
        require("optrepro_no_such_module", "wandb", "logger=wandb")
    assert str(err.value) == "logger=wandb needs the wandb package: pip install 'optrepro[wandb]'"
    assert isinstance(err.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ConfigError, match=r"^hydra/launcher=slurm needs the hydra-submitit-launcher package: "):
        require("optrepro_no_such_module.launcher", "slurm", "hydra/launcher=slurm")


def test_require_blocked_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"optrepro\[wandb\]"):
        require("wandb", "wandb", "logger=wandb")


def test_a_missing_dependency_of_an_installed_module_is_not_blamed_on_the_extra(tmp_path, monkeypatch):
    (tmp_path / "optrepro_half_installed.py").write_text("import optrepro_its_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="optrepro_its_missing_dependency"):
        require("optrepro_half_installed", "wandb", "logger=wandb")


def test_unknown_extra_is_a_programming_error():
    with pytest.raises(ValueError, match="extra='wanb'"):
        require("json", "wanb", "logger=wandb")


def test_ode_data_and_model_name_the_ode_extra(monkeypatch):
    from optrepro.data.ode import generate
    from optrepro.models.ode_mlp import NeuralODE

    monkeypatch.setitem(sys.modules, "torchdiffeq", None)
    with pytest.raises(ConfigError, match=r"task=gc_lotka_volterra\) needs the torchdiffeq package: .*optrepro\[ode\]"):
        generate("lotka_volterra")
    with pytest.raises(ConfigError, match=r"^model=gc_neural_ode needs the torchdiffeq package"):
        NeuralODE(state_dim=2, param_dim=2, t_end=1.0, n_times=3)


def test_pyproject_extras_match_extras_module():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip() for r in requirements}

    for extra, distributions in EXTRAS.items():
        assert names(extras[extra]) == set(distributions), extra
    every = set().union(*EXTRAS.values())
    assert names(extras["all"]) == every
    assert names(extras["dev"]) == every | {"pytest", "ruff", "build"}
    assert set(extras) == set(EXTRAS) | {"all", "dev"}
    core = names(project["dependencies"])
    assert not core & every  # a core install stays lean
    assert {"torch", "lightning", "hydra-core", "hydra-joblib-launcher", "rich"} <= core
    for requirement in project["dependencies"] + sum(extras.values(), []):
        assert ">=" in requirement and "==" not in requirement, requirement  # ranges, never exact pins
    same = {r.split(">=")[0]: r for r in sum((extras[e] for e in EXTRAS), [])}
    for requirement in extras["all"] + extras["dev"]:  # the same ranges everywhere
        assert same.get(requirement.split(">=")[0], requirement) == requirement
