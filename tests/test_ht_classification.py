"""HT classification homotopy (HT section 4.2.2, eq. 17-18; Figures 3 and 6): mixing, pairing, refusals, network.

The image API (``optrepro.data.images``) is replaced by a small stand-in whose images carry their label in their
pixels, so the tests know which label belongs to which image without any dataset.
"""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from optrepro.config import ConfigError, apply_profile, compose, validate
from optrepro.data.paired import PairedImageDataModule, check_pair, convert, pair_indices, subset_indices
from optrepro.methods import Constant, DataHomotopy, Staircase, mix_images, soft_labels
from optrepro.methods.base import check_applicable
from optrepro.models import VGGType
from optrepro.tasks import Classification, make_task

SHAPES = {  # channels, height, width, classes, mean, std
    "mnist": (1, 28, 28, 10, [0.1], [0.3]),
    "mnist5k": (1, 28, 28, 10, [0.1], [0.3]),
    "fashion_mnist": (1, 28, 28, 10, [0.3], [0.35]),
    "cifar10": (3, 32, 32, 10, [0.5, 0.5, 0.4], [0.25, 0.25, 0.25]),
    "cifar100": (3, 32, 32, 100, [0.5, 0.5, 0.4], [0.25, 0.25, 0.25]),
}
SIZES = {"mnist": 7, "mnist5k": 7, "fashion_mnist": 10, "cifar10": 10, "cifar100": 10}  # train sizes


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class ImageArrays:
    x: torch.Tensor
    y: torch.Tensor
    name: str


def labelled_images(name: str, n: int, offset: int) -> ImageArrays:
    """Image i has label (i + offset) % classes and every pixel equal to 20 * label + (1 if MNIST-like else 2)."""
    c, h, w, k = SHAPES[name][:4]
    y = (torch.arange(n) + offset) % k
    mark = 1 if c == 1 and "mnist" in name and name != "fashion_mnist" else 2
    x = (20 * (y % 12) + mark).to(torch.uint8).view(n, 1, 1, 1).expand(n, c, h, w).clone()
    return ImageArrays(x, y, name)


@pytest.fixture
def fake_images(monkeypatch):
    """A stand-in for optrepro.data.images with the contract's names."""
    api = types.ModuleType("optrepro.data.images")
    api.INFO = {
        n: {"channels": c, "height": h, "width": w, "num_classes": k, "mean": m, "std": s}
        for n, (c, h, w, k, m, s) in SHAPES.items()
    }
    api.ImageArrays = ImageArrays

    def load_images(name, root, train, download=False):  # MNIST-like: labels 0..6; others: 3, 4, ..., 9, 0, 1, 2
        return labelled_images(name, SIZES[name] if train else 5, (3 if SIZES[name] == 10 else 0) if train else 0)

    api.load_images = load_images
    api.synthetic_images = lambda name, n, seed: labelled_images(name, n, seed % 10)
    monkeypatch.setitem(sys.modules, "optrepro.data.images", api)
    return api


def datamodule(source="mnist", target="fashion_mnist", **kw) -> PairedImageDataModule:
    dm = PairedImageDataModule(source, target, seeds=[kw.pop("seed", 0)], batch_size=kw.pop("batch_size", 4), **kw)
    dm.setup()
    return dm


def unnormalize(x: torch.Tensor, info: dict) -> torch.Tensor:
    """The uint8 pixel value of the first pixel of each image, from a normalized batch."""
    return (x[:, 0, 0, 0] * info["std"][0] + info["mean"][0]) * 255


