"""TH Figures 4.2 and 4.3: the non-convex regression of thesis section 4.7, J(theta) = 1/N sum phi(A_n theta - b_n)
with phi(t) = t^2 / (1 + t^2), N = 500, P = 30 (after Carmon et al., 2017).

Data (the thesis refers to Carmon et al., 2017, section 5, for it; marked in the config): A_nj ~ N(0, 1),
z ~ N(0, x_scale^2 I) and, with ``noise="gaussian_bernoulli"`` (the presets), b = A z + noise_scale nu + xi with
nu ~ N(0, I) and xi_n ~ Bernoulli(outlier_prob), as the directsearch package's example of Carmon et al.'s problem
draws them (lindonroberts/directsearch, examples/nonconvex_regression.py: z ~ N(0, 4 I), 3 nu, Bernoulli(0.3));
``noise="cauchy"`` is our earlier reading, b = A z + noise_scale * Cauchy. theta_0 = 0.

F4.2 (full batch, 250 iterations): Algorithm 2, Barzilai-Borwein with absolute values (both scaled by alpha), and
gradient descent with Armijo backtracking; each method's hyper-parameters (Algorithm 2: alpha and nu, selected
jointly; BB: alpha; Armijo: the first trial step) are the grid point that first reaches J - J* < 0.1 (thesis 4.7:
"selected the hyper-parameters of each algorithm"), with J* the best value any method reaches in
``reference_iterations`` (10^5 in the thesis).
F4.3 (minibatches of 50, 250 epochs): SGD, Stochastic-GV, Exact-GV, Expected-GV (Algorithms 4-6,
``optrepro.optim.gv``) and Step-Tuned SGD (Algorithm 3, ``optrepro.optim.StepTunedSGD``); each with the grid alpha
giving the lowest J after 50 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from optrepro.optim import ExactGV, ExpectedGV, StepTunedGD, StepTunedSGD, StochasticGV
from optrepro.toys import steps


@dataclass(frozen=True)
class Regression:
    A: Tensor  # [N, P]
    b: Tensor  # [N]

    def residual(self, theta: Tensor, idx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        A, b = (self.A, self.b) if idx is None else (self.A[idx], self.b[idx])
        return A, theta @ A.T - b  # theta may be [P] or [G, P] (several runs at once)

    def loss(self, theta: Tensor, idx: Tensor | None = None) -> Tensor:
        _, r = self.residual(theta, idx)
        return (r**2 / (1 + r**2)).mean(-1)

    def grad(self, theta: Tensor, idx: Tensor | None = None) -> Tensor:
        A, r = self.residual(theta, idx)
        return (2 * r / (1 + r**2) ** 2) @ A / A.shape[0]  # phi'(t) = 2t / (1 + t^2)^2

    def expected_curvature(self, theta: Tensor, batch: int) -> Tensor:
        """E[C_{J_A}(theta)] = E[H_A grad J_A] over minibatches A of ``batch`` rows drawn without replacement
        (thesis eq. 4.12, 4.17), computed exactly from P(n, m in A)."""
        n = self.A.shape[0]
        r = theta @ self.A.T - self.b
        d1, d2 = 2 * r / (1 + r**2) ** 2, (2 - 6 * r**2) / (1 + r**2) ** 3  # phi', phi''
        g_sum = d1 @ self.A  # sum_m g_m
        diag = (d2 * d1 * (self.A**2).sum(1)) @ self.A  # sum_n h_n g_n = sum_n phi''_n phi'_n ||a_n||^2 a_n
        full = ((self.A @ g_sum) * d2) @ self.A  # (sum_n h_n)(sum_m g_m)
        p_same, p_pair = batch / n, batch * (batch - 1) / (n * (n - 1))
        return (p_same * diag + p_pair * (full - diag)) / batch**2


NOISES = ("gaussian_bernoulli", "cauchy")


def regression_problem(
    seed: int,
    n: int,
    p: int,
    x_scale: float,
    noise_scale: float,
    noise: str = "gaussian_bernoulli",
    outlier_prob: float = 0.3,
) -> Regression:
    """The problem of section 4.7 for a seed; ``problem`` in the presets holds the other arguments. Draws, in
    this order from one generator: A [n, p], z [p], then nu [n] and xi [n] (``gaussian_bernoulli``) or one
    uniform [n] turned into Cauchy noise (``cauchy``)."""
    if noise not in NOISES:
        raise ValueError(f"noise={noise!r}: expected one of {NOISES}")
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, p, generator=g, dtype=torch.float64)
    z = x_scale * torch.randn(p, generator=g, dtype=torch.float64)
    if noise == "gaussian_bernoulli":
        nu = torch.randn(n, generator=g, dtype=torch.float64)
        xi = torch.bernoulli(torch.full((n,), outlier_prob, dtype=torch.float64), generator=g)
        return Regression(A, A @ z + noise_scale * nu + xi)
    cauchy = torch.tan(torch.pi * (torch.rand(n, generator=g, dtype=torch.float64) - 0.5))
    return Regression(A, A @ z + noise_scale * cauchy)


# ---- F4.2: deterministic ----------------------------------------------------------------------------------------
def bb_descent(problem: Regression, alphas: Tensor, iterations: int, rule: str, nu: float) -> Tensor:
    """Algorithm 2 (``rule='alg2'``) or BB with absolute values (``rule='bb_abs'``), both scaled by alpha, as
    ``optrepro.optim.StepTunedGD`` runs them on the full-batch problem; one run per alpha. Returns J,
    [iterations + 1, len(alphas)]."""
    curves = []
    for alpha in steps(alphas.tolist(), f"TH F4.2 {rule}, nu={nu:g}, alpha grid"):
        theta = torch.nn.Parameter(problem.A.new_zeros(problem.A.shape[1]))
        opt = StepTunedGD([theta], lr=alpha, nu=nu, abs_curvature=rule == "bb_abs")

        def closure(theta=theta):
            theta.grad = problem.grad(theta.detach())
            return problem.loss(theta.detach())

        curves.append([float(opt.step(closure)) for _ in range(iterations)] + [float(problem.loss(theta.detach()))])
    return torch.tensor(curves, dtype=torch.float64).T


def armijo_descent(
    problem: Regression, initial: Tensor, iterations: int, c: float = 1e-4, shrink: float = 0.5
) -> Tensor:
    """Gradient descent with Armijo backtracking from the initial step ``initial`` at every iteration."""
    theta = problem.A.new_zeros(len(initial), problem.A.shape[1])
    losses = [problem.loss(theta)]
    for _ in range(iterations):
        g, f = problem.grad(theta), losses[-1]
        step, done = initial.clone(), torch.zeros_like(initial, dtype=torch.bool)
        for _ in range(60):
            ok = problem.loss(theta - step[:, None] * g) <= f - c * step * (g**2).sum(1)
            done |= ok
            if done.all():
                break
            step = torch.where(done, step, step * shrink)
        theta = theta - step[:, None] * g
        losses.append(problem.loss(theta))
    return torch.stack(losses)


def _first_below(curve: Tensor, threshold: float) -> int:
    below = (curve < threshold).nonzero()
    return int(below[0]) if len(below) else len(curve)


def deterministic_f4_2(
    run_dir: Path,
    seed: int,
    problem: dict,
    iterations: int,
    reference_iterations: int,
    grid: list[float],
    nu_grid: list[float],
    armijo_grid: list[float],
    tolerance: float,
) -> dict[str, float]:
    """TH Figure 4.2. Each method's hyper-parameters are the grid point that first reaches J - J* < tolerance
    (ties: the lower J after ``iterations``): (alpha, nu) in ``grid`` x ``nu_grid`` for Algorithm 2, alpha in
    ``grid`` for BB with absolute values, the first trial step in ``armijo_grid`` for Armijo. Writes
    ``curves.csv`` (method, iteration, J, J_minus_Jstar) and ``chosen.csv`` (method, alpha, nu,
    iterations_to_tolerance, J_star; alpha is Armijo's first trial step, nu is empty but for Algorithm 2)."""
    problem = regression_problem(seed, **problem)
    alphas = torch.tensor(grid, dtype=torch.float64)
    long = max(iterations, reference_iterations)
    nan = float("nan")
    settings = {
        "Algorithm 2": [(a, nu) for nu in nu_grid for a in grid],
        "BB with absolute values": [(a, nan) for a in grid],
        "GD with Armijo": [(a, nan) for a in armijo_grid],
    }
    runs = {
        "Algorithm 2": torch.cat([bb_descent(problem, alphas, long, "alg2", nu) for nu in nu_grid], 1),
        "BB with absolute values": bb_descent(problem, alphas, long, "bb_abs", 2.0),  # nu unused: |<.,.>| > 0
        "GD with Armijo": armijo_descent(problem, torch.tensor(armijo_grid, dtype=torch.float64), long),
    }
    j_star = min(float(torch.nan_to_num(c, nan=float("inf")).min()) for c in runs.values())
    frames, chosen = [], []
    for method, curves in runs.items():
        gap = curves[: iterations + 1] - j_star
        hits = [_first_below(gap[:, i], tolerance) for i in range(gap.shape[1])]
        finals = torch.nan_to_num(gap[-1], nan=float("inf"))
        best = min(range(len(hits)), key=lambda i: (hits[i], float(finals[i])))
        alpha, nu = settings[method][best]
        chosen.append({"method": method, "alpha": alpha, "nu": nu, "iterations_to_tolerance": hits[best]})
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "iteration": range(iterations + 1),
                    "J": curves[: iterations + 1, best].numpy(),
                    "J_minus_Jstar": gap[:, best].numpy(),
                }
            )
        )
    pd.concat(frames).to_csv(Path(run_dir) / "curves.csv", index=False)
    table = pd.DataFrame(chosen).assign(J_star=j_star)
    table.to_csv(Path(run_dir) / "chosen.csv", index=False)
    return {f"iterations_to_tolerance/{r['method']}": float(r["iterations_to_tolerance"]) for r in chosen} | {
        "J_star": j_star
    }


