"""Paired source and target images for the classification homotopy of HT section 4.2.2 (eq. 17-18).

A ``PairedImageDataModule`` serves training batches ``(x_s, y_s, x_t, y_t)``: a source example beside a target
example, both already normalized, of one common shape; the method (``DataHomotopy.batch``) mixes
them. Validation serves the target's test split as ``(x, y)``, as a plain ``ImageDataModule`` would.

Choices the paper leaves open (HT section 5.2 says only "paired samples drawn from both datasets"):

- An epoch is one pass over the target's training set: each target example once, in an order drawn from
  (seed, epoch). Each is paired with a source example drawn independently of it: the source set is walked in its
  own order, also drawn from (seed, epoch) on another stream, and restarted with a fresh order when it runs out (a
  smaller source, e.g. the 5000-image MNIST subset, is visited several times per epoch; a larger one partly). So the
  pairing changes every epoch, each label stays with its image, and the same seed and epoch give the same pairs.
- Common shape: MNIST-family images are zero-padded (centred) to ``pad_to`` pixels and repeated to ``channels``
  channels (MNIST -> CIFAR-10: 32x32x3). Shapes that still differ, or a different number of classes, are refused.
- Normalization: each dataset is normalized by its own per-channel mean and std (``INFO``) before mixing, so
  x_lambda = (1 - lambda) norm_s(x_s) + lambda norm_t(x_t): eq. 17 on the inputs the network sees. lambda = 0 is
  exactly the source task and lambda = 1 exactly the target task as trained alone. (Padding is applied before
  normalization: the border is the value 0 of the raw images.)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

import lightning as L
import torch
from torch import Tensor

from optrepro.config import ConfigError
from optrepro.data.image_batches import to_float
from optrepro.utils import member_seed

# Stream ids for member_seed: target order, source order, synthetic data.
TARGET_ORDER_STREAM = 11
SOURCE_ORDER_STREAM = 12
SYNTHETIC_STREAM = 13
SUBSET_STREAM = 14


def subset_indices(n: int, keep: int) -> Tensor:
    """The ``keep`` training images of a subset run: drawn once by a fixed generator (the same in every run and
    for every seed), in their original order. Not the first ``keep``: the mnist5k file is sorted by class."""
    if keep >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(member_seed(0, SUBSET_STREAM, n, keep))
    return torch.randperm(n, generator=g)[:keep].sort().values


def images_api():
    """``optrepro.data.images`` (looked up when used, so tests can put a small stand-in in its place)."""
    return importlib.import_module("optrepro.data.images")


def field(info, key: str):
    """One entry of ``INFO[name]``, whether the API gives a mapping or an object with attributes."""
    return info[key] if isinstance(info, Mapping) else getattr(info, key)


def converted_shape(shape: tuple[int, int, int], pad_to: int | None, channels: int | None) -> tuple[int, int, int]:
    """(C, H, W) after zero padding to ``pad_to`` (never cropping) and repeating one channel to ``channels``."""
    c, h, w = shape
    if pad_to is not None:
        h, w = max(h, pad_to), max(w, pad_to)
    if channels is not None and c == 1:
        c = channels
    return c, h, w


def convert(x: Tensor, pad_to: int | None, channels: int | None) -> Tensor:
    """uint8 images [N, C, H, W] -> the common shape: centred zero padding, then a 1-channel image repeated."""
    h, w = x.shape[-2:]
    if pad_to is not None and (h < pad_to or w < pad_to):
        top, left = (max(pad_to - h, 0)) // 2, (max(pad_to - w, 0)) // 2
        bottom, right = max(pad_to - h, 0) - top, max(pad_to - w, 0) - left
        x = torch.nn.functional.pad(x, (left, right, top, bottom), value=0)
    if channels is not None and x.shape[1] == 1 and channels != 1:
        x = x.repeat(1, channels, 1, 1)
    return x


def check_pair(source: str, target: str, info: dict, pad_to: int | None, channels: int | None) -> tuple[int, ...]:
    """The common (C, H, W) of ``source`` and ``target``, or a ConfigError saying why there is none (HT eq. 17-18).

    Eq. 17 adds images pixel by pixel and eq. 18 adds one-hot labels, so both tasks need the same number of
    classes and, after padding and channel repetition, the same shape.
    """
    s, t = info[source], info[target]
    ns, nt = field(s, "num_classes"), field(t, "num_classes")
    if ns != nt:
        raise ConfigError(
            f"a data homotopy from {source} ({ns} classes) to {target} ({nt} classes) "
            "is not defined: the soft labels of HT eq. 18 mix one-hot vectors of the same length, so source and "
            "target need the same number of classes"
        )
    shapes = [
        converted_shape((field(i, "channels"), field(i, "height"), field(i, "width")), pad_to, channels) for i in (s, t)
    ]
    if shapes[0] != shapes[1]:
        raise ConfigError(
            f"a data homotopy from {source} to {target} mixes images pixel by pixel (HT eq. 17), but with "
            f"task.pad_to={pad_to} and task.channels={channels} they have shapes {shapes[0]} and {shapes[1]} "
            "(C, H, W): set task.pad_to and task.channels so both become the same (MNIST to CIFAR-10: pad_to=32, "
            "channels=3); images are padded, never cropped"
        )
    return shapes[0]


def pair_indices(seed: int, epoch: int, n_source: int, n_target: int) -> tuple[Tensor, Tensor]:
    """(source index, target index) of every pair of an epoch; a pure function of (seed, epoch).

    The target indices are a permutation of range(n_target); the source indices walk permutations of
    range(n_source), a fresh one each time the source runs out, independently of the target's order.
    """
    g_t = torch.Generator().manual_seed(member_seed(seed, TARGET_ORDER_STREAM, epoch))
    target = torch.randperm(n_target, generator=g_t)
    g_s = torch.Generator().manual_seed(member_seed(seed, SOURCE_ORDER_STREAM, epoch))
    rounds = -(-n_target // n_source)
    source = torch.cat([torch.randperm(n_source, generator=g_s) for _ in range(rounds)])[:n_target]
    return source, target


class Normalized:
    """uint8 images held on one device, served as float32 normalized by per-channel mean and std (of x / 255)."""

    def __init__(self, x: Tensor, y: Tensor, mean, std):
        self.x, self.y = x, y
        c = x.shape[1]
        # a 1-channel dataset repeated to 3 channels keeps its own statistics on every channel
        self.mean, self.std = (torch.as_tensor(v, dtype=torch.float32).flatten().expand(c).clone() for v in (mean, std))

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device) -> Normalized:
        self.x, self.y = self.x.to(device), self.y.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        # the images are already in the common shape (``convert``): scale and normalize only, as ImageDataModule does
        return to_float(self.x[idx], self.mean, self.std, None, self.x.shape[1]), self.y[idx]


class PairedBatches:
    """One epoch of ``(x_s, y_s, x_t, y_t)`` minibatches per iteration, indices drawn by ``pair_indices``.

    The epoch is read when iteration starts (``epoch()``), so the pairs change every epoch whether or not the
    trainer reloads its dataloaders.
    """

    def __init__(self, source: Normalized, target: Normalized, seed: int, epoch, batch_size: int, limit):
        self.source, self.target, self.seed, self.batch_size = source, target, seed, batch_size
        self.epoch = epoch if callable(epoch) else (lambda: epoch)
        n = len(target)
        self.n_batches = n // batch_size + (n % batch_size > 0)
        if limit is not None:
            self.n_batches = min(self.n_batches, limit)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        src, tgt = pair_indices(self.seed, self.epoch(), len(self.source), len(self.target))
        src, tgt = src.to(self.source.x.device), tgt.to(self.target.x.device)
        for b in range(self.n_batches):
            s = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield (*self.source.batch(src[s]), *self.target.batch(tgt[s]))


class PlainBatches:
    """The target's test split as ``(x, y)`` minibatches, in order."""

    def __init__(self, data: Normalized, batch_size: int):
        self.data, self.batch_size = data, batch_size

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for b in range(len(self)):
            idx = torch.arange(b * self.batch_size, min((b + 1) * self.batch_size, len(self.data)))
            yield self.data.batch(idx.to(self.data.x.device))


