"""Parameterized ODE systems of GC section 3.2 (Figures 6 and 7): trajectories on a parameter grid, and a datamodule.

The authors' setup (GC App. F, not in our copy; PAPERS.md gives it):
- Lotka-Volterra: du0/dt = a u0 - b u0 u1, du1/dt = -c u1 + d b u0 u1, b = 4/3, d = 1; a on 6 even points in
  [0.5, 1] times c on 5 even points in [1, 2]; u(0) = (1, 1); 50 even time points on [0, 20].
- Lorenz: sigma on 5 even points in [9, 11] times rho on 6 even points in [25, 30], beta = 8/3; u(0) = (5, 5, 5);
  20 even time points on [0, 2].
30 instances each; 27 train and 3 test instances, split at random from the seed. Trajectories are integrated in
float64 with torchdiffeq's dopri5 at tight tolerances (all 30 instances in one batched solve), then stored as
float32. A batch is ``((mu, x0), trajectory)``: mu [B, p] the system parameters, x0 [B, d], trajectory [B, T, d].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from optrepro.extras import require
from optrepro.utils import member_seed

SPLIT_STREAM = 4
SHUFFLE_STREAM = 5
LV_B, LV_D = 4.0 / 3.0, 1.0
LORENZ_BETA = 8.0 / 3.0


def lotka_volterra_field(mu: Tensor, b: float = LV_B, d: float = LV_D):
    """dx/dt for each instance; mu [n, 2] = (a, c)."""
    a, c = mu[:, 0], mu[:, 1]

    def field(t: Tensor, u: Tensor) -> Tensor:
        return torch.stack([a * u[:, 0] - b * u[:, 0] * u[:, 1], -c * u[:, 1] + d * b * u[:, 0] * u[:, 1]], -1)

    return field


def lotka_volterra_invariant(u: Tensor, mu: Tensor, b: float = LV_B, d: float = LV_D) -> Tensor:
    """The first integral V = d b u0 - c ln u0 + b u1 - a ln u1 of the system above, for u [..., n, 2].

    Derivation: dV/dt = (d b - c / u0) du0/dt + (b - a / u1) du1/dt
    = (d b u0 - c)(a - b u1) + (b u1 - a)(d b u0 - c) = 0.
    """
    a, c = mu[:, 0], mu[:, 1]
    return d * b * u[..., 0] - c * torch.log(u[..., 0]) + b * u[..., 1] - a * torch.log(u[..., 1])


def lorenz_field(mu: Tensor, beta: float = LORENZ_BETA):
    """dx/dt for each instance; mu [n, 2] = (sigma, rho)."""
    sigma, rho = mu[:, 0], mu[:, 1]

    def field(t: Tensor, u: Tensor) -> Tensor:
        x, y, z = u.unbind(-1)
        return torch.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], -1)

    return field


@dataclass(frozen=True)
class System:
    name: str
    grid: tuple[tuple[float, float, int], tuple[float, float, int]]  # two parameters: (low, high, points)
    x0: tuple[float, ...]
    t_end: float
    n_times: int
    field: object


SYSTEMS = {
    "lotka_volterra": System(
        "lotka_volterra", ((0.5, 1.0, 6), (1.0, 2.0, 5)), (1.0, 1.0), 20.0, 50, lotka_volterra_field
    ),
    "lorenz": System("lorenz", ((9.0, 11.0, 5), (25.0, 30.0, 6)), (5.0, 5.0, 5.0), 2.0, 20, lorenz_field),
}


def parameter_grid(system: str) -> Tensor:
    """The 30 instances of a system, [30, 2] float64 (first parameter slowest)."""
    (lo1, hi1, n1), (lo2, hi2, n2) = SYSTEMS[system].grid
    p1, p2 = torch.linspace(lo1, hi1, n1, dtype=torch.float64), torch.linspace(lo2, hi2, n2, dtype=torch.float64)
    return torch.cartesian_prod(p1, p2)


def time_grid(t_end: float, n_times: int) -> Tensor:
    return torch.linspace(0.0, t_end, n_times, dtype=torch.float64)


def generate(system: str, rtol: float = 1e-10, atol: float = 1e-10) -> tuple[Tensor, Tensor, Tensor]:
    """(mu [30, 2], times [T], trajectories [30, T, d]) in float64, from the system's grid (no randomness)."""
    odeint = require("torchdiffeq", "ode", f"the {system} trajectories (task=gc_{system})").odeint
    spec = SYSTEMS[system]
    mu = parameter_grid(system)
    x0 = torch.tensor(spec.x0, dtype=torch.float64).expand(len(mu), -1).clone()
    t = time_grid(spec.t_end, spec.n_times)
    traj = odeint(spec.field(mu), x0, t, rtol=rtol, atol=atol, method="dopri5")  # [T, n, d]
    return mu, t, traj.transpose(0, 1).contiguous()