# ---- F4.3: minibatches ------------------------------------------------------------------------------------------
def _batches(seed: int, n: int, batch: int, epochs: int) -> list[list[Tensor]]:
    g = torch.Generator().manual_seed(seed + 1)
    return [list(torch.randperm(n, generator=g).split(batch)) for _ in range(epochs)]


def gv_sgd(problem: Regression, batches, alpha: float, kind: str, nu: float = 2.0, M: float = 2.0) -> list[float]:
    """SGD (``kind='sgd'``) and Algorithms 4-6 (``stochastic``, ``exact``, ``expected``, the optimizers of
    ``optrepro.optim.gv``, large step ``nu`` and upper bound ``M``) on the minibatch sequence ``batches``; full J
    after each epoch."""
    theta = torch.nn.Parameter(problem.A.new_zeros(problem.A.shape[1]))
    make = {"sgd": StochasticGV, "stochastic": StochasticGV, "exact": ExactGV, "expected": ExpectedGV}[kind]
    # SGD with the same decay: the GV machinery with the step size pinned to 1 (m = M = 1)
    opt = make([theta], lr=alpha, m=1.0, M=1.0) if kind == "sgd" else make([theta], lr=alpha, nu=nu, M=M)
    batch_size = len(batches[0][0])

    def closure_on(idx):
        def closure():
            theta.grad = problem.grad(theta.detach(), idx)
            return problem.loss(theta.detach(), idx)

        return closure

    losses = [float(problem.loss(theta.detach()))]
    for epoch in batches:
        for idx in epoch:
            if kind == "exact":
                opt.step(closure_on(idx), closure_on(None))
            elif kind == "expected":
                opt.step(closure_on(idx), lambda: problem.expected_curvature(theta.detach(), batch_size))
            else:
                opt.step(closure_on(idx))
        losses.append(float(problem.loss(theta.detach())))
    return losses


