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

import operator
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
        self._workspaces: dict[int, _Workspace] = {}  # by group index

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
        groups = [(g, params, g["lr"] * scale) for g, params in groups if params]
        spaces = [self._workspace(index, params) for index, (_, params, _) in enumerate(groups)]
        for (g, params, step), space in zip(groups, spaces):
            g0 = _grads(params, g["weight_decay"])
            torch._foreach_copy_(space.first_views, g0)  # the second evaluation overwrites .grad
            torch._foreach_add_(params, g0, alpha=-step)  # line 6
        with torch.enable_grad():
            closure()  # the same minibatch, now at theta_{k+1/2}
        products = []  # <G_k, d_theta_k> and ||d_theta_k||^2, with d_theta = -step g0 (line 8)
        for (g, params, step), space in zip(groups, spaces):
            g1 = _grads(params, g["weight_decay"])
            g0, G = space.first, space.average
            torch._foreach_copy_(space.variation_views, g1)
            G.lerp_(space.variation.sub_(g0), 1 - self.beta)  # lines 9-10: G = beta G + (1 - beta) d_g
            products.append(torch.stack([-step * G.dot(g0), step * step * g0.dot(g0)]))
            torch._foreach_add_(params, g1, alpha=-step)  # line 7
        if products:
            dot, sq = torch.stack(products).sum(0).tolist()  # one host sync
            dot /= 1 - self.beta ** (k + 1)  # line 11: <G_hat, d_theta>
        else:
            dot, sq = 0.0, 0.0
        gamma_next = tuned_step_size(sq, dot, self.nu, self.m, self.M)  # lines 12-17
        for g in self.param_groups:
            g["k"], g["gamma"] = k + 1, gamma_next
        self.last_curvature = dot
        return loss

    def _workspace(self, index: int, params: list[Tensor]) -> _Workspace:
        """Group ``index``'s flat tensors; G's slices are the parameters' ``state["G"]``.

        Keeping G and the two gradients flat makes lines 8-11 single-tensor operations (instead of passes over
        every parameter) on buffers allocated once; the per-parameter views keep ``state_dict`` in PyTorch's
        usual per-parameter form. The workspace is rebuilt (G copied from the views) when the parameters with
        a gradient change or when ``load_state_dict`` has replaced the views."""
        views = [self.state[p].get("G") for p in params]
        space = self._workspaces.get(index)
        if space is not None and len(space.views) == len(views) and all(map(operator.is_, views, space.views)):
            return space
        if len({(p.dtype, p.device) for p in params}) > 1:
            raise ValueError(
                "StepTunedSGD keeps each param group's moving average in one flat tensor: put parameters of "
                "different dtypes or devices in separate param groups"
            )
        space = _Workspace([p.new_zeros(p.shape) if v is None else v for p, v in zip(params, views)])
        for p, v in zip(params, space.views):
            self.state[p]["G"] = v
        self._workspaces[index] = space
        return space


class _Workspace:
    """The flat moving average G (with per-parameter ``views``) and two flat gradient buffers of one group."""

    def __init__(self, averages: list[Tensor]):
        self.average = torch.cat([a.reshape(-1) for a in averages])
        self.first = torch.empty_like(self.average)  # grad J_Bk(theta_k)
        self.variation = torch.empty_like(self.average)  # d_g
        self.views, self.first_views, self.variation_views = (
            [piece.view_as(a) for piece, a in zip(flat.split([a.numel() for a in averages]), averages)]
            for flat in (self.average, self.first, self.variation)
        )


def _grads(params: list[Tensor], weight_decay: float) -> list[Tensor]:
    """grad + lambda theta (the gradient of the loss plus lambda/2 ||theta||^2), zero where a parameter got no
    gradient at this evaluation; the ``.grad`` tensors themselves when lambda = 0."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    return torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else grads