def split_instances(n: int, test_instances: int, seed: int) -> tuple[Tensor, Tensor]:
    """A random (train, test) split of instance indices, from the seed (the same split for every method)."""
    g = torch.Generator().manual_seed(member_seed(seed, SPLIT_STREAM))
    order = torch.randperm(n, generator=g)
    return order[test_instances:].sort().values, order[:test_instances].sort().values


class Trajectories(Dataset):
    def __init__(self, mu: Tensor, x0: Tensor, traj: Tensor):
        self.mu, self.x0, self.traj = mu, x0, traj

    def __len__(self) -> int:
        return len(self.mu)

    def __getitem__(self, i: int):
        return (self.mu[i], self.x0[i]), self.traj[i]


class ODEDataModule(L.LightningDataModule):
    """Train/test trajectories of one system; minibatches of ``batch_size`` trajectories, reshuffled each epoch in an
    order drawn from the seed and the trainer's epoch (so a resumed run serves what the uninterrupted one would)."""

    def __init__(
        self,
        system: str,
        seeds: list[int],
        batch_size: int = 4,
        test_instances: int = 3,
        split_seed: int | None = None,
        limit_batches: int | None = None,
        state_dim: int | None = None,
        t_end: float | None = None,
        n_times: int | None = None,
    ):
        """``state_dim``, ``t_end``, ``n_times`` are the system's, stated in the task config for the model's
        interpolations; they are checked here against the system."""
        super().__init__()
        if system not in SYSTEMS:
            raise ValueError(f"task.system={system!r} is not one of {sorted(SYSTEMS)}")
        spec = SYSTEMS[system]
        for key, given, actual in (
            ("state_dim", state_dim, len(spec.x0)),
            ("t_end", t_end, spec.t_end),
            ("n_times", n_times, spec.n_times),
        ):
            if given is not None and given != actual:
                raise ValueError(f"task.{key}={given} does not match the {system} system's {actual}")
        if len(seeds) != 1:
            raise ValueError("ODE tasks train one model per run: use ensemble.size=1 and sweep seeds")
        self.system, self.seed, self.batch_size = system, seeds[0], int(batch_size)
        self.split_seed = self.seed if split_seed is None else int(split_seed)
        self.test_instances, self.limit_batches = int(test_instances), limit_batches

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train"):
            return
        mu, t, traj = generate(self.system)
        train_idx, test_idx = split_instances(len(mu), self.test_instances, self.split_seed)
        x0 = traj[:, 0]
        self.times = t.float()
        self.train = Trajectories(mu[train_idx].float(), x0[train_idx].float(), traj[train_idx].float())
        self.test = Trajectories(mu[test_idx].float(), x0[test_idx].float(), traj[test_idx].float())

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0  # a resumed run: its own epoch
        g = torch.Generator().manual_seed(member_seed(self.seed, SHUFFLE_STREAM, epoch))
        n = len(self.train)
        if self.limit_batches is not None:
            n = min(n, self.limit_batches * self.batch_size)
        order = torch.randperm(len(self.train), generator=g)[:n].tolist()
        return DataLoader(torch.utils.data.Subset(self.train, order), batch_size=self.batch_size, shuffle=False)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train) / self.batch_size)
