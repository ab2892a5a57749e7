"""The thesis's two-dimensional INNA experiments, run with ``optrepro.optim.INNA`` on analytic (sub)gradients.

Many settings or starting points run at once: the parameter is one [n, 2] tensor whose rows are independent
problems (INNA is elementwise, and the gradient of the sum of the rows' objectives is each row's own gradient);
settings with different (alpha, beta) are separate param groups.

Each function follows the toy contract of ``optrepro.train.run_toy``: ``f(run_dir, seed, **settings) -> dict``,
writing its tables as CSV into ``run_dir``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from optrepro.optim import INNA

Objective = Callable[[Tensor], Tensor]


# ---- objectives and their (sub)gradients, on [..., 2] tensors ----------------------------------------------------
def rosenbrock_ns(t: Tensor) -> Tensor:
    """TH Figure 2.1: J = 100 (t2 - |t1|)^2 + |1 - t1|, a V-shaped valley with its minimum at (1, 1)."""
    return 100 * (t[..., 1] - t[..., 0].abs()) ** 2 + (1 - t[..., 0]).abs()


def rosenbrock_ns_grad(t: Tensor) -> Tensor:
    """A selection of the Clarke subgradient (sign(0) = 0 at the kinks)."""
    r = t[..., 1] - t[..., 0].abs()
    g1 = -200 * r * torch.sign(t[..., 0]) - torch.sign(1 - t[..., 0])
    return torch.stack([g1, 200 * r], dim=-1)


def quadratic(t: Tensor) -> Tensor:
    """TH Figure 3.2: J = t1^2 + 2 t2^2 (Hessian diag(2, 4))."""
    return t[..., 0] ** 2 + 2 * t[..., 1] ** 2


def quadratic_grad(t: Tensor) -> Tensor:
    return torch.stack([2 * t[..., 0], 4 * t[..., 1]], dim=-1)


def saddle(t: Tensor) -> Tensor:
    """TH Table 3.1: J = t1^4 - 4 t1^2 + t2^2, minima (+-sqrt 2, 0), strict saddle (0, 0)."""
    return t[..., 0] ** 4 - 4 * t[..., 0] ** 2 + t[..., 1] ** 2


def saddle_grad(t: Tensor) -> Tensor:
    return torch.stack([4 * t[..., 0] ** 3 - 8 * t[..., 0], 2 * t[..., 1]], dim=-1)


# ---- the loop ---------------------------------------------------------------------------------------------------
def descend(
    rows: list[Tensor],
    grad: Objective,
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    iterations: int,
    every: int = 1,
    on_step: Callable[[torch.optim.Optimizer, int], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Full-batch iterations; ``rows`` are [n_i, 2] blocks of starting points, one parameter each.

    Returns the iterates every ``every`` steps, [steps / every + 1, sum n_i, 2], and the last iterate.
    """
    params = [torch.nn.Parameter(r.clone()) for r in rows]
    opt = make_optimizer(params)

    def now() -> Tensor:
        return torch.cat([p.detach() for p in params]).clone()

    path = [now()]
    for k in range(iterations):
        if on_step is not None:
            on_step(opt, k)
        for p in params:
            p.grad = grad(p.detach())
        opt.step()
        if (k + 1) % every == 0:
            path.append(now())
    return torch.stack(path), now()


def inna_settings(settings: list[tuple[float, float]], lr: float) -> Callable[[list], INNA]:
    """INNA with one param group, and so one (alpha, beta), per block of starting points."""

    def make(params: list[torch.nn.Parameter]) -> INNA:
        return INNA([{"params": [p], "alpha": a, "beta": b} for p, (a, b) in zip(params, settings)], lr=lr)

    return make


