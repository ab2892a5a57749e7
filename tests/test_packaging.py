"""The wheel: what it ships (configs, LICENSE, extras), and that an installed copy trains outside the checkout."""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "optrepro" / "configs"


def build_wheel(out: Path) -> Path:
    """Build the wheel from a copy of the project (the build leaves build/ and *.egg-info where it runs), with a
    machine's own configs/local/default.yaml in the copy, as a developer's checkout has one."""
    project = out / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (project / "src" / "optrepro" / "configs" / "local" / "default.yaml").write_text("seed: 7\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("optrepro-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_wheel_ships_every_config_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "optrepro/configs/train.yaml" in names
    expected = {f"optrepro/configs/{p.relative_to(CONFIGS).as_posix()}" for p in CONFIGS.rglob("*.yaml")}
    expected -= {n for n in expected if n.startswith("optrepro/configs/local/")}
    experiments = {n for n in expected if n.startswith("optrepro/configs/experiment/")}
    assert len(experiments) >= 20 and "optrepro/configs/experiment/ht/sine_f1.yaml" in experiments
    assert {"optrepro/configs/hydra/help/optrepro.yaml", "optrepro/configs/hparams_search/ht_sine_lr.yaml"} <= expected
    assert expected <= names, sorted(expected - names)
    assert "hydra_plugins/optrepro_slurm/launcher.py" in names  # hydra/launcher=slurm is found from the namespace
    assert "optrepro/configs/local/default.yaml" not in names  # one machine's settings stay on it
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert {"optrepro/cli.py", "optrepro/extras.py"} <= names


def test_wheel_metadata_keeps_optional_packages_in_extras(wheel):
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_string(z.read(meta).decode())
    requires = metadata.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if r.split(">")[0].strip() in ("wandb", "tensorboard", "torchdiffeq")]
    assert not [r for r in core if "submitit" in r or "optuna" in r]
    for extra in ("wandb", "slurm", "optuna", "tensorboard", "ode", "all", "dev"):
        assert extra in metadata.get_all("Provides-Extra")
    assert any(r.startswith("torchdiffeq") and 'extra == "ode"' in r for r in requires)
    assert any(r.startswith("hydra-optuna-sweeper") and 'extra == "all"' in r for r in requires)
    assert metadata["License-Expression"] == "MIT"


@pytest.mark.slow
def test_installed_wheel_trains_a_preset_outside_the_checkout(wheel, tmp_path):
    site, outside = tmp_path / "site", tmp_path / "elsewhere"
    outside.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("OPTREPRO_CONFIG_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)

    def python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=outside, env=env, capture_output=True, text=True, timeout=600
        )

    where = python("-c", "import optrepro, optrepro.config as c; print(optrepro.__file__); print(c.config_dir())")
    assert where.returncode == 0, where.stderr
    module, configs = where.stdout.split()
    assert Path(module).resolve().is_relative_to(site.resolve()), module  # not the checkout's src/
    assert Path(configs).resolve() == (site / "optrepro" / "configs").resolve()

    run_dir = tmp_path / "run"
    done = python("-m", "optrepro.cli", "experiment=ht/sine_f1", "profile=smoke", f"paths.run_dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["experiment"] == "ht/sine_f1"
