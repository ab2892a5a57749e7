"""Every preset composes, survives each profile's shrinking and the value checks, and runs at profile=smoke."""

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import under_hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from optrepro.config import apply_profile, compose, config_dir, experiment_names, validate
from optrepro.ensemble import SingleMember, VmappedEnsemble
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


@pytest.fixture
def no_hydra_context():
    yield
    HydraConfig.instance().cfg = None  # the next test composes without a job context


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_at_profile_smoke_and_saves_the_config_that_ran(name, tmp_path, no_hydra_context):
    cfg = under_hydra([f"experiment={name}", "profile=smoke"], tmp_path)
    metrics = run(cfg)
    assert isinstance(metrics[cfg.monitor], float)
    ran = apply_profile(cfg)
    if cfg.task.module != "toy":
        # smoke keeps up to two seeds of an ensemble; image presets train one seed per run
        assert metrics["runs/completed"] == ran.ensemble.size
    assert (tmp_path / "summary.json").is_file()
    saved = OmegaConf.load(tmp_path / ".hydra" / "config.yaml")
    composed = OmegaConf.load(tmp_path / ".hydra" / "composed.yaml")  # Hydra's own, before the profile
    assert OmegaConf.to_container(saved, resolve=True) == OmegaConf.to_container(ran, resolve=True)
    assert composed.trainer.epochs == cfg.trainer.epochs
    if cfg.task.module != "toy":
        for metrics_csv in tmp_path.rglob("metrics.csv"):  # every member's rows: the target epochs that ran
            rows = pd.read_csv(metrics_csv)
            assert (rows.epoch >= 0).sum() == saved.trainer.epochs, metrics_csv


#: stands in for any datamodule, paired (a source task beside the target) or not
NO_DATA = SimpleNamespace(source_name="source", num_classes=10)


class FitNothing:
    """Stands in for the Trainer: records what it was built with and trains nothing."""

    built: list[dict] = []

    def __init__(self, cfg, run_dir, max_epochs, loggers, callbacks, bar):
        FitNothing.built.append({"max_epochs": max_epochs})
        self.interrupted = False

    def fit(self, module, datamodule=None, ckpt_path=None):
        FitNothing.built[-1]["source_epochs"] = module.method.source_epochs


@pytest.mark.parametrize("name", [n for n in PRESETS])
@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_the_saved_config_is_the_config_the_trainer_gets(name, profile, tmp_path, monkeypatch, no_hydra_context):
    """At paper and quick scale nothing is trained here: the Trainer (or the toy's loop) is replaced by a recorder,
    and the saved ``.hydra/config.yaml`` must state the epochs (and toy settings) it was given, not the preset's."""
    import optrepro.train as train

    cfg = under_hydra([f"experiment={name}", f"profile={profile}"], tmp_path)
    monkeypatch.setattr(train, "build_trainer", FitNothing)
    toys = []
    monkeypatch.setattr(train, "run_toy", lambda cfg, run_dir, chash: toys.append(cfg) or {})
    FitNothing.built = []
    if cfg.task.module != "toy":  # no data, no network: only the config and the Trainer's epochs matter here
        monkeypatch.setattr(train, "build_members", lambda make, seeds, compile=False: _members(len(seeds)))
        build = train.build
        monkeypatch.setattr(train, "build", lambda node, *a, **k: NO_DATA if "seeds" in k else build(node, *a, **k))
    run(cfg)
    saved = OmegaConf.load(tmp_path / ".hydra" / "config.yaml")
    if cfg.task.module == "toy":
        assert OmegaConf.to_container(saved.task) == OmegaConf.to_container(toys[0].task)
        return
    (built,) = FitNothing.built
    assert saved.trainer.epochs + built["source_epochs"] == built["max_epochs"]
    assert saved.trainer.epochs == apply_profile(cfg).trainer.epochs
    if profile == "quick" and cfg.trainer.epochs >= 100:
        assert saved.trainer.epochs < cfg.trainer.epochs  # the profile's scale, not the preset's


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
    if launcher == "slurm":  # the booking follows the trainer (optrepro.slurm): nothing booked by hand
        assert cfg.hydra.launcher.timeout_min == 720 and cfg.hydra.launcher.max_num_timeout > 0
        assert (cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.tasks_per_node) == (None, None)


def _members(n: int):
    """Members of a two-weight model (a convolution and a linear layer, so that every HTA scope selects one): the
    preset's network is not built when nothing trains."""
    models = [
        torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Flatten(), torch.nn.Linear(1, 1)) for _ in range(n)
    ]
    return SingleMember(models[0]) if n == 1 else VmappedEnsemble(models)


def test_sweep_folders_are_named_from_the_overrides_and_a_long_name_ends_with_its_hash():
    from optrepro.config import MAX_FOLDER_NAME, sweep_subdir

    assert sweep_subdir("method=warm_start,task.omega=74", 3) == "method=warm_start,task.omega=74/seed=3"
    assert sweep_subdir("method=warm_start", 0, size=100, max_members=5) == "method=warm_start/seeds=0-4"
    assert sweep_subdir("", 7) == "seed=7"
    long = ",".join(f"task.key_{i}={i / 7:.6f}" for i in range(14))  # 14 overrides, 300 characters
    other = long.replace("key_13", "key_99")  # the same first 180 characters
    named, twin = (sweep_subdir(o, 0).split("/")[0] for o in (long, other))
    assert len(long) > 255 and len(named.encode()) <= MAX_FOLDER_NAME and named != twin
    assert named.startswith("task.key_0=0.000000,task.key_1=0.142857,") and ",..." in named
    assert sweep_subdir(long, 0) == sweep_subdir(long, 0)  # a rerun finds its folder
