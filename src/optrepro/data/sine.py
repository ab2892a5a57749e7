"""The sine-regression tasks of HT section 5.1 (eq. 19), and a datamodule that serves one or many seeds.

x ~ U(0, 1), y = sin(omega x) + eps. Source (omega = 1) and target share the same x, as the exact regression
homotopy (HT eq. 14) requires. Everything is generated from the seed alone, so a run and an ensemble member with
the same seed see the same data in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor

from optrepro.utils import member_seed

# Stream ids passed to member_seed, so that data, initialization and shuffling draw independent numbers.
DATA_STREAM = 1
SHUFFLE_STREAM = 2


@dataclass(frozen=True)
class SineSplit:
    """One split of a sine task: inputs and both tasks' targets on the same inputs, each of shape [n, 1]."""

    x: Tensor
    y_source: Tensor
    y_target: Tensor


def sine_task(
    seed: int, omega: float, source_omega: float, n_samples: int, train_fraction: float, noise_std: float
) -> tuple[SineSplit, SineSplit]:
    """Generate (train, test) for one seed: x ~ U(0, 1), y = sin(omega x) + N(0, noise_std^2) (HT eq. 19).

    The source and target targets get independent noise draws on the same inputs.
    """
    g = torch.Generator().manual_seed(member_seed(seed, DATA_STREAM))
    x = torch.rand(n_samples, 1, generator=g)
    y_source = torch.sin(source_omega * x) + noise_std * torch.randn(n_samples, 1, generator=g)
    y_target = torch.sin(omega * x) + noise_std * torch.randn(n_samples, 1, generator=g)
    n_train = int(round(train_fraction * n_samples))
    if not 0 < n_train < n_samples:
        raise ValueError(f"task.train_fraction={train_fraction} leaves an empty train or test split")
    split = (slice(0, n_train), slice(n_train, None))
    return tuple(SineSplit(x[s], y_source[s], y_target[s]) for s in split)


def epoch_permutation(seed: int, epoch: int, n: int) -> Tensor:
    """The order in which a seed visits n training samples in an epoch; a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(member_seed(seed, SHUFFLE_STREAM, epoch)))


class MemberBatches:
    """Minibatches for several members at once: each yield is (x, y_source, y_target), each [members, batch, 1].

    Member i walks its own data in its own order (``epoch_permutation`` of its seed), so stacking members
    changes nothing for any one of them. The data may live on any device; indexing happens there.
    ``shifts``: member i is at its own epoch ``epoch - shifts[i]`` (a packed ensemble's members that start later;
    a member not started yet gets epoch 0's order, which it does not train on).
    """

    def __init__(
        self,
        split: SineSplit,
        seeds: list[int],
        batch_size: int,
        epoch: int,
        limit: int | None,
        shifts: list[int] | None = None,
    ):
        self.split, self.seeds, self.batch_size, self.epoch = split, seeds, batch_size, epoch
        self.epochs = [max(epoch - s, 0) for s in shifts] if shifts else [epoch] * len(seeds)
        n = split.x.shape[1]
        self.n_batches = n // batch_size + (n % batch_size > 0)
        if limit is not None:
            self.n_batches = min(self.n_batches, limit)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        n = self.split.x.shape[1]
        order = torch.stack([epoch_permutation(s, e, n) for s, e in zip(self.seeds, self.epochs)])
        order = order.to(self.split.x.device)
        for b in range(self.n_batches):
            idx = order[:, b * self.batch_size : (b + 1) * self.batch_size].unsqueeze(-1)
            yield tuple(torch.gather(t, 1, idx) for t in (self.split.x, self.split.y_source, self.split.y_target))


class SineDataModule(L.LightningDataModule):
    """Serves the sine task of every seed in ``seeds`` stacked along a leading member dimension.

    ``omega``: the target's frequency, one for all members or one per member (a packed sweep over omegas).
    ``epoch_shifts``: per member, how many epochs later than the trainer's it starts (``MemberBatches``).
    """

    def __init__(
        self,
        seeds: list[int],
        omega: float | list[float],
        source_omega: float = 1.0,
        n_samples: int = 10_000,
        train_fraction: float = 0.8,
        noise_std: float = 0.1,
        batch_size: int = 64,
        limit_batches: int | None = None,
        epoch_shifts: list[int] | None = None,
    ):
        super().__init__()
        self.seeds = list(seeds)
        omegas = [float(w) for w in omega] if isinstance(omega, list | tuple) else [float(omega)] * len(self.seeds)
        if len(omegas) != len(self.seeds):
            raise ValueError(f"{len(omegas)} omegas for {len(self.seeds)} members: give one, or one per member")
        if epoch_shifts is not None and len(epoch_shifts) != len(self.seeds):
            raise ValueError(f"{len(epoch_shifts)} epoch shifts for {len(self.seeds)} members")
        self.omega, self.omegas, self.source_omega = omega, omegas, source_omega
        self.epoch_shifts = list(epoch_shifts) if epoch_shifts is not None else None
        self.n_samples, self.train_fraction, self.noise_std = n_samples, train_fraction, noise_std
        self.batch_size, self.limit_batches = batch_size, limit_batches
        self.train: SineSplit | None = None
        self.test: SineSplit | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        splits = [
            sine_task(s, w, self.source_omega, self.n_samples, self.train_fraction, self.noise_std)
            for s, w in zip(self.seeds, self.omegas)
        ]
        self.train, self.test = (
            SineSplit(*(torch.stack([getattr(sp[i], f) for sp in splits]) for f in ("x", "y_source", "y_target")))
            for i in (0, 1)
        )

    def to(self, device: torch.device) -> None:
        """Keep both splits on ``device`` so batches are drawn there (no host-to-device copy per step)."""
        move = lambda sp: SineSplit(sp.x.to(device), sp.y_source.to(device), sp.y_target.to(device))  # noqa: E731
        self.train, self.test = move(self.train), move(self.test)

    def train_dataloader(self) -> MemberBatches:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if self.trainer is not None:
            self.to(self.trainer.strategy.root_device)
        return MemberBatches(self.train, self.seeds, self.batch_size, epoch, self.limit_batches, self.epoch_shifts)