# -- eq. 17-18 by hand ----------------------------------------------------------------------------------------------
def test_mixture_and_soft_label_for_a_known_pair():
    x_s, x_t = torch.tensor([[0.0, 1.0, 0.5]]), torch.tensor([[1.0, 0.0, 0.25]])
    y_s, y_t = torch.tensor([2]), torch.tensor([5])
    assert torch.equal(mix_images(x_s, x_t, 0.0), x_s)
    assert torch.equal(mix_images(x_s, x_t, 1.0), x_t)
    # 0.5 * [0, 1, .5] + 0.5 * [1, 0, .25] = [.5, .5, .375]
    assert torch.allclose(mix_images(x_s, x_t, 0.5), torch.tensor([[0.5, 0.5, 0.375]]))
    e2, e5 = torch.zeros(10), torch.zeros(10)
    e2[2], e5[5] = 1.0, 1.0
    assert torch.equal(soft_labels(y_s, y_t, 0.0, 10)[0], e2)
    assert torch.equal(soft_labels(y_s, y_t, 1.0, 10)[0], e5)
    # HT Figure 6: classes 2 and 5 at lambda = 0.5 -> [0, 0, .5, 0, 0, .5, 0, 0, 0, 0]
    assert soft_labels(y_s, y_t, 0.5, 10)[0].tolist() == [0, 0, 0.5, 0, 0, 0.5, 0, 0, 0, 0]
    # same class on both sides: that class with probability 1 at any lambda
    assert soft_labels(torch.tensor([3]), torch.tensor([3]), 0.3, 10)[0, 3] == pytest.approx(1.0)


def soft_cross_entropy(logits, target):
    """The task's loss for one member, from plain [B, C] logits."""
    return Classification("t", num_classes=logits.shape[1]).loss(logits[None], target[None])[0]


def test_soft_label_cross_entropy_is_ordinary_cross_entropy_at_the_ends():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.3, -0.7]])
    y_s, y_t = torch.tensor([0, 2]), torch.tensor([1, 2])
    assert soft_cross_entropy(logits, soft_labels(y_s, y_t, 0.0, 3)).item() == pytest.approx(
        F.cross_entropy(logits, y_s).item(), rel=1e-6
    )
    assert soft_cross_entropy(logits, soft_labels(y_s, y_t, 1.0, 3)).item() == pytest.approx(
        F.cross_entropy(logits, y_t).item(), rel=1e-6
    )
    # in between, the loss is linear in the label: first row at lambda = .5 is .5 (-log p0) + .5 (-log p1)
    logp = torch.log_softmax(logits[:1], 1)[0]
    expected = -(0.5 * logp[0] + 0.5 * logp[1]).item()
    assert soft_cross_entropy(logits[:1], soft_labels(y_s[:1], y_t[:1], 0.5, 3)).item() == pytest.approx(expected)
    by_hand = math.log(math.exp(2.0) + math.exp(-1.0) + math.exp(0.5)) - 0.5 * (2.0 - 1.0)
    assert expected == pytest.approx(by_hand, rel=1e-6)


# -- the method's hook --------------------------------------------------------------------------------------------
def homotopy_on(dm, method) -> Classification:
    """The method set up on ``dm``'s paired classification task, as the loop does before training."""
    task = make_task("classification", "ht_mnist_fmnist", dm)
    assert task.has_source and task.num_classes == 10
    method.setup(task, dm)
    return task


def test_the_batch_hook_moves_from_source_to_target(fake_images):
    dm = datamodule()
    method = DataHomotopy("data_homotopy", Staircase(2, 1), source_epochs=1)
    task = homotopy_on(dm, method)
    x_s, y_s, x_t, y_t = next(iter(dm.train_dataloader()))
    batch = task.batch((x_s, y_s, x_t, y_t))  # one member: [1, B, ...]
    x, y = method.batch(batch, method.parameter(-1))  # source pre-training
    assert torch.equal(x[0], x_s) and torch.equal(y[0], y_s)
    x, y = method.batch(batch, method.parameter(0))  # lambda = 1/2
    assert method.parameter(0) == 0.5
    assert torch.allclose(x[0], 0.5 * x_s + 0.5 * x_t)
    assert y.shape == (1, 4, 10) and torch.allclose(y.sum(-1), torch.ones(1, 4))
    for i in range(4):  # half a unit on the source's class, half on the target's (a full unit if they agree)
        expected = torch.zeros(10)
        expected[y_s[i]] += 0.5
        expected[y_t[i]] += 0.5
        assert torch.equal(y[0, i], expected)
    x, y = method.batch(batch, method.parameter(1))  # lambda = 1
    assert torch.equal(x[0], x_t) and torch.equal(y[0], y_t)


