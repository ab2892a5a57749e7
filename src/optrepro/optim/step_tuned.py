"""Step-Tuned SGD (TH chapter 4, Algorithm 3): SGD whose step size is tuned every two iterations from the
gradient variation measured on one minibatch.

At iteration k, with a_k = alpha / (k+1)^(1/2+delta) (or alpha, when the decay is applied per epoch elsewhere):

    theta_{k+1/2} = theta_k       - a_k gamma_k grad J_Bk(theta_k)          (line 6)
    theta_{k+1}   = theta_{k+1/2} - a_k gamma_k grad J_Bk(theta_{k+1/2})    (line 7, the same minibatch B_k)
    d_theta = theta_{k+1/2} - theta_k,  d_g = grad J_Bk(theta_{k+1/2}) - grad J_Bk(theta_k)   (eq. 4.13, 4.14)
    G_k = beta G_{k-1} + (1 - beta) d_g,  G_hat = G_k / (1 - beta^(k+1))                       (eq. 4.15)
    gamma_{k+1} = ||d_theta||^2 / <G_hat, d_theta> if that product is > 0, else nu; clipped to [m, M]

with gamma_0 = 1 and G_{-1} = 0. The inner products run over every parameter of every group, so the step size is
one number per optimizer: in an ensemble of vmapped members it would mix members (``elementwise = False``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

DECAYS = ("step", "none")


class StepTunedSGD(torch.optim.Optimizer):
    """Algorithm 3 with defaults (nu, beta, m, M, delta) = (2, 0.9, 0.5, 2, 0.001).

    ``step(closure)`` evaluates the closure twice on the same minibatch (the closure must zero the gradients,
    compute the loss and call backward, as Lightning's automatic optimization and ordinary loops do), so each step
    costs two gradient evaluations (``evals_per_step``). ``decay="step"`` multiplies lr by 1/(k+1)^(1/2+delta);
    ``decay="none"`` leaves the decay to a learning-rate scheduler (the thesis's deep-learning runs decay per epoch).
    After each step, ``last_step_size`` is the step size gamma used and ``last_curvature`` the product
    <G_hat, d_theta> that tuned the next one.
    """

    elementwise = False
    evals_per_step = 2

    def __init__(
        self,
        params,
        lr: float = 0.1,
        nu: float = 2.0,
        beta: float = 0.9,
        m: float = 0.5,
        M: float = 2.0,
        delta: float = 0.001,
        decay: str = "step",
        weight_decay: float = 0.0,
    ):
        checks = {
            "lr": lr > 0,
            "nu": nu > 0,
            "beta": 0 <= beta < 1,
            "m": 0 < m <= M,
            "delta": 0 < delta < 0.5,
            "weight_decay": weight_decay >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"StepTunedSGD: {name}={locals()[name]} is not allowed (see TH Algorithm 3)")
        if decay not in DECAYS:
            raise ValueError(f"StepTunedSGD: decay={decay!r} is not one of {DECAYS}")
        # k and gamma live in the param groups (the same in each) so that state_dict() carries them
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, k=0, gamma=1.0))
        self.nu, self.beta, self.m, self.M, self.delta, self.decay = nu, beta, m, M, delta, decay
        self.last_step_size = 1.0
        self.last_curvature = float("nan")

    def _params(self) -> list[tuple[Tensor, dict]]:
        return [(p, g) for g in self.param_groups for p in g["params"]]

    def _grad(self, p: Tensor, group: dict) -> Tensor:
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        return g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else g  # lambda/2 ||theta||^2

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        if closure is None:
            raise RuntimeError(
                "StepTunedSGD.step needs a closure that recomputes the loss and gradients on the current "
                "minibatch: it evaluates it twice per step (TH Algorithm 3)"
            )
        k, gamma = self.param_groups[0]["k"], self.param_groups[0]["gamma"]
        decay = (k + 1) ** -(0.5 + self.delta) if self.decay == "step" else 1.0
        with torch.enable_grad():
            loss = closure()
        first = {p: self._grad(p, g).clone() for p, g in self._params()}
        for p, g in self._params():
            p.add_(first[p], alpha=-g["lr"] * decay * gamma)  # line 6; d_theta = -a gamma grad
        with torch.enable_grad():
            closure()
        dots, sqs = [], []
        for p, g in self._params():
            second = self._grad(p, g)
            d_theta = first[p].mul(-g["lr"] * decay * gamma)
            state = self.state[p]
            G = state.setdefault("G", torch.zeros_like(p))
            G.mul_(self.beta).add_(second - first[p], alpha=1 - self.beta)  # eq. 4.15
            dots.append((G * d_theta).sum() / (1 - self.beta ** (k + 1)))  # <G_hat, d_theta>
            sqs.append(d_theta.pow(2).sum())
            p.add_(second, alpha=-g["lr"] * decay * gamma)  # line 7
        dot, sq = (torch.stack(v).sum().item() for v in (dots, sqs))  # one host sync per step
        gamma_next = min(max(sq / dot if dot > 0 else self.nu, self.m), self.M)  # lines 12-17
        for g in self.param_groups:
            g["k"], g["gamma"] = k + 1, gamma_next
        self.last_step_size, self.last_curvature = gamma, dot
        return loss
