"""THE BASELINE, not the framework: a hand-written training loop for N members of the HT sine MLP (1-100x6-1, ReLU,
Adam, batch 64, HT section 5.1), written the way one would write it by hand to make a GPU busy.

- the members' weights are stacked tensors ``[N, fan_in, fan_out]`` and every layer is one batched matmul
  (``torch.baddbmm``): no vmap, no modules;
- one fused Adam over the 14 stacked tensors (``fused=True``; ``foreach=True`` where a build has no fused Adam);
- data generated, held and shuffled on the device (one ``argsort`` of random keys per epoch for all members);
- no host sync inside an epoch: the epoch's losses stay on the device until its end.

It computes what the framework's sine task computes (the same model, loss, optimizer, batch size and evaluation of
the whole train and test splits at each epoch's end), but it does not share the framework's data, seeds or
initialization (same distributions, other draws), so compare its times and operation counts with the framework's,
not its numbers. ``scripts/bench_ensemble.py``, ``scripts/bench_dispatch.py`` and ``scripts/gpu_check.py`` measure the
framework against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


class HandWrittenSine:
    """``members`` independent sine regressions trained as stacked tensors on ``device``."""

    def __init__(
        self,
        members: int,
        device: torch.device | str = "cpu",
        omega: float = 137.0,
        n_samples: int = 10_000,
        train_fraction: float = 0.8,
        noise_std: float = 0.1,
        batch_size: int = 64,
        hidden: int = 100,
        depth: int = 6,
        lr: float = 1e-3,
        seed: int = 0,
    ):
        self.members, self.device, self.batch_size = members, torch.device(device), batch_size
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(members, n_samples, 1, generator=g)
        y = torch.sin(omega * x) + noise_std * torch.randn(members, n_samples, 1, generator=g)
        n_train = int(round(train_fraction * n_samples))
        self.x, self.y = x[:, :n_train].to(self.device), y[:, :n_train].to(self.device)
        self.x_test, self.y_test = x[:, n_train:].to(self.device), y[:, n_train:].to(self.device)
        widths = [1] + [hidden] * depth + [1]
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialization range, for weights and biases
            w = (torch.rand(members, fan_in, fan_out, generator=g) * 2 - 1) * bound
            b = (torch.rand(members, 1, fan_out, generator=g) * 2 - 1) * bound
            self.weights.append(w.to(self.device).requires_grad_())
            self.biases.append(b.to(self.device).requires_grad_())
        params = self.weights + self.biases
        try:
            self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:  # a build without a fused Adam for this device
            self.optimizer = torch.optim.Adam(params, lr=lr, foreach=True)

    def forward(self, x: Tensor) -> Tensor:
        """``[members, batch, 1] -> [members, batch, 1]``: one batched matmul (and a ReLU) per layer."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h

    def batches(self, limit: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of minibatches, each member in its own random order (drawn on the device)."""
        n = self.x.shape[1]
        order = torch.rand(self.members, n, device=self.device).argsort(1).unsqueeze(-1)
        count = math.ceil(n / self.batch_size) if limit is None else min(limit, math.ceil(n / self.batch_size))
        for b in range(count):
            idx = order[:, b * self.batch_size : (b + 1) * self.batch_size]
            yield torch.gather(self.x, 1, idx), torch.gather(self.y, 1, idx)

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One training step of every member: the members' MSEs summed, backward, one Adam step."""
        loss = (self.forward(x) - y).pow(2).mean((1, 2)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self, limit: int | None = None) -> Tensor:
        """The epoch's summed minibatch losses, left on the device (no host sync)."""
        total = torch.zeros((), device=self.device)
        for x, y in self.batches(limit):
            total += self.step(x, y)
        return total

    @torch.no_grad()
    def evaluate(self) -> dict[str, Tensor]:
        """Each member's MSE on the whole train and test splits, ``[members]``, on the device."""
        return {
            "train/loss": (self.forward(self.x) - self.y).pow(2).mean((1, 2)),
            "test/loss": (self.forward(self.x_test) - self.y_test).pow(2).mean((1, 2)),
        }

    def epoch(self, limit: int | None = None) -> dict[str, Tensor]:
        """Train one epoch, evaluate both splits, then one host sync (what the framework logs per epoch)."""
        objective = self.train_epoch(limit)
        metrics = self.evaluate()
        return {k: v.cpu() for k, v in {**metrics, "train/objective": objective}.items()}
