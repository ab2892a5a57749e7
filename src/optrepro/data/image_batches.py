"""Minibatches of images as tensor operations, wherever the uint8 data lives (CPU or GPU): random crop with zero
padding and horizontal flip (drawn per epoch from the seed), padding, normalization, channel repeat, and minibatches
served several times in a row (TH Figure 4.5). Used by ``optrepro.data.images.ImageDataModule``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.utils import member_seed

if TYPE_CHECKING:
    from optrepro.data.images import ImageArrays

AUGMENT_STREAM = 4  # member_seed streams: 1 data, 2 shuffling, 3 initialization (ensemble.members)


@dataclass(frozen=True)
class Augmentation:
    """Per-sample random crop offsets (``dy``, ``dx`` in [0, 2 pad]) and horizontal flips of one epoch."""

    dy: Tensor
    dx: Tensor
    flip: Tensor
    pad: int

    def to(self, device: torch.device) -> Augmentation:
        return Augmentation(self.dy.to(device), self.dx.to(device), self.flip.to(device), self.pad)

    def __getitem__(self, sl: slice) -> Augmentation:
        return Augmentation(self.dy[sl], self.dx[sl], self.flip[sl], self.pad)


def draw_augmentation(seed: int, epoch: int, n: int, pad: int = 4) -> Augmentation:
    """The crops and flips of the ``n`` samples served in ``epoch``; a pure function of (seed, epoch), drawn on the
    CPU so that the CPU and device paths see the same numbers."""
    g = torch.Generator().manual_seed(member_seed(seed, AUGMENT_STREAM, epoch))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    return Augmentation(dy, dx, torch.rand(n, generator=g) < 0.5, pad)


def crop_and_flip(x: Tensor, aug: Augmentation) -> Tensor:
    """Random crop with zero padding ``aug.pad`` then horizontal flip, on a [B, C, H, W] batch of any dtype.

    Sample i is the H x W window at (dy_i, dx_i) of the padded image (dy = dx = pad is the image itself),
    mirrored left-right where ``flip_i``. The windows are a strided view of the padded batch, so one indexing
    copy makes the crops (about 1.5x faster than two gathers on a CPU).
    """
    b, c, h, w = x.shape
    p = aug.pad
    padded = F.pad(x, (p, p, p, p))
    sb, sc, sh, sw = padded.stride()
    # windows[i, dy, dx] is the crop of sample i at offset (dy, dx)
    windows = padded.as_strided((b, 2 * p + 1, 2 * p + 1, c, h, w), (sb, sh, sw, sc, sh, sw))
    out = windows[torch.arange(b, device=x.device), aug.dy, aug.dx]
    return torch.where(aug.flip[:, None, None, None], out.flip(3), out)


def to_float(x: Tensor, mean: Tensor | None, std: Tensor | None, pad_to: int | None, channels: int) -> Tensor:
    """uint8 [B, C, H, W] -> float32: zero-pad to ``pad_to`` (centred), scale to [0, 1], normalize per channel
    ((x - mean) / std, when given), repeat a single channel to ``channels``."""
    if pad_to is not None and pad_to > x.shape[-1]:
        extra_h, extra_w = pad_to - x.shape[-2], pad_to - x.shape[-1]
        x = F.pad(x, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2))
    out = x.float().div_(255.0)
    if mean is not None:
        out = (out - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    if channels != out.shape[1]:
        out = out.repeat(1, channels // out.shape[1], 1, 1)
    return out


class ImageBatches:
    """Minibatches of one epoch: ``order`` picks the samples, each batch is transformed where the data lives, and
    served ``reuse`` times in a row; at most ``limit`` batches (counting repeats) per epoch."""

    def __init__(self, data: ImageArrays, order: Tensor, batch_size: int, transform, aug=None, reuse=1, limit=None):
        self.data, self.order, self.batch_size = data, order, batch_size
        self.transform, self.aug, self.reuse = transform, aug, reuse
        n_batches = (len(order) + batch_size - 1) // batch_size
        self.n_steps = n_batches * reuse if limit is None else min(n_batches * reuse, limit)

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self):
        device = self.data.x.device
        order = self.order.to(device)
        aug = self.aug.to(device) if self.aug is not None else None  # one copy per epoch, not per batch
        served = 0
        for start in range(0, len(order), self.batch_size):
            sl = slice(start, start + self.batch_size)
            idx = order[sl]
            xb = self.data.x[idx]
            if aug is not None:
                xb = crop_and_flip(xb, aug[sl])
            batch = (self.transform(xb), self.data.y[idx])
            for _ in range(self.reuse):
                if served == self.n_steps:
                    return
                served += 1
                yield batch