def step_tuned(problem: Regression, batches, alpha: float, nu: float = 2.0, M: float = 2.0) -> list[float]:
    theta = torch.nn.Parameter(problem.A.new_zeros(problem.A.shape[1]))
    opt = StepTunedSGD([theta], lr=alpha, nu=nu, M=M)
    losses = [float(problem.loss(theta.detach()))]
    for epoch in batches:
        for idx in epoch:

            def closure(idx=idx):
                theta.grad = problem.grad(theta.detach(), idx)
                return problem.loss(theta.detach(), idx)

            opt.step(closure)
        losses.append(float(problem.loss(theta.detach())))
    return losses


def minibatch_f4_3(
    run_dir: Path,
    seed: int,
    problem: dict,
    batch: int,
    epochs: int,
    selection_epochs: int,
    grid: list[float],
    nu: float = 2.0,
    M: float = 2.0,
) -> dict[str, float]:
    """TH Figure 4.3. Writes ``curves.csv`` (method, alpha, epoch, J) for each method's chosen alpha, ``chosen.csv``."""
    problem = regression_problem(seed, **problem)
    n = problem.A.shape[0]
    batches = _batches(seed, n, batch, epochs)
    select = min(selection_epochs, epochs)
    methods = {
        "SGD": lambda a: gv_sgd(problem, batches, a, "sgd"),
        "Stochastic-GV": lambda a: gv_sgd(problem, batches, a, "stochastic", nu, M),
        "Exact-GV": lambda a: gv_sgd(problem, batches, a, "exact", nu, M),
        "Expected-GV": lambda a: gv_sgd(problem, batches, a, "expected", nu, M),
        "Step-Tuned SGD": lambda a: step_tuned(problem, batches, a, nu, M),
    }
    frames, chosen = [], []
    for method, train in methods.items():
        runs = {a: train(a) for a in grid}
        score = {a: (c[select] if c[select] == c[select] else float("inf")) for a, c in runs.items()}
        best = min(score, key=score.get)
        chosen.append(
            {
                "method": method,
                "alpha": best,
                "selection_epochs": select,
                "J_at_selection": score[best],
                "final_J": runs[best][-1],
            }
        )
        frames.append(pd.DataFrame({"method": method, "alpha": best, "epoch": range(epochs + 1), "J": runs[best]}))
    pd.concat(frames).to_csv(Path(run_dir) / "curves.csv", index=False)
    pd.DataFrame(chosen).to_csv(Path(run_dir) / "chosen.csv", index=False)
    return {f"final_J/{r['method']}": float(r["final_J"]) for r in chosen}
