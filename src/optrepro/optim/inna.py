"""INNA, the inertial Newton algorithm for deep learning (TH chapter 2, eq. 2.13, Algorithm 1).

    theta_{k+1} = theta_k + gamma_k ((1/beta - alpha) theta_k - psi_k / beta - beta v_k)
    psi_{k+1}   = psi_k   + gamma_k ((1/beta - alpha) theta_k - psi_k / beta)

v_k is the minibatch (sub)gradient. psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) v_0 (TH section 2.6.1), set at
the first step from the first gradient, makes the first step exactly theta_0 - gamma_0 v_0.

Implemented in an equivalent form with four in-place multi-tensor operations and no temporaries: with
phi = theta - psi, subtracting the two lines of 2.13 gives phi_{k+1} = phi_k - gamma_k beta v_k, and
theta_{k+1} = (1 - gamma_k alpha) theta_k + (gamma_k / beta) phi_k - gamma_k beta v_k. The state holds phi;
``INNA.psi(p)`` returns the thesis's psi.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.optim.checks import require


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
        require("INNA", "lr", lr, lr > 0, "> 0")
        require("INNA", "alpha", alpha, alpha >= 0, ">= 0")
        require("INNA", "beta", beta, beta > 0, "> 0")
        require("INNA", "weight_decay", weight_decay, weight_decay >= 0, ">= 0")
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
            lr, alpha, beta, wd = group["lr"], group["alpha"], group["beta"], group["weight_decay"]
            grads = [p.grad for p in params]
            if wd and not group["decoupled_weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=wd)  # gradient of lambda/2 ||theta||^2
            phis = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "phi" not in state:  # phi_0 = theta_0 - psi_0 = alpha beta theta_0 + (beta^2 - beta) v_0
                    state["phi"] = alpha * beta * p.detach() + (beta * beta - beta) * g
                phis.append(state["phi"])
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            if group["decoupled_weight_decay"] and wd:  # theta <- (1 - lr wd) theta with psi unchanged
                _axpy(phis, params, -lr * wd, foreach)
                _scale(params, 1 - lr * wd, foreach)
            # theta_{k+1} = (1 - lr alpha) theta_k + (lr / beta) phi_k - lr beta v_k;  phi_{k+1} = phi_k - lr beta v_k
            _scale(params, 1 - lr * alpha, foreach)
            _axpy(params, phis, lr / beta, foreach)
            _axpy(params, grads, -lr * beta, foreach)
            _axpy(phis, grads, -lr * beta, foreach)
        return loss

    def psi(self, p: Tensor) -> Tensor:
        """The thesis's psi for parameter ``p`` (psi = theta - phi)."""
        return p.detach() - self.state[p]["phi"]


def _scale(xs: list[Tensor], c: float, foreach: bool) -> None:
    if foreach:
        torch._foreach_mul_(xs, c)
    else:
        for x in xs:
            x.mul_(c)


def _axpy(ys: list[Tensor], xs: list[Tensor], a: float, foreach: bool) -> None:
    """y += a x for every pair."""
    if foreach:
        torch._foreach_add_(ys, xs, alpha=a)
    else:
        for y, x in zip(ys, xs):
            y.add_(x, alpha=a)
