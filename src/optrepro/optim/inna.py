"""INNA, the inertial Newton algorithm for deep learning (TH chapter 2, eq. 2.13, Algorithm 1).

With v_k the minibatch (sub)gradient at theta_k and gamma_k the step size (``lr``), eq. 2.13 reads

    theta_{k+1} = theta_k + gamma_k ((1/beta - alpha) theta_k - psi_k / beta - beta v_k)
    psi_{k+1}   = psi_k   + gamma_k ((1/beta - alpha) theta_k - psi_k / beta)

It is the explicit Euler discretization of the first-order form (2.6) of the dynamical system DIN (2.5),
theta'' + alpha theta' + beta Hess J theta' + grad J = 0, which needs no second derivative: alpha is a viscous
damping, beta a Newton-like (Hessian-driven) damping.

psi_0 is not a hyper-parameter: as in TH section 2.6.2.1 ("Methodology"), it is set so that the initial
velocity points along -grad J(theta_0), psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) grad J(theta_0).
Here it is set lazily at the first step from the first (minibatch) gradient v_0, which makes the first step
exactly theta_0 - gamma_0 v_0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.optim.checks import require


class INNA(torch.optim.Optimizer):
    """INNA (eq. 2.13) with step size ``lr`` (gamma), ``alpha >= 0`` and ``beta > 0`` (thesis default
    (0.5, 0.1)).

    ``weight_decay`` lambda is, by default, a loss term lambda/2 ||theta||^2: lambda theta is added to v_k, so
    it passes through beta like the rest of the gradient (thesis chapter 4). With
    ``decoupled_weight_decay=True`` the gradient is left alone and theta is shrunk separately:
    theta_{k+1} = (eq. 2.13) - gamma_k lambda theta_k, psi untouched, so the first step is
    (1 - gamma lambda) theta_0 - gamma v_0.

    The state of each parameter is ``psi``. ``foreach=True`` uses the multi-tensor ``torch._foreach_*``
    kernels, ``False`` a per-tensor loop, ``None`` the kernels when all of a group's parameters are on CUDA;
    both paths do the same operations in the same order. Every operation is elementwise
    (``elementwise = True``), so the members of a vmapped ensemble stay independent runs.
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
        """One step of eq. 2.13 from the gradients in ``.grad`` (after calling ``closure`` if given)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            lr, alpha, beta, wd = group["lr"], group["alpha"], group["beta"], group["weight_decay"]
            decoupled = group["decoupled_weight_decay"]
            grads = [p.grad for p in params]
            for p, g in zip(params, grads):
                state = self.state[p]
                if "psi" not in state:  # psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) v_0
                    v = g if decoupled else g.add(p, alpha=wd)
                    state["psi"] = (1 - alpha * beta) * p.detach() - (beta * beta - beta) * v
            psis = [self.state[p]["psi"] for p in params]
            # the decay's share of the theta update: -gamma lambda theta_k decoupled, and as a loss term
            # -gamma beta lambda theta_k (the -gamma beta v_k of eq. 2.13 with v_k = grad + lambda theta_k)
            decay = lr * wd if decoupled else lr * beta * wd
            (_foreach_inna if foreach else _loop_inna)(params, grads, psis, lr, alpha, beta, decay)
        return loss


def _loop_inna(params, grads, psis, lr, alpha, beta, decay) -> None:
    """Eq. 2.13 per tensor, with d = gamma ((1/beta - alpha) theta_k - psi_k / beta) shared by both lines."""
    for p, g, psi in zip(params, grads, psis):
        d = p.mul(lr * (1 / beta - alpha))
        d.add_(psi, alpha=-lr / beta)
        psi.add_(d)  # psi_{k+1} = psi_k + d
        if decay:
            d.add_(p, alpha=-decay)
        p.add_(d)  # theta_{k+1} = theta_k + d - gamma beta v_k
        p.add_(g, alpha=-lr * beta)


def _foreach_inna(params, grads, psis, lr, alpha, beta, decay) -> None:
    """The same operations as ``_loop_inna``, in the same order, with multi-tensor kernels."""
    d = torch._foreach_mul(params, lr * (1 / beta - alpha))
    torch._foreach_add_(d, psis, alpha=-lr / beta)
    torch._foreach_add_(psis, d)
    if decay:
        torch._foreach_add_(d, params, alpha=-decay)
    torch._foreach_add_(params, d)
    torch._foreach_add_(params, grads, alpha=-lr * beta)
