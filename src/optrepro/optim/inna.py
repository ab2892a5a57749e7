"""INNA, the inertial Newton algorithm for deep learning (TH chapter 2, eq. 2.13, Algorithm 1).

    theta_{k+1} = theta_k + gamma_k ((1/beta - alpha) theta_k - psi_k / beta - beta v_k)
    psi_{k+1}   = psi_k   + gamma_k ((1/beta - alpha) theta_k - psi_k / beta)

v_k is the minibatch (sub)gradient. psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) v_0 (TH section 2.6.1), set at
the first step from the first gradient, makes the first step exactly theta_0 - gamma_0 v_0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class INNA(torch.optim.Optimizer):
    """INNA with hyper-parameters ``alpha >= 0`` and ``beta > 0`` (thesis default (0.5, 0.1)).

    ``weight_decay`` lambda adds lambda/2 ||theta||^2 to the loss by default (so the decay goes through beta, as
    thesis chapter 4 does); with ``decoupled_weight_decay=True`` theta is instead shrunk by (1 - lr lambda) before
    the update and the gradient is left alone. ``foreach`` uses the multi-tensor kernels (default: on CUDA);
    both paths compute the same numbers. Every operation is elementwise, so a vmapped ensemble's members are
    independent runs.
    """

    elementwise = True

    def __init__(
        self,
        params,
        lr: float = 0.1,
        alpha: float = 0.5,
        beta: float = 0.1,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        foreach: bool | None = None,
    ):
        if lr <= 0:
            raise ValueError(f"INNA: lr={lr} is not allowed: lr must be > 0")
        if alpha < 0:
            raise ValueError(f"INNA: alpha={alpha} is not allowed: alpha must be >= 0")
        if beta <= 0:
            raise ValueError(f"INNA: beta={beta} is not allowed: beta must be > 0")
        if weight_decay < 0:
            raise ValueError(f"INNA: weight_decay={weight_decay} is not allowed: it must be >= 0")
        defaults = dict(
            lr=lr,
            alpha=alpha,
            beta=beta,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads, psis = [], []
            for p in params:
                state = self.state[p]
                g = p.grad
                if group["weight_decay"] and not group["decoupled_weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])  # gradient of lambda/2 ||theta||^2
                if "psi" not in state:
                    a, b = group["alpha"], group["beta"]
                    state["psi"] = (1 - a * b) * p.detach().clone() - (b * b - b) * g
                grads.append(g)
                psis.append(state["psi"])
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            (_foreach_update if foreach else _loop_update)(params, grads, psis, group)
        return loss


def _coefficients(group: dict) -> tuple[float, float, float, float]:
    lr, alpha, beta = group["lr"], group["alpha"], group["beta"]
    return lr, 1 / beta - alpha, 1 / beta, beta


def _loop_update(params: list[Tensor], grads: list[Tensor], psis: list[Tensor], group: dict) -> None:
    lr, c, inv_beta, beta = _coefficients(group)
    for p, g, psi in zip(params, grads, psis):
        if group["decoupled_weight_decay"] and group["weight_decay"]:
            p.mul_(1 - lr * group["weight_decay"])
        drift = c * p - inv_beta * psi  # (1/beta - alpha) theta_k - psi_k / beta, shared by both lines of 2.13
        p.add_(lr * (drift - beta * g))
        psi.add_(lr * drift)


def _foreach_update(params: list[Tensor], grads: list[Tensor], psis: list[Tensor], group: dict) -> None:
    lr, c, inv_beta, beta = _coefficients(group)
    if group["decoupled_weight_decay"] and group["weight_decay"]:
        torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
    drift = torch._foreach_mul(params, c)
    torch._foreach_add_(drift, psis, alpha=-inv_beta)
    step = torch._foreach_add(drift, grads, alpha=-beta)
    torch._foreach_add_(params, step, alpha=lr)
    torch._foreach_add_(psis, drift, alpha=lr)
