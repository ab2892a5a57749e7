"""Every preset composes, survives each profile's shrinking and the value checks, and runs at profile=smoke."""

import pytest
from omegaconf import OmegaConf

from optrepro.config import apply_profile, compose, config_dir, experiment_names, validate
from optrepro.train import run

PRESETS = experiment_names()


def test_presets_are_found_by_walking_the_tree():
    on_disk = sorted(config_dir().joinpath("experiment").rglob("*.yaml"))
    assert len(PRESETS) == len(on_disk) >= 2
    assert "ht/sine_f1" in PRESETS


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("profile", ["paper", "quick", "smoke"])
def test_preset_composes_and_validates(name, profile):
    cfg = apply_profile(compose([f"experiment={name}", f"profile={profile}"]))
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert cfg.name == name


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_at_profile_smoke(name, tmp_path):
    cfg = compose([f"experiment={name}", "profile=smoke", f"paths.run_dir={tmp_path}"])
    metrics = run(cfg)
    assert isinstance(metrics[cfg.monitor], float)
    if cfg.task.module != "toy":
        assert metrics["runs/completed"] == min(2, cfg.ensemble.size)  # smoke keeps two seeds
    assert (tmp_path / "summary.json").is_file()


def test_quick_profile_keeps_the_schedule_shape():
    paper = compose(["experiment=ht/sine_f1"])
    quick = apply_profile(compose(["experiment=ht/sine_f1", "profile=quick"]))
    assert quick.homotopy.gamma == paper.homotopy.gamma == 10
    assert quick.homotopy.k == paper.homotopy.k // 10
    # the same split of the budget: gamma * k homotopy epochs, then the rest on the target
    assert (
        quick.trainer.epochs - quick.homotopy.gamma * quick.homotopy.k
        == (paper.trainer.epochs - paper.homotopy.gamma * paper.homotopy.k) // 10
    )
    assert quick.ensemble.size == 5 and paper.ensemble.size == 100


def test_sine_presets_carry_the_papers_numbers():
    f1 = compose(["experiment=ht/sine_f1"])
    assert (f1.task.omega, f1.task.source_omega, f1.task.n_samples) == (137, 1.0, 10000)
    assert (f1.model.hidden, f1.model.depth, f1.model.activation) == (100, 6, "relu")
    assert f1.optimizer.lr == 1e-3 and f1.optimizer._target_ == "torch.optim.Adam"
    assert (f1.homotopy.gamma, f1.homotopy.k, f1.trainer.epochs) == (10, 200, 2500)
    f2b = compose(["experiment=ht/sine_f2b"])
    assert (f2b.homotopy.gamma, f2b.homotopy.k, f2b.trainer.epochs) == (10, 300, 3600)
    assert f2b.schedule._target_.endswith("Cosine")


@pytest.mark.parametrize(("launcher", "target"), [("joblib", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launchers_compose(launcher, target):
    cfg = compose(["experiment=ht/sine_f1", f"hydra/launcher={launcher}"], hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 720