def _every(iterations: int, points: int = 2000) -> int:
    return max(1, iterations // points)


def _paths_frame(path: Tensor, labels: list[str], every: int, objective: Objective) -> pd.DataFrame:
    frames = []
    for i, label in enumerate(labels):
        p = path[:, i]
        frames.append(
            pd.DataFrame(
                {
                    "setting": label,
                    "iteration": torch.arange(len(p)) * every,
                    "t1": p[:, 0].numpy(),
                    "t2": p[:, 1].numpy(),
                    "J": objective(p).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _label(alpha, beta) -> str:
    return f"alpha={alpha}, beta={beta}"


# ---- TH Figure 2.1 ----------------------------------------------------------------------------------------------
def rosenbrock_f2_1(
    run_dir: Path, seed: int, settings: list[list[float]], start: list[float], lr: float, iterations: int
) -> dict[str, float]:
    """INNA on the non-smooth Rosenbrock-like valley from (-1, 1.5), constant step, one run per (alpha, beta).

    Writes ``trajectories.csv`` (setting, iteration, t1, t2, J). Returns each setting's final J.
    """
    pairs = [tuple(s) for s in settings]
    rows = [torch.tensor([start], dtype=torch.float64) for _ in pairs]
    every = _every(iterations)
    path, last = descend(rows, rosenbrock_ns_grad, inna_settings(pairs, lr), iterations, every)
    labels = [_label(a, b) for a, b in pairs]
    _paths_frame(path, labels, every, rosenbrock_ns).to_csv(Path(run_dir) / "trajectories.csv", index=False)
    finals = rosenbrock_ns(last)
    return {f"final_J/{label}": float(v) for label, v in zip(labels, finals)} | {"final_J/best": float(finals.min())}


# ---- TH Figure 3.2 ----------------------------------------------------------------------------------------------
def spirals_f3_2(
    run_dir: Path,
    seed: int,
    settings: list[list[float]],
    decaying_alpha: list[list[float]],
    start: list[float],
    lr: float,
    iterations: int,
) -> dict[str, float]:
    """INNA on J = t1^2 + 2 t2^2 from (1, 1): spirals when alpha beta < 1, none when alpha beta > 1 (TH 3.3.2).

    ``decaying_alpha`` rows (c, beta) use alpha(t) = c / t at time t = (k + 1) lr (our discretization of the
    continuous time). Writes ``trajectories.csv`` with the distance to the minimizer. Returns final J per setting.
    """
    fixed = [tuple(s) for s in settings]
    decaying = [tuple(s) for s in decaying_alpha]
    pairs = fixed + [(c / lr, b) for c, b in decaying]  # alpha(t) at k = 0
    labels = [_label(a, b) for a, b in fixed] + [f"alpha={c}/t, beta={b}" for c, b in decaying]
    rows = [torch.tensor([start], dtype=torch.float64) for _ in pairs]

    def update_alpha(opt, k: int) -> None:
        for group, (c, _) in zip(opt.param_groups[len(fixed) :], decaying):
            group["alpha"] = c / ((k + 1) * lr)

    every = _every(iterations)
    path, last = descend(rows, quadratic_grad, inna_settings(pairs, lr), iterations, every, update_alpha)
    frame = _paths_frame(path, labels, every, quadratic)
    frame["distance"] = (frame.t1**2 + frame.t2**2) ** 0.5
    frame.to_csv(Path(run_dir) / "trajectories.csv", index=False)
    return {f"final_J/{label}": float(v) for label, v in zip(labels, quadratic(last))}


# ---- TH Table 3.1 -----------------------------------------------------------------------------------------------
CRITICAL_POINTS = {"(-sqrt2, 0)": (-math.sqrt(2), 0.0), "(sqrt2, 0)": (math.sqrt(2), 0.0), "(0, 0)": (0.0, 0.0)}


def escape_iterations(path: Tensor, points: Tensor, saddle: int) -> Tensor:
    """Per start, the first iteration at which the iterate is nearer another critical point than ``points[saddle]``
    (the same rule that assigns a run to a critical point); -1 if it never is. ``path``: [iterations + 1, starts, 2].
    """
    nearest = torch.cdist(path, points.expand(path.shape[0], *points.shape)).argmin(-1)
    left = nearest != saddle
    first = left.float().argmax(0)
    return torch.where(left.any(0), first, torch.full_like(first, -1))


def saddle_t3_1(
    run_dir: Path,
    seed: int,
    starts: int,
    std: float,
    lr: float,
    iterations: int,
    inna: list[list[float]],
) -> dict[str, float]:
    """INNA and gradient descent from ``starts`` points drawn from N(0, std^2 I) near the strict saddle, and as many
    on its stable manifold (t1 = 0); each method gets its own draws. A run counts for the critical point it ends
    nearest to.

    Escape: the first iteration at which the iterate is nearer a minimizer than the saddle (|t1| > 1/sqrt 2 near
    t2 = 0); the thesis counted iterations in units of 5, so ``mean_escape/5`` is the number to put beside its
    35-37. Writes ``table.csv``.
    """
    g = torch.Generator().manual_seed(seed)
    methods: dict[str, Callable] = {
        f"INNA ({a}, {b})" + (" alpha beta < 1" if a * b < 1 else " alpha beta > 1"): (
            lambda ps, a=a, b=b: INNA(ps, lr=lr, alpha=a, beta=b)
        )
        for a, b in inna
    }
    methods["GD"] = lambda ps: torch.optim.SGD(ps, lr=lr)
    points = torch.tensor(list(CRITICAL_POINTS.values()), dtype=torch.float64)
    rows = []
    saddle = list(CRITICAL_POINTS).index("(0, 0)")
    for start_set in ("off the stable manifold", "on the stable manifold"):
        for name, make in methods.items():
            init = std * torch.randn(starts, 2, generator=g, dtype=torch.float64)
            if start_set.startswith("on"):
                init[:, 0] = 0.0  # the stable manifold of (0, 0)
            path, last = descend([init], saddle_grad, make, iterations)
            nearest = torch.cdist(last, points).argmin(1)
            escape = escape_iterations(path, points, saddle)
            escaped = escape[escape >= 0].double()
            row = {"start_set": start_set, "method": name, "runs": starts}
            for j, label in enumerate(CRITICAL_POINTS):
                row[f"share {label}"] = float((nearest == j).double().mean())
            row["mean_escape"] = float(escaped.mean()) if len(escaped) else float("nan")
            row["mean_escape/5"] = row["mean_escape"] / 5
            rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(Path(run_dir) / "table.csv", index=False)
    off_rows, on_rows = table[table.start_set.str.startswith("off")], table[table.start_set.str.startswith("on")]
    return {
        "saddle/off_manifold_share_at_saddle": float(off_rows["share (0, 0)"].max()),
        "saddle/on_manifold_share_at_saddle": float(on_rows["share (0, 0)"].min()),
        "saddle/off_manifold_share_minus_sqrt2": float(off_rows["share (-sqrt2, 0)"].mean()),
        "saddle/mean_escape_gd": float(off_rows[off_rows.method == "GD"]["mean_escape"].iloc[0]),
    }
