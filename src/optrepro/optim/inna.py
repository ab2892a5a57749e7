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

The optimizer keeps phi = theta - psi instead of psi. Subtracting the two lines of eq. 2.13 gives
phi_{k+1} = phi_k - gamma_k beta v_k, and theta_{k+1} = (1 - gamma_k alpha) theta_k + (gamma_k / beta) phi_k -
gamma_k beta v_k. Written with phi_{k+1}, so that phi can be updated in place first:

    phi_{k+1}   = phi_k - gamma_k beta v_k,            phi_0 = alpha beta theta_0 + (beta^2 - beta) v_0
    theta_{k+1} = (1 - gamma_k alpha) theta_k + (gamma_k / beta) phi_{k+1} + gamma_k (gamma_k - beta) v_k

Four elementwise operations and no temporary (eq. 2.13 as written takes five and one), about the cost of SGD
with momentum (``make bench``). ``INNA.psi(p)`` returns the thesis's psi.
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

    The state of each parameter is ``phi`` = theta - psi (module docstring; ``psi(p)`` gives psi).
    ``foreach=True`` uses the multi-tensor ``torch._foreach_*`` kernels, ``False`` a per-tensor loop, ``None``
    the kernels when all of a group's parameters are on CUDA; both paths do the same operations in the same
    order. Every operation is elementwise (``elementwise = True``), so the members of a vmapped ensemble stay
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

    def psi(self, p: Tensor) -> Tensor:
        """The thesis's psi_k of parameter ``p`` (theta_k - phi_k); undefined before its first step."""
        return p.detach() - self.state[p]["phi"]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step of eq. 2.13 from the gradients in ``.grad`` (after calling ``closure`` if given)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, beta, wd = group["lr"], group["alpha"], group["beta"], group["weight_decay"]
            decoupled = group["decoupled_weight_decay"]
            params, grads, phis = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # phi_0 = theta_0 - psi_0 = alpha beta theta_0 + (beta^2 - beta) v_0
                    v = p.grad if decoupled else p.grad.add(p, alpha=wd)
                    state["phi"] = v.mul(beta * beta - beta).add_(p, alpha=alpha * beta)
                params.append(p)
                grads.append(p.grad)
                phis.append(state["phi"])
            if not params:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = all(p.is_cuda for p in params)
            (_foreach_inna if foreach else _loop_inna)(params, grads, phis, lr, alpha, beta, wd, decoupled)
        return loss


def _coefficients(lr, alpha, beta, wd, decoupled) -> tuple[float, float, float, float, float]:
    """(c_theta, c_phi, c_v, phi's v coefficient, phi's theta coefficient) of the phi form (module docstring).

    Weight decay lambda as a loss term is already in v_k. Decoupled, it subtracts gamma lambda theta_k from
    theta and leaves psi alone, so phi = theta - psi loses it too: phi_{k+1} gains -gamma lambda theta_k, and
    theta's coefficient gains -gamma lambda + gamma^2 lambda / beta (the second term cancels what
    (gamma / beta) phi_{k+1} now carries)."""
    shrink = lr * wd if decoupled else 0.0
    c_theta = 1 - lr * alpha - shrink + lr * shrink / beta
    return c_theta, lr / beta, lr * (lr - beta), -lr * beta, -shrink


def _loop_inna(params, grads, phis, lr, alpha, beta, wd, decoupled) -> None:
    """The phi form of eq. 2.13, one tensor at a time."""
    c_theta, c_phi, c_v, phi_v, phi_theta = _coefficients(lr, alpha, beta, wd, decoupled)
    for p, g, phi in zip(params, grads, phis):
        v = g.add(p, alpha=wd) if wd and not decoupled else g  # v_k = grad + lambda theta_k
        phi.add_(v, alpha=phi_v)
        if phi_theta:
            phi.add_(p, alpha=phi_theta)
        p.mul_(c_theta)
        p.add_(phi, alpha=c_phi)
        p.add_(v, alpha=c_v)


def _foreach_inna(params, grads, phis, lr, alpha, beta, wd, decoupled) -> None:
    """The same operations as ``_loop_inna``, in the same order, with multi-tensor kernels."""
    c_theta, c_phi, c_v, phi_v, phi_theta = _coefficients(lr, alpha, beta, wd, decoupled)
    vs = torch._foreach_add(grads, params, alpha=wd) if wd and not decoupled else grads
    torch._foreach_add_(phis, vs, alpha=phi_v)
    if phi_theta:
        torch._foreach_add_(phis, params, alpha=phi_theta)
    torch._foreach_mul_(params, c_theta)
    torch._foreach_add_(params, phis, alpha=c_phi)
    torch._foreach_add_(params, vs, alpha=c_v)
