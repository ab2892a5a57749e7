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

``HandWrittenSweep`` is the same loop for a whole HT sine sweep (methods x omegas x seeds, every member in one stacked
model, the source pre-training once per seed, each member at its own lambda), with ``MemberAdam`` (Adam with one step
count per member) in place of the fused Adam; ``scripts/bench_sweep.py`` measures framework sweeps against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


def stacked_init(
    members: int, hidden: int, depth: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> tuple[list[Tensor], list[Tensor]]:
    """Weights ``[members, fan_in, fan_out]`` and biases ``[members, 1, fan_out]`` of the 1-hidden x depth-1 MLP,
    drawn on the CPU from ``generator`` in nn.Linear's default range, moved to ``device``, requiring gradients."""
    widths = [1] + [hidden] * depth + [1]
    weights, biases = [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = 1 / math.sqrt(fan_in)  # nn.Linear's default initialization range, for weights and biases
        w = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
        b = (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound
        weights.append(w.to(device).requires_grad_())
        biases.append(b.to(device).requires_grad_())
    return weights, biases


def stacked_forward(weights: list[Tensor], biases: list[Tensor], x: Tensor) -> Tensor:
    """``[members, batch, 1] -> [members, batch, 1]``: one batched matmul (and a ReLU) per layer."""
    h = x
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = torch.baddbmm(b, h, w)
        if i < last:
            h = torch.relu(h)
    return h


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
        self.weights, self.biases = stacked_init(members, hidden, depth, g, self.device)
        params = self.weights + self.biases
        try:
            self.optimizer = torch.optim.Adam(params, lr=lr, fused=True)
        except RuntimeError:  # a build without a fused Adam for this device
            self.optimizer = torch.optim.Adam(params, lr=lr, foreach=True)

    def forward(self, x: Tensor) -> Tensor:
        """``[members, batch, 1] -> [members, batch, 1]``: one batched matmul (and a ReLU) per layer."""
        return stacked_forward(self.weights, self.biases, x)

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


RANDOM_INIT, WARM_START, HOMOTOPY = "random_init", "warm_start", "data_homotopy"
#: the methods that start their target phase from the source pre-training (HT section 5)
FROM_SOURCE = (WARM_START, HOMOTOPY)


def staircase_lambda(epoch: int, gamma: int, k: int) -> float:
    """HT Algorithm 1 written out: target epoch ``epoch`` (from 0) trains at lambda = i / gamma in step
    i = epoch // k + 1 (i = 1..gamma), and at 1 from epoch gamma * k on."""
    return min(epoch // k + 1, gamma) / gamma


def method_lambda(method: str, epoch: int, gamma: int, k: int) -> float:
    """lambda at target epoch ``epoch``: the staircase for the homotopy, 1 from the start for both baselines."""
    return staircase_lambda(epoch, gamma, k) if method == HOMOTOPY else 1.0


class MemberAdam:
    """torch.optim.Adam's update (no weight decay, no amsgrad) on stacked tensors ``[members, ...]`` with one step
    count per member, so that members that carry the source pre-training's moments and step count (the framework's
    ``homotopy.optimizer_at_switch=keep``) and members that start afresh share the same tensors. A few foreach
    operations per step; the bias corrections are ``[members]`` factors broadcast over each tensor."""

    def __init__(self, params: list[Tensor], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        device = self.params[0].device
        self.steps = torch.zeros(self.params[0].shape[0], dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._denom = [torch.empty_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        bc1 = 1 - self.beta1**self.steps
        bc2_sqrt = (1 - self.beta2**self.steps).sqrt()
        dtype = self.params[0].dtype

        def shaped(t: Tensor) -> list[Tensor]:  # [members] -> one [members, 1, ...] view per tensor
            t = t.to(dtype)
            return [t.view(-1, *[1] * (p.dim() - 1)) for p in self.params]

        grads = [p.grad for p in self.params]
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - self.beta2)
        # p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), the per-member step size folded into the denominator,
        # which lives in a buffer kept from step to step (no allocation per step)
        denom = self._denom
        torch._foreach_copy_(denom, self.exp_avg_sq)
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(denom, shaped(bc2_sqrt))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_div_(denom, shaped(self.lr / bc1))
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom, value=-1.0)

    @torch.no_grad()
    def take(self, source: MemberAdam, rows: Tensor, from_rows: Tensor) -> None:
        """Members ``rows`` become copies of ``source``'s members ``from_rows``: parameters, moments, step counts."""
        for mine, theirs in zip(
            [self.params, self.exp_avg, self.exp_avg_sq], [source.params, source.exp_avg, source.exp_avg_sq]
        ):
            for a, b in zip(mine, theirs):
                a[rows] = b[from_rows]
        self.steps[rows] = source.steps[from_rows]


class HandWrittenSweep:
    """A whole HT sine sweep (every member of every job: ``methods x omegas x seeds``) in one process, by hand.

    The source task (omega = ``source_omega``) does not depend on the target omega, so it is pre-trained once per
    seed, as one stacked ``seeds``-member model, for ``source_epochs`` epochs (evaluated at each epoch's end on every
    omega's target splits, the rows the framework writes at negative epochs for warm start and the homotopy). Then
    one stacked model of every member trains ``target_epochs`` epochs: warm-start and homotopy members start from
    their seed's source weights and Adam state, random-init members from a fresh initialization; each member trains
    on ``(1 - lambda) y_source + lambda y_target`` at its own lambda (``method_lambda``), and both splits are
    evaluated on the target at each epoch's end (one host sync per epoch). Rows stay in memory until ``write_csv``.
    Same model, loss, optimizer, batch size, data distribution and schedules as the framework's jobs; not the same
    random draws.
    """

    def __init__(
        self,
        methods: list[str],
        omegas: list[float],
        seeds: int,
        source_epochs: int,
        target_epochs: int,
        gamma: int,
        k: int,
        n_samples: int = 2000,
        train_fraction: float = 0.8,
        noise_std: float = 0.1,
        source_omega: float = 1.0,
        batch_size: int = 64,
        hidden: int = 100,
        depth: int = 6,
        lr: float = 1e-3,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        unknown = set(methods) - {RANDOM_INIT, *FROM_SOURCE}
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}")
        self.methods, self.omegas, self.seeds = list(methods), [float(o) for o in omegas], int(seeds)
        self.source_epochs, self.target_epochs, self.gamma, self.k = source_epochs, target_epochs, gamma, k
        self.batch_size, self.hidden, self.depth, self.lr = batch_size, hidden, depth, lr
        self.device = torch.device(device)
        self.members = [(m, o, s) for m in self.methods for o in self.omegas for s in range(self.seeds)]
        self.generator = torch.Generator().manual_seed(seed)
        g = self.generator
        x = torch.rand(self.seeds, n_samples, 1, generator=g)
        y_source = torch.sin(source_omega * x) + noise_std * torch.randn(x.shape, generator=g)
        y_target = torch.stack([torch.sin(o * x) + noise_std * torch.randn(x.shape, generator=g) for o in self.omegas])
        n = int(round(train_fraction * n_samples))
        to = lambda t: t.to(self.device)  # noqa: E731
        # per seed (source phase): [seeds, n, 1]; the targets [omegas, seeds, n, 1]
        self.seed_x, self.seed_x_test, self.seed_y_source = to(x[:, :n]), to(x[:, n:]), to(y_source[:, :n])
        self.seed_y_target, self.seed_y_target_test = to(y_target[:, :, :n]), to(y_target[:, :, n:])
        # per member (target phase): [members, n, 1]
        self.seed_of = torch.tensor([s for _, _, s in self.members])
        omega_of = torch.tensor([self.omegas.index(o) for _, o, _ in self.members])
        self.x, self.x_test = to(x[self.seed_of, :n]), to(x[self.seed_of, n:])
        self.y_source = to(y_source[self.seed_of, :n])
        self.y_target, self.y_target_test = (
            to(y_target[omega_of, self.seed_of, :n]),
            to(y_target[omega_of, self.seed_of, n:]),
        )
        self.rows: list[tuple[int, list[float], list[tuple], Tensor]] = []  # (epoch, lambdas, members, [3, members])

    def _train_epoch(self, weights, biases, adam: MemberAdam, x: Tensor, y: Tensor) -> Tensor:
        """One epoch, each member in its own random order; returns each member's mean minibatch loss (on device)."""
        members, n = x.shape[:2]
        order = torch.rand(members, n, device=self.device).argsort(1).unsqueeze(-1)
        batches = math.ceil(n / self.batch_size)
        total = torch.zeros(members, device=self.device)
        for b in range(batches):
            idx = order[:, b * self.batch_size : (b + 1) * self.batch_size]
            losses = (stacked_forward(weights, biases, torch.gather(x, 1, idx)) - torch.gather(y, 1, idx)).pow(2)
            losses = losses.mean((1, 2))
            adam.zero_grad()
            losses.sum().backward()
            adam.step()
            total += losses.detach()
        return total / batches

    @torch.no_grad()
    def _mse(self, weights, biases, x: Tensor, y: Tensor) -> Tensor:
        """[members]; ``y`` may carry leading dimensions (every omega's target): [..., members]."""
        return (stacked_forward(weights, biases, x) - y).pow(2).mean((-2, -1))

    def run(self) -> int:
        """Source pre-training, then the target phase; returns the number of rows recorded."""
        sourced = [i for i, (m, _, _) in enumerate(self.members) if m in FROM_SOURCE]
        src_w, src_b = stacked_init(self.seeds, self.hidden, self.depth, self.generator, self.device)
        src_adam = MemberAdam(src_w + src_b, self.lr)
        source_members = [
            (m, o, s) for m in self.methods if m in FROM_SOURCE for o in self.omegas for s in range(self.seeds)
        ]
        for e in range(self.source_epochs if sourced else 0):
            objective = self._train_epoch(src_w, src_b, src_adam, self.seed_x, self.seed_y_source)
            train = self._mse(src_w, src_b, self.seed_x, self.seed_y_target)  # [omegas, seeds]
            test = self._mse(src_w, src_b, self.seed_x_test, self.seed_y_target_test)
            per_omega = torch.stack([train, objective.expand_as(train), test])  # [3, omegas, seeds]
            values = per_omega.unsqueeze(1).expand(3, len(self.methods), *train.shape)  # the same for both methods
            picked = values[:, [self.methods.index(m) for m in self.methods if m in FROM_SOURCE]].reshape(3, -1)
            self.rows.append((e - self.source_epochs, [0.0] * len(source_members), source_members, picked.cpu()))
        weights, biases = stacked_init(len(self.members), self.hidden, self.depth, self.generator, self.device)
        adam = MemberAdam(weights + biases, self.lr)
        if sourced and self.source_epochs:
            rows = torch.tensor(sourced, device=self.device)
            adam.take(src_adam, rows, self.seed_of.to(self.device)[rows])
        for e in range(self.target_epochs):
            lams = [method_lambda(m, e, self.gamma, self.k) for m, _, _ in self.members]
            y = self.y_target
            if min(lams) < 1.0:
                lam = torch.tensor(lams, device=self.device).view(-1, 1, 1)
                y = (1.0 - lam) * self.y_source + lam * self.y_target  # HT eq. 14
            objective = self._train_epoch(weights, biases, adam, self.x, y)
            train = self._mse(weights, biases, self.x, self.y_target)
            test = self._mse(weights, biases, self.x_test, self.y_target_test)
            self.rows.append((e, lams, self.members, torch.stack([train, objective, test]).cpu()))
        return sum(len(members) for _, _, members, _ in self.rows)

    def write_csv(self, path) -> None:
        """One row per member and epoch: method, omega, seed, epoch, homotopy/lambda, train/loss, train/objective,
        test/loss."""
        import csv

        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(
                ["method", "omega", "seed", "epoch", "homotopy/lambda", "train/loss", "train/objective", "test/loss"]
            )
            for epoch, lams, members, values in self.rows:
                for (m, o, s), lam, v in zip(members, lams, values.T.tolist()):
                    out.writerow([m, o, s, epoch, lam, *v])
