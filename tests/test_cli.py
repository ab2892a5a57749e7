"""optrepro-train's command line without training: imports, shell completion of the nested groups, --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import optrepro
from optrepro import cli
from optrepro.config import ConfigError, config_dir, experiment_names

SRC = str(Path(optrepro.__file__).resolve().parents[1])  # the optrepro these tests import


def train_command() -> list[str]:
    """The console script beside this interpreter, as an installed optrepro-train would be run."""
    script = Path(sys.executable).parent / "optrepro-train"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "optrepro.cli"]


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), **env}
    done = subprocess.run([*train_command(), *args], env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def complete(line: str, shell: str = "bash") -> list[str]:
    """What optrepro-train answers to the shell's completion query for COMP_LINE=line."""
    out = run_cli("-sc", f"query={shell}", COMP_LINE=line).stdout
    if shell == "fish":
        return [c for c in out.split("\n") if c]
    lines = out.splitlines()
    assert len(lines) == 1, out  # bash and zsh read one line of candidates separated by spaces
    return lines[0].split()


def sweep_names() -> list[str]:
    root = config_dir() / "sweep"
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def test_import_loads_no_torch_or_lightning():
    code = "import sys, optrepro.cli; print(','.join(m for m in ('torch', 'lightning') if m in sys.modules))"
    environ = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_preset_names_are_the_nested_files():
    assert cli.preset_names("experiment") == experiment_names()
    assert "ht/sine_f1" in cli.preset_names("experiment")
    assert "ht/f1" in cli.preset_names("sweep")


def test_complete_presets_without_a_process():
    names = experiment_names()
    assert cli.complete_presets("optrepro-train experiment=") == [f"experiment={n}" for n in names]
    assert cli.complete_presets("optrepro-train -m experiment=ht/sine_f1,ht/sine_f2") == [
        "experiment=ht/sine_f1,ht/sine_f2b"
    ]
    assert cli.complete_presets("optrepro-train +sweep=ht/f") == [
        f"+sweep=ht/{n}" for n in ("f1", "f2a", "f2b", "f3", "f8")
    ]
    for line in ("optrepro-train experiment=ht/s ", "optrepro-train optimizer=", "optrepro-train exp", ""):
        assert cli.complete_presets(line) is None  # a new word, another group, no '=': Hydra answers


def test_completion_offers_full_preset_names():
    assert complete("optrepro-train experiment=") == [f"experiment={n}" for n in experiment_names()]
    assert complete("optrepro-train profile=smoke experiment=ht/s") == [
        "experiment=ht/sine_f1",
        "experiment=ht/sine_f2b",
    ]
    sweeps = complete("optrepro-train -m experiment=ht/sine_f1 sweep=")
    assert sweeps == [f"sweep={n}" for n in sweep_names()]
    assert "sweep=ht/f1" in sweeps
    assert not [c for c in sweeps + complete("optrepro-train experiment=") if c.count("=") != 1 or "/" not in c]


def test_completion_of_other_words_is_hydras_with_the_nested_groups_as_group_equals():
    keys = complete("optrepro-train ")
    assert "experiment=" in keys and "sweep=" in keys
    assert "experiment/" not in keys and "sweep/" not in keys
    assert {"optimizer=", "optimizer.", "seed="} <= set(keys)  # Hydra's own answer otherwise
    assert complete("optrepro-train exp") == ["experiment="]
    assert complete("optrepro-train optimizer=") == [f"optimizer={n}" for n in cli.preset_names("optimizer")]


def test_fish_completion_is_one_candidate_per_line():
    assert complete("optrepro-train experiment=gc/l", shell="fish") == [
        "experiment=gc/lorenz_f7",
        "experiment=gc/lotka_volterra_f6",
    ]


def test_help_names_optrepro_train_and_lists_presets_by_full_name():
    out = run_cli("--help").stdout
    assert out.startswith("optrepro-train: "), out[:200]
    assert "powered by Hydra" not in out
    lines = out.splitlines()
    assert not [line for line in lines if line.startswith(("experiment/", "sweep/"))]
    assert f"experiment: {', '.join(experiment_names())}" in lines
    assert f"sweep: {', '.join(sweep_names())}" in lines
    assert 'eval "$(optrepro-train -sc install=bash)"' in out  # string.Template's $$ became $


def test_merge_nested_groups():
    text = "head\nexperiment/b: y, x\nlogger: csv\nexperiment/a: z\nsweep/ht: f1\nexperiment/c d: not a group\n"
    assert cli.merge_nested_groups(text) == (
        "head\nexperiment: a/z, b/x, b/y\nlogger: csv\nsweep: ht/f1\nexperiment/c d: not a group\n"
    )


def test_one_repository_copy_lists_the_same_groups_from_one_copy(monkeypatch):
    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.global_hydra import GlobalHydra

    copies, before = [], ConfigLoaderImpl.get_group_options
    make = ConfigLoaderImpl._parse_overrides_and_create_caching_repo
    monkeypatch.setattr(
        ConfigLoaderImpl,
        "_parse_overrides_and_create_caching_repo",
        lambda self, *a: copies.append(a) or make(self, *a),
    )
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        plain = hydra.format_config_groups(lambda g: True)
        plain_copies, copies[:] = len(copies), []
        with cli._one_repository_copy():
            shared = hydra.format_config_groups(lambda g: True)
            with_words = hydra.config_loader.get_group_options("optimizer", config_name="train", overrides=["seed=1"])
    assert shared == plain
    assert "experiment/ht: " in plain and "hydra/sweeper: " in plain
    assert plain_copies > 50  # what --help cost: a copy of the repository per group and kind
    assert copies == [(None, []), ("train", ["seed=1"])]
    assert "adam" in with_words
    assert ConfigLoaderImpl.get_group_options is before  # restored


def test_missing_plugin_names_its_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_submitit_launcher", None)
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_optuna_sweeper", None)
    with pytest.raises(ConfigError, match=r"hydra/launcher=slurm needs .*pip install 'optrepro\[slurm\]'"):
        cli.check_extras(["experiment=ht/sine_f1", "hydra/launcher=slurm"])
    with pytest.raises(ConfigError, match=r"hparams_search=ht_sine_lr needs .*'optrepro\[optuna\]'"):
        cli.check_extras(["+hparams_search=ht_sine_lr"])
    cli.check_extras(["experiment=ht/sine_f1", "hydra/launcher=joblib"])  # nothing optional asked for
    monkeypatch.setattr(sys, "argv", ["optrepro-train", "-m", "hydra/sweeper=optuna"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    assert (
        "optrepro-train: error: hydra/sweeper=optuna needs the hydra-optuna-sweeper package" in capsys.readouterr().err
    )
