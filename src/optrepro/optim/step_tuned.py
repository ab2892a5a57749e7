"""Step-Tuned SGD (TH chapter 4, Algorithm 3): SGD whose scalar step size is re-tuned every iteration from
the gradient variation measured on one minibatch, used for two consecutive gradient steps.

One iteration k (one ``step(closure)``), with a_k = lr / (k+1)^(1/2+delta) (``decay="step"``) or a_k = lr
(``decay="none"``, when a scheduler applies the thesis's per-epoch decay 1/q^(1/2+delta), section 4.5.1):

    theta_{k+1/2} = theta_k       - a_k gamma_k grad J_Bk(theta_k)         (line 6)
    theta_{k+1}   = theta_{k+1/2} - a_k gamma_k grad J_Bk(theta_{k+1/2})   (line 7, the same minibatch B_k)
    d_theta = theta_{k+1/2} - theta_k                                       (line 8, eq. 4.14: first half)
    d_g = grad J_Bk(theta_{k+1/2}) - grad J_Bk(theta_k)                     (line 9, eq. 4.13)
    G_k = beta G_{k-1} + (1 - beta) d_g,   G_hat = G_k / (1 - beta^(k+1))  (lines 10-11, eq. 4.15)
    gamma_{k+1} = ||d_theta||^2 / <G_hat, d_theta> if that product is > 0, else nu; clipped to [m, M]
                                                                            (lines 12-17)

with gamma_0 = 1 and G_{-1} = 0 (line 3). Both half-steps use the same a_k gamma_k; the second half-step's
displacement and the gradient at theta_{k+1} enter nothing: the variation is taken over the first half-step
on B_k only, d_g ~ -a_k gamma_k Hess J_Bk grad J_Bk (eq. 4.12), so gamma_{k+1} depends on B_0..B_k only. The
inner products run over every parameter of every group: the step size is one number per optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from optrepro.optim.checks import require

DECAYS = ("step", "none")


def tuned_step_size(sq: float, dot: float, nu: float, m: float = 0.0, M: float = float("inf")) -> float:
    """The curvature rule shared by Algorithms 2-6: ||d_theta||^2 / <G, d_theta> (``sq / dot``) when the
    curvature product is positive, the large step ``nu`` otherwise (locally concave along the step, eq. 4.8),
    clipped to [m, M] (Algorithm 3 line 17; Algorithm 2 does not clip)."""
    return min(max(sq / dot if dot > 0 else nu, m), M)


def decay_factor(decay: str, k: int, delta: float) -> float:
    """1 / (k+1)^(1/2+delta) for ``decay="step"`` (Algorithms 3-6), 1 for ``"none"``."""
    return (k + 1) ** -(0.5 + delta) if decay == "step" else 1.0


class StepTunedSGD(torch.optim.Optimizer):
    """Algorithm 3 with learning rate ``lr`` (the thesis's alpha) and defaults (nu, beta, m, M, delta) =
    (2, 0.9, 0.5, 2, 0.001).

    ``step(closure)`` is required and evaluates the closure twice, at theta_k and at theta_{k+1/2}, for the
    same minibatch: the closure must zero the gradients, compute the loss on the current minibatch, call
    backward and return the loss (as Lightning's automatic optimization and ordinary training loops do). It
    returns the loss at theta_k. Each step costs two gradient evaluations (``evals_per_step``; ``grad_evals``
    counts them). ``weight_decay`` lambda is a loss term lambda/2 ||theta||^2 (section 4.5.1), added to both
    gradients.

    After each step, ``last_curvature`` is the product <G_hat_k, d_theta_k> and ``last_step_size`` the step
    size gamma_{k+1} it tuned (clipped), which the next step uses (1.0 = gamma_0 before the first step). The
    counter k and gamma live in the param groups, G in the per-parameter state, so ``state_dict`` resumes
    identically.
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
        self.last_curvature = float("nan")

    @property
    def last_step_size(self) -> float:
        """gamma_{k+1}, tuned by the last step (gamma_0 = 1 before any)."""
        return self.param_groups[0]["gamma"]

    @property
    def grad_evals(self) -> int:
        """Closure evaluations so far: two per step."""
        return self.evals_per_step * self.param_groups[0]["k"]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:
        if closure is None:
            raise RuntimeError(
                "StepTunedSGD.step needs a closure that zeroes the gradients, recomputes the loss on the "
                "current minibatch, calls backward and returns the loss: it evaluates it twice per step "
                "(TH Algorithm 3)"
            )
        k, gamma = self.param_groups[0]["k"], self.param_groups[0]["gamma"]
        scale = decay_factor(self.decay, k, self.delta) * gamma
        with torch.enable_grad():
            loss = closure()
        groups = [(g, [p for p in g["params"] if p.grad is not None]) for g in self.param_groups]
        first = [_grads(params, g["weight_decay"]) for g, params in groups]
        for (g, params), g0 in zip(groups, first):
            if params:
                torch._foreach_add_(params, g0, alpha=-g["lr"] * scale)  # line 6
        with torch.enable_grad():
            closure()  # the same minibatch, now at theta_{k+1/2}
        dots, sqs = [], []
        for (g, params), g0 in zip(groups, first):
            if not params:
                continue
            g1, step = _grads(params, g["weight_decay"]), g["lr"] * scale
            G = [self.state[p].setdefault("G", torch.zeros_like(p)) for p in params]
            torch._foreach_mul_(G, self.beta)  # line 10 with d_g = g1 - g0
            torch._foreach_add_(G, g1, alpha=1 - self.beta)
            torch._foreach_add_(G, g0, alpha=-(1 - self.beta))
            # d_theta = -step g0, so <G, d_theta> = -step <G, g0> and ||d_theta||^2 = step^2 ||g0||^2
            dots += [-step * torch.vdot(a.flatten(), b.flatten()) for a, b in zip(G, g0)]
            sqs += [step * n for n in torch._foreach_norm(g0)]
            torch._foreach_add_(params, g1, alpha=-step)  # line 7
        if dots:
            dev = dots[0].device
            dot_t = torch.stack([d.to(dev) for d in dots]).sum()
            sq_t = torch.stack([s.to(dev) for s in sqs]).pow(2).sum()
            dot, sq = torch.stack([dot_t, sq_t]).tolist()  # one host sync
            dot /= 1 - self.beta ** (k + 1)  # line 11: <G_hat, d_theta>
        else:
            dot, sq = 0.0, 0.0
        gamma_next = tuned_step_size(sq, dot, self.nu, self.m, self.M)  # lines 12-17
        for g in self.param_groups:
            g["k"], g["gamma"] = k + 1, gamma_next
        self.last_curvature = dot
        return loss


def _grads(params: list[Tensor], weight_decay: float) -> list[Tensor]:
    """New tensors grad + lambda theta (the gradient of the loss plus lambda/2 ||theta||^2); zero where a
    parameter got no gradient at this evaluation."""
    if not params:
        return []
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    return torch._foreach_add(grads, params, alpha=weight_decay)
