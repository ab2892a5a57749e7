"""configs/hparams_search: Optuna searches, one per paper; each composes with the preset its usage line names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import optrepro
from optrepro.config import compose, config_dir, experiment_names

SEARCHES = sorted((config_dir() / "hparams_search").glob("*.yaml"))
SRC = str(Path(optrepro.__file__).resolve().parents[1])


def hparams_search(name: str) -> str:
    """The override choosing a search: ``hparams_search=`` once train.yaml's defaults list the group, else ``+``."""
    defaults = OmegaConf.load(config_dir() / "train.yaml").defaults
    listed = any(OmegaConf.is_dict(d) and "hparams_search" in d for d in defaults)
    return f"{'' if listed else '+'}hparams_search={name}"


def usage_experiment(path: Path) -> str:
    """The preset of the file's usage line (``# optrepro-train -m experiment=... hparams_search=<file>``)."""
    usage = [line for line in path.read_text().splitlines() if f"hparams_search={path.stem}" in line]
    assert len(usage) == 1 and usage[0].startswith("#   optrepro-train -m experiment="), path
    return re.search(r"experiment=(\S+)", usage[0]).group(1)


def test_one_search_per_paper():
    papers = {p.stem.split("_")[0] for p in SEARCHES}
    assert papers == {"ht", "gc", "hta", "th"}
    assert {p.stem for p in SEARCHES} >= {"ht_sine_lr", "gc_lotka_volterra", "th_resnet20_inna"}


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.stem)
def test_search_composes_with_its_experiment_and_sweeps_existing_keys(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    experiment = usage_experiment(path)
    assert experiment in experiment_names()
    cfg = compose([f"experiment={experiment}", hparams_search(path.stem)], hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction in ("minimize", "maximize")
    assert sweeper.n_trials >= 10
    assert cfg.hydra.mode.name == "MULTIRUN"  # -m may be left out
    assert cfg.monitor.startswith(("train/", "test/", "t1/")), cfg.monitor
    params = dict(sweeper.params)
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    swept = [o for o in overrides if o.is_sweep_override()]
    assert swept, "a search must sweep something"
    fixed = [f"{o.key_or_group}={o.value()}" for o in overrides if not o.is_sweep_override()]
    # with the fixed choices (optimizer=inna), every swept key is a value the run reads
    run = compose([f"experiment={experiment}", hparams_search(path.stem), *fixed])
    for o in swept:
        assert OmegaConf.select(run, o.key_or_group, default="missing") != "missing", o.key_or_group
    # and the config the first trial would run (each swept key at a value from its range) is valid
    from optrepro.config import apply_profile, validate

    picked = []
    for o in swept:
        value = o.value()
        first = list(value.list) if hasattr(value, "list") else [value.start]
        picked.append(f"{o.key_or_group}={first[0]}")
    validate(apply_profile(compose([f"experiment={experiment}", hparams_search(path.stem), *fixed, *picked])))


@pytest.mark.slow
def test_two_trial_optuna_search_at_smoke_scale(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "search"
    args = [
        "-m",
        "experiment=ht/sine_f1",
        hparams_search("ht_sine_lr"),
        "profile=smoke",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.output_dir={tmp_path / 'outputs'}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("OPTREPRO_CONFIG_DIR", None)
    code = "from optrepro.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.name == "optuna"
    assert 1e-4 <= results.best_params["optimizer.lr"] <= 1e-2
    assert isinstance(results.best_value, float) and results.best_value > 0
    summaries = sorted(sweep_dir.rglob("seeds=0-1/summary.json"))
    assert len(summaries) == 2  # one run per trial (smoke: the ensemble's first 2 members)