def test_baselines_read_the_target_and_warm_start_pretrains_on_the_source(fake_images):
    dm = datamodule()
    raw = next(iter(dm.train_dataloader()))
    warm = DataHomotopy("warm_start", Constant(1.0), source_epochs=3)
    batch = homotopy_on(dm, warm).batch(raw)
    assert torch.equal(warm.batch(batch, warm.parameter(-3))[1][0], raw[1])
    assert torch.equal(warm.batch(batch, warm.parameter(0))[1][0], raw[3])
    rand = DataHomotopy("random_init", Constant(1.0))
    homotopy_on(dm, rand)
    assert torch.equal(rand.batch(batch, rand.parameter(0))[0][0], raw[2])


# -- pairing -------------------------------------------------------------------------------------------------------
def test_pairing_keeps_each_label_with_its_image(fake_images):
    dm = datamodule(batch_size=3)
    info = fake_images.INFO
    seen_targets = []
    for x_s, y_s, x_t, y_t in dm.train_dataloader():
        # each image's pixel value encodes its own label: 20 * label + 1 (MNIST) or + 2 (FashionMNIST)
        assert torch.allclose(unnormalize(x_s, info["mnist"]), 20.0 * y_s + 1, atol=1e-3)
        assert torch.allclose(unnormalize(x_t, info["fashion_mnist"]), 20.0 * y_t + 2, atol=1e-3)
        seen_targets += y_t.tolist()
    # one epoch: every target example once (labels (i + 3) % 10 for i < 10: each class once)
    assert sorted(seen_targets) == list(range(10))


def test_each_epoch_draws_its_own_pairs_from_the_trainers_epoch(fake_images):
    dm = datamodule(batch_size=10)
    dm.trainer = types.SimpleNamespace(current_epoch=0, strategy=types.SimpleNamespace(root_device=torch.device("cpu")))
    loader = dm.train_dataloader()
    labels = []
    for epoch in (0, 1, 0):
        dm.trainer.current_epoch = epoch
        [(_, y_s, _, y_t)] = list(loader)
        src, tgt = pair_indices(0, epoch, 7, 10)
        assert torch.equal(y_s, dm.source.y[src]) and torch.equal(y_t, dm.target.y[tgt])
        labels.append((y_s, y_t))
    assert torch.equal(labels[0][1], labels[2][1]) and not torch.equal(labels[0][1], labels[1][1])


def test_pairs_are_a_function_of_seed_and_epoch():
    s0, t0 = pair_indices(seed=0, epoch=0, n_source=7, n_target=10)
    assert sorted(t0.tolist()) == list(range(10))
    # a smaller source is walked in full (a permutation of 7), then restarted: 10 = 7 + 3 draws
    assert sorted(s0[:7].tolist()) == list(range(7)) and len(set(s0[7:].tolist())) == 3
    again = pair_indices(seed=0, epoch=0, n_source=7, n_target=10)
    assert torch.equal(s0, again[0]) and torch.equal(t0, again[1])
    s1, t1 = pair_indices(seed=0, epoch=1, n_source=7, n_target=10)
    other_seed = pair_indices(seed=1, epoch=0, n_source=7, n_target=10)
    assert not torch.equal(s0, s1) or not torch.equal(t0, t1)
    assert not torch.equal(s0, other_seed[0]) or not torch.equal(t0, other_seed[1])
    # a larger source: distinct source examples within the epoch
    s, t = pair_indices(seed=3, epoch=2, n_source=50, n_target=20)
    assert len(set(s.tolist())) == 20


def test_evaluation_serves_the_targets_test_split(fake_images):
    dm = datamodule()
    batches = list(dm.eval_batches("test"))
    assert all(len(b) == 2 for b in batches)
    y = torch.cat([b[1] for b in batches])
    assert y.tolist() == [0, 1, 2, 3, 4]  # the stand-in's test split of FashionMNIST
    assert (dm.num_classes, dm.input_shape) == (10, (1, 28, 28))


