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

from optrepro.optim.checks import require

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
        owner = "StepTunedSGD"
        require(owner, "lr", lr, lr > 0, "> 0")
        require(owner, "nu", nu, nu > 0, "> 0")
        require(owner, "beta", beta, 0 <= beta < 1, "in [0, 1)")
        require(owner, "m", m, 0 < m <= M, "in (0, M]")
        require(owner, "delta", delta, 0 < delta < 0.5, "in (0, 1/2)")
        require(owner, "weight_decay", weight_decay, weight_decay >= 0, ">= 0")
        require(owner, "decay", decay, decay in DECAYS, f"one of {DECAYS}")
        # k and gamma live in the param groups (the same in each) so that state_dict() carries them
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, k=0, gamma=1.0))
        self.nu, self.beta, self.m, self.M, self.delta, self.decay = nu, beta, m, M, delta, decay
        self.last_step_size = 1.0
        self.last_curvature = float("nan")

    def _grads(self, group: dict) -> list[Tensor]:
        """The group's gradients, plus weight decay as a loss term lambda/2 ||theta||^2; always new tensors."""
        params = group["params"]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        return torch._foreach_add(grads, params, alpha=group["weight_decay"])

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
        first = [self._grads(g) for g in self.param_groups]
        for g, g0 in zip(self.param_groups, first):
            torch._foreach_add_(g["params"], g0, alpha=-g["lr"] * decay * gamma)  # line 6
        with torch.enable_grad():
            closure()
        dots, sqs = [], []
        for g, g0 in zip(self.param_groups, first):
            g1, step = self._grads(g), g["lr"] * decay * gamma
            G = [self.state[p].setdefault("G", torch.zeros_like(p)) for p in g["params"]]
            torch._foreach_mul_(G, self.beta)  # eq. 4.15 with d_g = g1 - g0
            torch._foreach_add_(G, g1, alpha=1 - self.beta)
            torch._foreach_add_(G, g0, alpha=-(1 - self.beta))
            # d_theta = -step g0, so <G_hat, d_theta> = -step <G, g0> / (1 - beta^(k+1)) and ||d_theta|| = step ||g0||
            dots += [-step * torch.dot(a.flatten(), b.flatten()) for a, b in zip(G, g0)]
            sqs += [step * n for n in torch._foreach_norm(g0)]
            torch._foreach_add_(g["params"], g1, alpha=-step)  # line 7
        dot, sq = torch.stack([torch.stack(dots).sum(), torch.stack(sqs).pow(2).sum()]).tolist()  # one sync
        dot /= 1 - self.beta ** (k + 1)
        gamma_next = min(max(sq / dot if dot > 0 else self.nu, self.m), self.M)  # lines 12-17
        for g in self.param_groups:
            g["k"], g["gamma"] = k + 1, gamma_next
        self.last_step_size, self.last_curvature = gamma, dot
        return loss
