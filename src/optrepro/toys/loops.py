"""Plain vectorized optimization loops on tensors for the thesis's toy problems (no torch.optim, no autograd).

Every loop runs many independent problems at once: rows of a ``[n, d]`` tensor (starting points, or one row per
hyper-parameter value of a grid), each with its own hyper-parameters broadcast as ``[n, 1]`` tensors. All inner
products and step sizes are per row, so row i is exactly the run it would be alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Grad = Callable[[Tensor], Tensor]
Value = Callable[[Tensor], Tensor]


def _col(x, like: Tensor) -> Tensor:
    """A float or [n] tensor as an [n, 1] column broadcastable against ``like`` [n, d]."""
    return torch.as_tensor(x, dtype=like.dtype).reshape(-1, 1).expand(like.shape[0], 1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


# ---- INNA and gradient descent on 2-D problems (TH chapters 2-3) --------------------------------------------------


def inna_psi0(theta0: Tensor, grad0: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) grad J(theta_0): the first INNA step is then exactly a
    gradient step theta_0 - gamma grad J(theta_0) (substitute into TH eq. 2.13)."""
    return (1 - alpha * beta) * theta0 - (beta**2 - beta) * grad0


def inna_step(theta: Tensor, psi: Tensor, g: Tensor, lr: float, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """One step of INNA, TH eq. 2.13 (full batch, so v_k = grad J(theta_k))."""
    drift = (1 / beta - alpha) * theta - psi / beta
    return theta + lr * (drift - beta * g), psi + lr * drift


def inna_path(
    grad: Grad,
    theta0: Tensor,
    lr: float,
    alpha: Tensor | float | Callable[[int], Tensor | float],
    beta: Tensor | float,
    iterations: int,
    every: int = 1,
) -> Tensor:
    """INNA (TH eq. 2.13) from every row of ``theta0`` [n, d] with constant step ``lr``.

    ``alpha`` may be a function of the iteration k (time-varying viscous damping, TH section 3.3.2.3); psi_0 uses
    alpha at k = 0. Returns the iterates at k = 0, every, 2 every, ...: [iterations // every + 1, n, d].
    """
    alpha_at = alpha if callable(alpha) else (lambda k: alpha)
    beta = _col(beta, theta0)
    theta = theta0.clone()
    g = grad(theta)
    psi = inna_psi0(theta, g, _col(alpha_at(0), theta), beta)
    path = [theta]
    for k in range(iterations):
        theta, psi = inna_step(theta, psi, g, lr, _col(alpha_at(k), theta), beta)
        g = grad(theta)
        if (k + 1) % every == 0:
            path.append(theta)
    return torch.stack(path)


def gd_path(grad: Grad, theta0: Tensor, lr: float, iterations: int, every: int = 1) -> Tensor:
    """Gradient descent theta_{k+1} = theta_k - lr grad J(theta_k); same output layout as ``inna_path``."""
    theta = theta0.clone()
    path = [theta]
    for k in range(iterations):
        theta = theta - lr * grad(theta)
        if (k + 1) % every == 0:
            path.append(theta)
    return torch.stack(path)


# ---- deterministic step-size tuning (TH section 4.3.1, Figure 4.2) ------------------------------------------------


def algorithm2(
    value: Value, grad: Grad, theta0: Tensor, alpha: Tensor, nu: Tensor, iterations: int, absolute: bool = False
) -> Tensor:
    """TH Algorithm 2: theta_1 = theta_0 - alpha grad J(theta_0), then theta_{k+1} = theta_k - alpha gamma_k
    grad J(theta_k) with gamma_k = ||d theta||^2 / <d g, d theta> if positive, else nu (eq. 4.8).

    ``absolute=True`` is the comparison of Figure 4.2, Barzilai-Borwein with absolute values
    gamma_k = ||d theta||^2 / |<d g, d theta>| and the same scaling factor alpha (the thesis's footnote); ``nu`` is
    then used only if the product is exactly 0. Returns J(theta_k) for k = 0..iterations: [iterations + 1, n].
    """
    alpha, nu = _col(alpha, theta0), _col(nu, theta0)
    prev, g_prev = theta0, grad(theta0)
    theta = theta0 - alpha * g_prev
    values = [value(prev), value(theta)]
    for _ in range(1, iterations):
        g = grad(theta)
        d_theta, d_g = theta - prev, g - g_prev
        curv = _dot(d_g, d_theta)
        if absolute:
            curv = curv.abs()
        gamma = torch.where(curv > 0, _dot(d_theta, d_theta) / curv, nu)
        prev, g_prev = theta, g
        theta = theta - alpha * gamma * g
        values.append(value(theta))
    return torch.stack(values)[: iterations + 1]


def armijo_gd(
    value: Value,
    grad: Grad,
    theta0: Tensor,
    initial_step: Tensor,
    iterations: int,
    shrink: float = 0.5,
    c: float = 1e-4,
    max_trials: int = 60,
) -> Tensor:
    """Gradient descent with Armijo's backtracking line search: at each iteration the step starts at
    ``initial_step`` and is multiplied by ``shrink`` until J(theta - t g) <= J(theta) - c t ||g||^2 (at most
    ``max_trials`` times; the last trial is then taken). Rows that have accepted stop backtracking.
    Returns J(theta_k) for k = 0..iterations: [iterations + 1, n]."""
    theta = theta0.clone()
    j = value(theta)
    values = [j]
    t0 = torch.as_tensor(initial_step, dtype=theta.dtype).reshape(-1).expand(theta.shape[0]).clone()
    for _ in range(iterations):
        g = grad(theta)
        gg = (g * g).sum(-1)
        t = t0.clone()
        pending = torch.ones_like(j, dtype=torch.bool)
        new_j = j.clone()
        for trial in range(max_trials):
            idx = pending.nonzero().squeeze(-1)
            trial_j = value(theta[idx] - t[idx, None] * g[idx])
            ok = trial_j <= j[idx] - c * t[idx] * gg[idx]
            if trial == max_trials - 1:
                ok = torch.ones_like(ok)
            new_j[idx[ok]] = trial_j[ok]
            pending[idx[ok]] = False
            t[idx[~ok]] *= shrink
            if not pending.any():
                break
        theta = theta - t[:, None] * g
        j = new_j
        values.append(j)
    return torch.stack(values)


# ---- minibatch heuristics (TH section 4.3.3, Figure 4.3, Algorithms 4-6) ------------------------------------------


def decay(alpha: Tensor, k: int, delta: float) -> Tensor:
    """The scaling factor alpha / (k+1)^(1/2+delta) of Algorithms 3-6 at iteration k."""
    return alpha / (k + 1) ** (0.5 + delta)


def clipped_bb(num: Tensor, curv: Tensor, nu: float, m: float, M: float) -> Tensor:
    """gamma = num / curv if curv > 0 else nu, clipped to [m, M] (Algorithms 4-6, lines 9-14)."""
    gamma = torch.where(curv > 0, num / torch.where(curv > 0, curv, torch.ones_like(curv)), torch.full_like(curv, nu))
    return gamma.clamp(m, M)


def minibatch_sgd(
    problem,
    theta0: Tensor,
    alpha: Tensor,
    batches: Tensor,
    steps_per_epoch: int,
    variant: str = "sgd",
    nu: float = 2.0,
    m: float = 0.5,
    M: float = 2.0,
    delta: float = 0.001,
) -> Tensor:
    """SGD and its gradient-variation (GV) step-size heuristics, one row per value of ``alpha`` [n].

    theta_{k+1} = theta_k - alpha / (k+1)^(1/2+delta) gamma_k grad J_{B_k}(theta_k), gamma_0 = 1, and for k >= 1
    gamma_k = clip(||d theta_k||^2 / <G_k, d theta_k>, or nu if that product is <= 0, to [m, M]) with
      ``sgd``:        gamma_k = 1 (plain SGD with the same decay),
      ``stochastic``: G_k = grad J_{B_k}(theta_k) - grad J_{B_{k-1}}(theta_{k-1})       (Algorithm 4),
      ``exact``:      G_k = grad J(theta_k) - grad J(theta_{k-1})                       (Algorithm 5),
      ``expected``:   gamma_k = ||d theta_k|| ||grad J_{B_{k-1}}(theta_{k-1})|| / <-E[C_{J_A}(theta_{k-1})], d theta_k>
                      (Expected-GV of TH section 4.3.3, i.e. Algorithm 6 with G_k = -a_{k-1} gamma_{k-1} E[C],
                      a_{k-1} the factor alpha / k^(1/2+delta) actually used at step k-1).
    ``batches`` [steps, B] holds the row indices of each step's minibatch. Returns full-batch J at every epoch end
    (and at epoch 0): [steps // steps_per_epoch + 1, n].
    """
    if variant not in ("sgd", "stochastic", "exact", "expected"):
        raise ValueError(f"variant={variant!r} is not one of sgd, stochastic, exact, expected")
    alpha = _col(alpha, theta0)
    theta, gamma = theta0.clone(), torch.ones_like(alpha)
    prev = g_prev = full_prev = curv_prev = None
    values = [problem.value(theta)]
    for k, rows in enumerate(batches):
        g = problem.grad(theta, rows)
        full = problem.grad(theta) if variant == "exact" else None
        if k >= 1 and variant != "sgd":
            d_theta = theta - prev
            if variant == "stochastic":
                gamma = clipped_bb(_dot(d_theta, d_theta), _dot(g - g_prev, d_theta), nu, m, M)
            elif variant == "exact":
                gamma = clipped_bb(_dot(d_theta, d_theta), _dot(full - full_prev, d_theta), nu, m, M)
            else:
                num = d_theta.norm(dim=-1, keepdim=True) * g_prev.norm(dim=-1, keepdim=True)
                gamma = clipped_bb(num, _dot(-curv_prev, d_theta), nu, m, M)
        full_prev = full
        if variant == "expected":
            curv_prev = problem.expected_curvature(theta, batches.shape[1])
        prev, g_prev = theta, g
        theta = theta - decay(alpha, k, delta) * gamma * g
        if (k + 1) % steps_per_epoch == 0:
            values.append(problem.value(theta))
    return torch.stack(values)