def test_mnist_is_padded_and_repeated_for_cifar10(fake_images):
    dm = datamodule("mnist", "cifar10", pad_to=32, channels=3)
    assert dm.input_shape == (3, 32, 32)
    x_s, y_s, x_t, y_t = next(iter(dm.train_dataloader()))
    assert x_s.shape == x_t.shape == (4, 3, 32, 32)
    mean, std = 0.1, 0.3  # the stand-in's MNIST statistics, on each repeated channel
    border = (0 / 255 - mean) / std  # the 2-pixel zero border, normalized by MNIST's own statistics
    assert torch.allclose(x_s[:, :, :2, :], torch.full_like(x_s[:, :, :2, :], border))
    assert torch.allclose(x_s[:, :, :, 30:], torch.full_like(x_s[:, :, :, 30:], border))
    inner = (20 * y_s.float() + 1) / 255
    assert torch.allclose(x_s[:, :, 2, 2], ((inner - mean) / std).unsqueeze(1).expand(4, 3), atol=1e-5)
    assert torch.equal(x_s[:, 0], x_s[:, 1]) and torch.equal(x_s[:, 1], x_s[:, 2])
    # the target keeps CIFAR-10's own per-channel statistics
    assert torch.allclose(x_t[:, 2, 0, 0], ((20 * y_t.float() + 2) / 255 - 0.4) / 0.25, atol=1e-5)


def test_convert_pads_centred():
    x = torch.full((1, 1, 28, 28), 7, dtype=torch.uint8)
    out = convert(x, pad_to=32, channels=3)
    assert out.shape == (1, 3, 32, 32)
    assert out[0, 0, 2:30, 2:30].eq(7).all() and out.sum() == 7 * 28 * 28 * 3


def test_max_train_samples_keeps_a_fixed_subset(fake_images):
    dm = datamodule(max_train_samples=4)
    assert len(dm.source) == len(dm.target) == 4
    labels = dm.target.y.tolist()  # the stand-in's FashionMNIST: 10 images, labels 3, 4, ..., 9, 0, 1, 2
    assert len(set(labels)) == 4 and labels != [3, 4, 5, 6]  # drawn, not the first four (mnist5k is sorted)
    assert datamodule(max_train_samples=4, seed=5).target.y.tolist() == labels  # the same subset for every seed
    assert torch.equal(subset_indices(10, 4), subset_indices(10, 4)) and len(subset_indices(10, 20)) == 10


# -- refusals ------------------------------------------------------------------------------------------------------
def test_refuses_tasks_with_different_numbers_of_classes(fake_images):
    with pytest.raises(ConfigError, match=r"cifar10 \(10 classes\) to cifar100 \(100 classes\).*same number of"):
        PairedImageDataModule("cifar10", "cifar100", seeds=[0])


def test_refuses_shapes_that_differ_after_padding(fake_images):
    with pytest.raises(ConfigError, match=r"shapes \(1, 28, 28\) and \(3, 32, 32\).*pad_to=32, channels=3"):
        PairedImageDataModule("mnist", "cifar10", seeds=[0])
    with pytest.raises(ConfigError, match=r"shapes \(1, 32, 32\) and \(3, 32, 32\)"):
        check_pair("mnist", "cifar10", fake_images.INFO, pad_to=32, channels=None)
    assert check_pair("cifar10", "mnist", fake_images.INFO, pad_to=32, channels=3) == (3, 32, 32)


def test_refuses_an_ensemble_and_an_unknown_dataset(fake_images):
    with pytest.raises(ConfigError, match="ensemble.size=2.*sweep seeds"):
        PairedImageDataModule("mnist", "fashion_mnist", seeds=[0, 1])
    with pytest.raises(ConfigError, match="task.target='svhn'"):
        PairedImageDataModule("mnist", "svhn", seeds=[0])
    with pytest.raises(ConfigError, match="task.channels=2 is not allowed"):
        PairedImageDataModule("mnist", "cifar10", seeds=[0], pad_to=32, channels=2)