class PairedImageDataModule(L.LightningDataModule):
    """Source and target image tasks side by side for the HT classification homotopy (HT eq. 17-18).

    Built from a task config (``configs/task/ht_mnist_*.yaml``) by ``build(cfg.task, seeds=[seed],
    limit_batches=...)``. Attributes as ``ImageDataModule``: ``num_classes``, ``input_shape`` (the common
    (C, H, W)). Options: ``batch_size``; ``pad_to`` and ``channels`` (the common shape); ``max_train_samples``
    (N training images of each task, the same N in every run: a subset run, named so in reports);
    ``synthetic`` (generated images of each dataset's shape and classes, set by profile=smoke;
    ``synthetic_samples`` of them);
    ``on_device`` (keep the uint8 images on the training device, null: on a GPU); ``download``.
    """

    def __init__(
        self,
        source: str,
        target: str,
        seeds: list[int],
        root: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        pad_to: int | None = None,
        channels: int | None = None,
        max_train_samples: int | None = None,
        synthetic: bool = False,
        synthetic_samples: int = 256,
        on_device: bool | None = None,
        download: bool = False,
        limit_batches: int | None = None,
    ):
        super().__init__()
        if len(seeds) != 1:
            raise ConfigError(
                f"ensemble.size={len(seeds)}: image tasks train one model per process; use ensemble.size=1 and "
                "sweep seeds (seed=0,1,...,9)"
            )
        for key, value, ok, allowed in (
            ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1, "an integer >= 1"),
            ("pad_to", pad_to, pad_to is None or (isinstance(pad_to, int) and pad_to >= 1), "null or an integer >= 1"),
            ("channels", channels, channels in (None, 1, 3), "null, 1 or 3"),
            ("max_train_samples", max_train_samples, max_train_samples is None or max_train_samples >= 1, ">= 1"),
        ):
            if not ok:
                raise ConfigError(f"task.{key}={value!r} is not allowed: task.{key} must be {allowed}")
        api = images_api()
        for role, name in (("task.source", source), ("task.target", target)):
            if name not in api.INFO:
                raise ConfigError(f"{role}={name!r} is not one of {sorted(api.INFO)}")
        self.input_shape = check_pair(source, target, api.INFO, pad_to, channels)
        self.num_classes = int(field(api.INFO[target], "num_classes"))
        self.source_name, self.target_name, self.seed = source, target, int(seeds[0])
        self.root, self.batch_size, self.eval_batch_size = root, int(batch_size), int(eval_batch_size)
        self.pad_to, self.channels = pad_to, channels
        self.max_train_samples, self.synthetic, self.synthetic_samples = max_train_samples, synthetic, synthetic_samples
        self.on_device, self.download, self.limit_batches = on_device, download, limit_batches
        self.source: Normalized | None = None
        self.target: Normalized | None = None
        self.test: Normalized | None = None

    def _arrays(self, name: str, train: bool):
        api = images_api()
        if self.synthetic:
            n = self.synthetic_samples if train else max(self.synthetic_samples // 2, 1)
            role = 0 if name == self.source_name and train else 1 if train else 2
            arrays = api.synthetic_images(name, n, member_seed(self.seed, SYNTHETIC_STREAM, role))
        else:
            arrays = api.load_images(name, self.root, train=train, download=self.download)
        x, y = arrays.x, arrays.y
        if train and self.max_train_samples is not None:
            keep = subset_indices(len(y), self.max_train_samples)
            x, y = x[keep], y[keep]
        info = api.INFO[name]
        return Normalized(convert(x, self.pad_to, self.channels), y, field(info, "mean"), field(info, "std"))

    def setup(self, stage: str | None = None) -> None:
        if self.target is not None:
            return
        self.source = self._arrays(self.source_name, train=True)
        self.target = self._arrays(self.target_name, train=True)
        self.test = self._arrays(self.target_name, train=False)

    def _device(self) -> torch.device:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        keep = self.on_device if self.on_device is not None else device.type == "cuda"
        return device if keep else torch.device("cpu")

    def train_dataloader(self) -> PairedBatches:
        self.setup()
        device = self._device()
        self.source.to(device), self.target.to(device)
        epoch = lambda: self.trainer.current_epoch if self.trainer is not None else 0  # noqa: E731
        return PairedBatches(self.source, self.target, self.seed, epoch, self.batch_size, self.limit_batches)

    def eval_batches(self, split: str = "test") -> PlainBatches:
        """The target task's whole ``split`` ("train" or "test") as ``(x, y)``, in order (as ``ImageDataModule``)."""
        self.setup()
        data = self.test if split == "test" else self.target
        return PlainBatches(data.to(self._device()), self.eval_batch_size)
