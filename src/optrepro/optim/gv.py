"""The step-size tuning heuristics of TH chapter 4 beside Step-Tuned SGD: Algorithm 2 (deterministic,
section 4.3.1, Figure 4.2) and the gradient-variation (GV) heuristics of section 4.3.3 / Figure 4.3,
Algorithms 4-6 (section 4.9): Stochastic-GV, Exact-GV, Expected-GV. They are small torch optimizers meant for
small problems (the 30-dimensional non-convex regression of section 4.7), one iteration per ``step``:

    theta_1     = theta_0 - a_0 gamma_0 d_0,   gamma_0 = 1
    gamma_k     = ||d_theta_k||^2 / <G_k, d_theta_k> if > 0, else nu; clipped to [m, M]     (k >= 1)
    theta_{k+1} = theta_k - a_k gamma_k d_k,   a_k = lr / (k+1)^(1/2+delta)

with d_theta_k = theta_k - theta_{k-1}, d_k = grad J_Bk(theta_k) the minibatch direction, and G_k what each
heuristic takes for the gradient variation. Unlike Algorithm 3, gamma_k is computed at iteration k from G_k
and used at once. What each step needs from the caller:

- ``StochasticGV`` (Algorithm 4): ``step(closure)``, the closure computes the minibatch loss and gradient.
  G_k = grad J_Bk(theta_k) - grad J_B(k-1)(theta_{k-1}), the previous direction being kept in the state.
- ``ExactGV`` (Algorithm 5): ``step(closure, full_closure)``; ``full_closure`` does the same on the whole
  data set (J itself). G_k = grad J(theta_k) - grad J(theta_{k-1}), the previous one kept in the state.
- ``ExpectedGV`` (Algorithm 6): ``step(closure, curvature)``; ``curvature()`` returns E_A[C_JA(theta_k)],
  with C_JA = Hess J_A grad J_A = grad (1/2 ||grad J_A||^2) (eq. 4.12) and A a random minibatch, as one
  tensor per parameter (a tensor alone for a single parameter). ``expected_curvature`` computes it exactly
  for minibatches drawn uniformly among the subsets of a given size. G_k = -s_{k-1} E[C_JA(theta_{k-1})],
  s_{k-1} the scalar step a_{k-1} gamma_{k-1} that took theta_{k-1} to theta_k (see ``ExpectedGV``).
- ``StepTunedGD`` (Algorithm 2): ``step(closure)`` with a full-batch closure; G_k = grad J(theta_k) -
  grad J(theta_{k-1}); no clipping and no decay (a_k = lr).

Every closure zeroes the gradients, computes its loss, calls backward and returns the loss; ``step`` returns
the minibatch loss. The step size is one number for all parameters (``elementwise = False``); after each step
``last_step_size`` is the gamma_k just used and ``last_curvature`` the product <G_k, d_theta_k> (nan at
k = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from optrepro.optim.checks import require
from optrepro.optim.step_tuned import DECAYS, decay_factor, tuned_step_size

Closure = Callable[[], Tensor]


class _GVSGD(torch.optim.Optimizer):
    """The skeleton above; subclasses say what the variation vector u_k is (``_differences``:
    G_k = u_k - u_{k-1}, otherwise G_k = s_{k-1} u_{k-1})."""

    elementwise = False
    _differences = True

    def __init__(self, params, lr, nu, m, M, delta, decay, owner):
        require(owner, "lr", lr, lr > 0, "> 0")
        require(owner, "nu", nu, nu > 0, "> 0")
        require(owner, "m", m, 0 <= m <= M, "in [0, M]")
        require(owner, "delta", delta, 0 <= delta < 0.5, "in [0, 1/2)")
        require(owner, "decay", decay, decay in DECAYS, f"one of {DECAYS}")
        super().__init__(params, dict(lr=lr, k=0, gamma=1.0))
        self.nu, self.m, self.M, self.delta, self.decay = nu, m, M, delta, decay
        self.abs_curvature = False
        self.last_curvature = float("nan")

    @property
    def last_step_size(self) -> float:
        return self.param_groups[0]["gamma"]

    def _tuned_step(self, direction: list[Tensor], variation: list[Tensor]) -> None:
        """Tune gamma_k from the stored previous iterate and variation, then step along ``direction``; both
        lists hold one tensor per parameter, in the order of the param groups."""
        k = self.param_groups[0]["k"]
        params = [(g, p) for g in self.param_groups for p in g["params"]]
        gamma, dot = 1.0, float("nan")  # gamma_0 = 1
        if k > 0:
            dot = sq = 0.0
            for (_, p), u in zip(params, variation):
                state = self.state[p]
                d_theta = p - state["prev"]
                G = u - state["u"] if self._differences else state["u"]
                dot += float(torch.vdot(G.flatten(), d_theta.flatten()))
                sq += float(d_theta.pow(2).sum())
            if self.abs_curvature:
                dot = abs(dot)
            gamma = tuned_step_size(sq, dot, self.nu, self.m, self.M)
        scale = decay_factor(self.decay, k, self.delta) * gamma
        for (g, p), d, u in zip(params, direction, variation):
            step = g["lr"] * scale
            state = self.state[p]
            state["prev"] = p.detach().clone()
            state["u"] = u.clone() if self._differences else step * u  # G_{k+1} = s_k u_k
            p.add_(d, alpha=-step)
        for g in self.param_groups:
            g["k"], g["gamma"] = k + 1, gamma
        self.last_curvature = dot

    def _gradients(self, closure: Closure) -> tuple[Tensor, list[Tensor]]:
        with torch.enable_grad():
            loss = closure()
        grads = [p.grad for g in self.param_groups for p in g["params"]]
        return loss, [torch.zeros_like(p) if q is None else q.clone() for q, p in zip(grads, self._flat())]

    def _flat(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]


class StochasticGV(_GVSGD):
    """Algorithm 4 (Stochastic-GV SGD): the variation of the minibatch gradients of two different minibatches,
    at no extra cost; it fails in Figure 4.3."""

    def __init__(self, params, lr=0.1, nu=2.0, m=0.5, M=2.0, delta=0.001, decay="step"):
        super().__init__(params, lr, nu, m, M, delta, decay, "StochasticGV")

    @torch.no_grad()
    def step(self, closure: Closure) -> Tensor:
        loss, grads = self._gradients(closure)
        self._tuned_step(grads, grads)
        return loss


class ExactGV(_GVSGD):
    """Algorithm 5 (Exact-GV SGD): minibatch directions tuned with the variation of the full gradient; needs
    ``full_closure`` (the loss and gradient on the whole data set) once per step."""

    def __init__(self, params, lr=0.1, nu=2.0, m=0.5, M=2.0, delta=0.001, decay="step"):
        super().__init__(params, lr, nu, m, M, delta, decay, "ExactGV")

    @torch.no_grad()
    def step(self, closure: Closure, full_closure: Closure) -> Tensor:
        _, full = self._gradients(full_closure)
        loss, grads = self._gradients(closure)
        self._tuned_step(grads, full)
        return loss


class ExpectedGV(_GVSGD):
    """Algorithm 6 (Expected-GV SGD): G_k = -s_{k-1} E[C_JA(theta_{k-1})], the expected variation of a
    minibatch gradient over one step s_{k-1} (eq. 4.17); ``curvature()`` returns E[C_JA] at the current
    iterate (kept for the next step, so it is the only extra evaluation).

    Line 9 of Algorithm 6 writes the factor as alpha / (k-1)^(1/2+delta) gamma_{k-1}, which is infinite at
    k = 1; the step actually taken from theta_{k-1}, alpha / k^(1/2+delta) gamma_{k-1} (line 16 at k-1), is
    what makes Algorithm 6 equal to the Expected-GV recursion of section 4.3.3 (as section 4.9 says it is),
    and is used here.
    """

    _differences = False

    def __init__(self, params, lr=0.1, nu=2.0, m=0.5, M=2.0, delta=0.001, decay="step"):
        super().__init__(params, lr, nu, m, M, delta, decay, "ExpectedGV")

    @torch.no_grad()
    def step(self, closure: Closure, curvature: Callable[[], Tensor | Sequence[Tensor]]) -> Tensor:
        with torch.enable_grad():
            c = curvature()
        c = [c] if isinstance(c, Tensor) else list(c)
        require("ExpectedGV", "len(curvature())", len(c), len(c) == len(self._flat()), "one per parameter")
        loss, grads = self._gradients(closure)
        self._tuned_step(grads, [-x.detach() for x in c])
        return loss


class StepTunedGD(_GVSGD):
    """Algorithm 2 (full-batch preliminary algorithm): gradient descent with the non-convex BB step (4.8),
    theta_{k+1} = theta_k - lr gamma_k grad J(theta_k), gamma_0 = 1, gamma_k = ||d_theta||^2 / <d_g, d_theta>
    when positive, nu otherwise; no clipping, no decay. ``closure`` computes the full-batch loss and gradient.
    ``abs_curvature=True`` gives Figure 4.2's comparator, BB with absolute values
    ||d_theta||^2 / |<d_g, d_theta>| (nu only when the product is exactly 0)."""

    def __init__(self, params, lr=0.1, nu=2.0, abs_curvature: bool = False):
        super().__init__(params, lr, nu, 0.0, math.inf, 0.0, "none", "StepTunedGD")
        self.abs_curvature = abs_curvature

    @torch.no_grad()
    def step(self, closure: Closure) -> Tensor:
        loss, grads = self._gradients(closure)
        self._tuned_step(grads, grads)
        return loss


def expected_curvature(per_sample_loss: Callable[[Tensor], Tensor], theta: Tensor, batch_size: int) -> Tensor:
    """E_A[C_JA(theta)] for minibatches A drawn uniformly among the subsets of ``batch_size`` of the N samples
    (section 4.3.2), with J_A the mean of the J_n over A and C_JA = Hess J_A grad J_A (eq. 4.12).

    ``per_sample_loss(theta)`` returns the N losses J_n(theta) and must be a pure function of theta (it is
    differentiated twice with ``torch.func``). Averaging Hess J_A grad J_A = 1/b^2 sum_{n, m in A} H_n g_m
    with P(n in A) = b/N and P(n, m in A) = b(b-1) / (N(N-1)) for n != m gives, with H and g the full-data
    means,

        E[C_JA] = (N - b) / (b (N - 1)) * mean_n H_n g_n + N (b - 1) / (b (N - 1)) * H g,

    the gradient of (N - b) / (b (N - 1)) mean_n ||g_n||^2 / 2 + N (b - 1) / (b (N - 1)) ||g||^2 / 2.
    """
    theta = theta.detach()
    n = per_sample_loss(theta).numel()
    b = batch_size
    require("expected_curvature", "batch_size", b, 1 <= b <= n, f"in [1, N={n}]")
    own = (n - b) / (b * (n - 1)) if n > 1 else 0.0
    cross = n * (b - 1) / (b * (n - 1)) if n > 1 else 1.0

    def potential(t: Tensor) -> Tensor:
        g = torch.func.jacrev(per_sample_loss)(t).reshape(n, -1)  # per-sample gradients g_n
        return 0.5 * own * g.pow(2).sum() / n + 0.5 * cross * g.mean(0).pow(2).sum()

    return torch.func.grad(potential)(theta)