def test_refuses_a_source_phase_without_a_source_task():
    plain = make_task("classification", "fashion_mnist", types.SimpleNamespace(num_classes=10))  # (x, y) only
    with pytest.raises(ConfigError, match="method=warm_start cannot train task=fashion_mnist: it trains on a source"):
        check_applicable(DataHomotopy("warm_start", Constant(1.0), source_epochs=2), plain, 1)
    check_applicable(DataHomotopy("random_init", Constant(1.0)), plain, 1)  # the target alone is fine
    with pytest.raises(ConfigError, match="Gaussian filter averages real-valued targets.*task=sine"):
        check_applicable(DataHomotopy("data_homotopy", Constant(1.0), form="gaussian_filter"), plain, 1)


# -- the network ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("c", "size"), [(1, 28), (3, 32)])
def test_vgg_type_output_shapes(c, size):
    net = VGGType(in_channels=c, num_classes=10, input_size=size)
    assert net(torch.zeros(2, c, size, size)).shape == (2, 10)
    # three pools: 28 -> 14 -> 7 -> 3 and 32 -> 16 -> 8 -> 4, 128 channels into the hidden layer
    assert net.classifier[1].in_features == 128 * (size // 8) ** 2
    with pytest.raises(ValueError, match="built for inputs"):
        net(torch.zeros(2, 3 - c + 1 if c == 1 else 1, size, size))


def test_a_few_homotopy_steps_through_the_datamodule(fake_images):
    """The pieces fit: paired batches -> eq. 17-18 -> VGG-type -> soft cross-entropy -> Adam."""
    dm = datamodule("mnist", "cifar10", pad_to=32, channels=3)
    torch.manual_seed(0)
    net = VGGType(3, dm.num_classes, 32, widths=[4, 8], hidden=8)
    method = DataHomotopy("data_homotopy", Staircase(2, 1), source_epochs=1)
    task = homotopy_on(dm, method)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for epoch in (-1, 0):  # lambda = 0, then 1/2
        for raw in dm.train_dataloader():
            x, y = method.batch(task.batch(raw), method.parameter(epoch))
            x, y = x[0], y[0]
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert torch.isfinite(loss)
            assert y.dim() == (1 if epoch == -1 else 2)


# -- presets -------------------------------------------------------------------------------------------------------
PRESETS = ["ht/mnist_fmnist_f3a", "ht/mnist_cifar10_f3b", "ht/mnist5k_fmnist_f3a"]


def test_presets_carry_the_papers_numbers():
    f3a, f3b = compose(["experiment=ht/mnist_fmnist_f3a"]), compose(["experiment=ht/mnist_cifar10_f3b"])
    assert f3a.optimizer._target_ == f3b.optimizer._target_ == "torch.optim.Adam"
    assert (f3a.optimizer.lr, f3b.optimizer.lr) == (1e-3, 1e-4)
    assert (f3a.task.source, f3a.task.target, f3b.task.target) == ("mnist", "fashion_mnist", "cifar10")
    assert (f3b.task.pad_to, f3b.task.channels, f3b.model.in_channels, f3b.model.input_size) == (32, 3, 3, 32)
    assert (f3a.model.in_channels, f3a.model.input_size) == (1, 28)
    assert f3a.ensemble.size == f3b.ensemble.size == 1
    sub = compose(["experiment=ht/mnist5k_fmnist_f3a"])
    assert (sub.task.source, sub.task.max_train_samples, sub.optimizer.lr) == ("mnist5k", 5000, 1e-3)
    assert "subset" in sub.tags


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("profile", ["quick", "smoke"])
def test_shrunk_presets_keep_every_lambda_step(name, profile):
    cfg = apply_profile(compose([f"experiment={name}", f"profile={profile}"]))
    validate(cfg)
    assert cfg.homotopy.gamma == 5
    assert cfg.trainer.epochs >= cfg.homotopy.gamma * cfg.homotopy.k + 1  # the staircase, then the target


@pytest.mark.parametrize("name", ["ht/mnist_fmnist_f3a", "ht/mnist_cifar10_f3b"])
@pytest.mark.parametrize("method", ["random_init", "warm_start", "data_homotopy"])
def test_preset_runs_at_profile_smoke(name, method, tmp_path):
    import pandas as pd

    from optrepro.train import run

    cfg = compose([f"experiment={name}", f"method={method}", "profile=smoke", f"paths.run_dir={tmp_path}"])
    metrics = run(cfg)
    assert metrics["runs/completed"] == 1
    rows = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    smoke = apply_profile(cfg)
    source = 0 if method == "random_init" else smoke.homotopy.source_epochs
    assert rows.epoch.tolist() == list(range(-source, smoke.trainer.epochs))
    if method == "data_homotopy":
        target = rows[rows.epoch >= 0]["homotopy/lambda"].tolist()
        assert target[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # gamma = 5 steps of k = 1 epoch


# -- report: Figures 3 and 6 ---------------------------------------------------------------------------------------
def _fake_run(root, method: str, seed: int, losses: list[float], accs: list[float], source_epochs: int, **task):
    """A run directory as optrepro-train leaves it: summary.json and metrics.csv (epochs -source_epochs ..)."""
    import json

    import pandas as pd

    run_dir = root / method / f"seed={seed}"
    run_dir.mkdir(parents=True)
    config = {
        "task": {"name": "ht_mnist_fmnist", "module": "classification", "batch_size": 128, **task},
        "trainer": {"epochs": len(losses) - source_epochs},
        "method": {"source_epochs": source_epochs},
        "optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3},
        "profile": {"name": "paper"},
    }
    summary = {"kind": "run", "experiment": "ht/mnist5k_fmnist_f3a", "method": method, "seed": seed}
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "completed", "config": config}))
    epochs = list(range(-source_epochs, len(losses) - source_epochs))
    pd.DataFrame({"epoch": epochs, "train/loss": losses, "test/acc": accs}).to_csv(run_dir / "metrics.csv")


