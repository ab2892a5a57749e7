"""GC Figure 4: Algorithm 2 (lambda as an optimization variable) on the 2-D saddle of GC eq. 9.

f(theta) = a (d1^2 + d2^2) - exp(-d1^2 / 2) - exp(-d2^2 / 2), d_i = ||theta - hat_theta_i||, with
hat_theta_1 = (2, 2), hat_theta_2 = (-2, -2): two minima near hat_theta_i and a saddle at the origin.

Its Gaussian smoothing has a closed form (derived here; the paper does not give it). With eps ~ N(0, lambda I) in
m = 2 dimensions, E ||theta + eps - h||^2 = ||theta - h||^2 + m lambda, and per coordinate
E exp(-(x + e)^2 / 2) = exp(-x^2 / (2 (1 + lambda))) / sqrt(1 + lambda), so

    g(theta, lambda) = a (d1^2 + d2^2 + 2 m lambda) - sum_i exp(-d_i^2 / (2 (1 + lambda))) / (1 + lambda)^(m/2).

The loop uses it exactly (autograd of g gives dg/dtheta and dg/dlambda; no Monte Carlo noise), so the figure shows
the behaviour of Algorithm 2 itself: theta and lambda both take plain gradient-descent steps,
lambda <- max(0, lambda - b (dg/dlambda + beta m)) (GC Algorithm 2 with the regularization of eq. 12), lambda held
at lambda_0 during the warm-up. Follows the toy contract of ``optrepro.train.run_toy``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

M = 2
CENTRES = ((2.0, 2.0), (-2.0, -2.0))


def _sq_distances(t: Tensor) -> tuple[Tensor, Tensor]:
    c = torch.tensor(CENTRES, dtype=t.dtype, device=t.device)
    return (t - c[0]).pow(2).sum(-1), (t - c[1]).pow(2).sum(-1)


def saddle(t: Tensor, a: float) -> Tensor:
    """GC eq. 9 on [..., 2] tensors."""
    d1, d2 = _sq_distances(t)
    return a * (d1 + d2) - torch.exp(-d1 / 2) - torch.exp(-d2 / 2)


def smoothed_saddle(t: Tensor, lam: Tensor | float, a: float) -> Tensor:
    """g(theta, lambda) = E f(theta + eps), eps ~ N(0, lambda I): the closed form above (GC eq. 3 for eq. 9)."""
    lam = torch.as_tensor(lam, dtype=t.dtype)
    d1, d2 = _sq_distances(t)
    scale = 1 + lam
    return a * (d1 + d2 + 2 * M * lam) - (torch.exp(-d1 / (2 * scale)) + torch.exp(-d2 / (2 * scale))) / scale ** (
        M / 2
    )


def authors_smoothed(t: Tensor, lam: Tensor | float, a: float) -> Tensor:
    """The Gaussian smoothing of the function whose gradient the authors' notebook gives theta:
    F = a (d1^2 + d2^2) - (exp(-d1^2) + exp(-d2^2)) / 2, since d/dtheta exp(-d^2) / 2 = -(theta - h) exp(-d^2) is
    what it uses in place of eq. 9's -(theta - h) exp(-d^2 / 2). Per coordinate E exp(-(x + e)^2) =
    exp(-x^2 / (1 + 2 lambda)) / sqrt(1 + 2 lambda), so G = a (d1^2 + d2^2 + 2 m lambda)
    - sum_i exp(-d_i^2 / (1 + 2 lambda)) / (2 (1 + 2 lambda)^(m/2))."""
    lam = torch.as_tensor(lam, dtype=t.dtype)
    d1, d2 = _sq_distances(t)
    scale = 1 + 2 * lam
    return a * (d1 + d2 + 2 * M * lam) - (torch.exp(-d1 / scale) + torch.exp(-d2 / scale)) / (2 * scale ** (M / 2))


#: what theta descends: ``exact`` eq. 9's smoothing; ``authors`` the smoothing of the function whose gradient the
#: authors' notebook computes (github.com/ailersic/pytorch-gcopt, experiments/demo/gc_testfunc.ipynb; docs/gc.md)
THETA_GRADIENTS = ("exact", "authors")


def continuation_path(
    a: float,
    start: list[float],
    lambda0: float,
    lr: float,
    lambda_lr: float,
    warmup: int,
    iterations: int,
    beta: float = 0.0,
    every: int = 1,
    theta_gradient: str = "exact",
) -> pd.DataFrame:
    """GC Algorithm 2 on eq. 9 with exact gradients of g; rows every ``every`` iterations (iteration, t1, t2,
    lambda, f, g). With ``theta_gradient="authors"`` theta descends ``authors_smoothed`` instead, while lambda
    still follows dg/dlambda of eq. 9 (the notebook estimates it from values of the true f)."""
    if theta_gradient not in THETA_GRADIENTS:
        raise ValueError(f"task.theta_gradient={theta_gradient!r} is not one of {THETA_GRADIENTS}")
    theta = torch.tensor(start, dtype=torch.float64)
    lam = torch.tensor(float(lambda0), dtype=torch.float64)
    rows = []
    for k in range(iterations + 1):
        t = theta.clone().requires_grad_(True)
        lv = lam.clone().requires_grad_(True)
        g = smoothed_saddle(t, lv, a)
        grad_t, grad_l = torch.autograd.grad(g, (t, lv))
        if theta_gradient == "authors":
            (grad_t,) = torch.autograd.grad(authors_smoothed(t, lam, a), (t,))
        if k % every == 0 or k == iterations:
            rows.append((k, float(theta[0]), float(theta[1]), float(lam), float(saddle(theta, a)), float(g.detach())))
        if k == iterations:
            break
        theta = theta - lr * grad_t
        if k >= warmup:
            lam = torch.clamp(lam - lambda_lr * (grad_l + beta * M), min=0.0)
    return pd.DataFrame(rows, columns=["iteration", "t1", "t2", "lambda", "f", "g"])


def saddle_f4(
    run_dir: Path,
    seed: int,
    a_values: list[float],
    betas: list[float],
    start: list[float],
    lambda0: float,
    lr: float,
    lambda_lr: float,
    warmup: int,
    iterations: int,
    theta_gradient: str = "exact",
) -> dict[str, float]:
    """One path per (a, beta); writes ``paths.csv`` and returns each path's final lambda and distance to the
    nearest minimum of f. Deterministic (exact gradients): ``seed`` is unused."""
    every = max(1, iterations // 2000)
    frames, metrics = [], {}
    minima = torch.tensor(CENTRES, dtype=torch.float64)
    for a in a_values:
        for beta in betas:
            path = continuation_path(a, start, lambda0, lr, lambda_lr, warmup, iterations, beta, every, theta_gradient)
            path.insert(0, "beta", beta)
            path.insert(0, "a", a)
            frames.append(path)
            last = torch.tensor(path[["t1", "t2"]].iloc[-1].to_numpy())
            key = f"a={a},beta={beta}"
            metrics[f"final_lambda/{key}"] = float(path["lambda"].iloc[-1])
            metrics[f"final_norm/{key}"] = float(last.norm())
            metrics[f"final_f/{key}"] = float(path["f"].iloc[-1])
            # the minima of f sit near hat_theta_i (slightly pulled in by the quadratic term): nearest centre
            metrics[f"distance_to_centre/{key}"] = float(torch.cdist(last[None], minima).min())
    pd.concat(frames, ignore_index=True).to_csv(Path(run_dir) / "paths.csv", index=False)
    return metrics