def test_report_figure_three_medians_and_subset_label(tmp_path):
    from optrepro.report.cli import main as report_main

    task = {"source": "mnist5k", "target": "fashion_mnist", "max_train_samples": 5000}
    for seed, (a, b) in enumerate(((1.0, 0.5), (3.0, 0.7), (2.0, 0.6))):
        _fake_run(tmp_path / "runs", "random_init", seed, [2.0, a], [0.1, b], 0, **task)
        _fake_run(tmp_path / "runs", "data_homotopy", seed, [0.4, 1.5, a / 2], [0.5, 0.2, b + 0.1], 1, **task)
    assert report_main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "report" / "ht_classification_final.csv").set_index("method")
    # medians of the last epoch over three seeds: losses {1, 3, 2} -> 2, {.5, 1.5, 1} -> 1; accuracies .6 and .7
    assert table.loc["random_init", "train/loss"] == pytest.approx(2.0)
    assert table.loc["data_homotopy", "train/loss"] == pytest.approx(1.0)
    assert table.loc["data_homotopy", "test/acc"] == pytest.approx(0.7)
    assert (table["runs"] == 3).all() and (table["subset run"] == "yes").all()
    text = (tmp_path / "report" / "report.md").read_text()
    assert "HT Figure 3a" in text and "SUBSET RUN" in text and "5000-image MNIST subset" in text
    assert (tmp_path / "report" / "ht_mnist5k_fmnist_f3a.png").stat().st_size > 1000


def test_report_figure_six_from_data_or_generated(fake_images, tmp_path, monkeypatch):
    from optrepro.illustrations import mixture_picture

    [item] = mixture_picture(tmp_path)
    assert "[0, 0, 0.5, 0, 0, 0.5, 0, 0, 0, 0]" in item["caption"]
    assert "mnist (real), fashion_mnist (real)" in item["caption"]
    assert (tmp_path / "ht_f6_image_pair.png").stat().st_size > 1000

    def missing(name, root, train, download=False):
        raise ConfigError(f"dataset {name} not found")

    monkeypatch.setattr(fake_images, "load_images", missing)
    [item] = mixture_picture(tmp_path)
    assert "mnist (generated: dataset not found)" in item["caption"]
