"""Gaussian continuation (GC): train on the Gaussian smoothing g(theta, lambda) = E_eps f(theta + sqrt(lambda) eps).

GC section 2.3: each step evaluates the loss at ``samples`` points v_j = theta + sqrt(lambda) eps_j, eps_j ~ N(0, I)
(eq. 7, N = 1 in the deep-learning tests), and applies its gradient to theta. The model is called with the
perturbed parameters through ``torch.func.functional_call``, so autograd hands theta the gradient at v_j and there
is nothing to restore; buffers (batch-norm statistics) pass through unperturbed. Evaluation and test metrics call
the model itself, i.e. the unperturbed theta.

lambda follows either a fixed schedule (``constant``, ``geometric`` lambda_0 gamma^i, ``inverse_power``
lambda_0 / (1 + i)^gamma, GC section 2.2, with i the epoch) or is learned (GC Algorithm 2, after Iwakiri et al.
2022) through lambda = exp(s) (GC App. C, not in our copy): s has its own Adam with the continuation learning rate,
is frozen during ``warmup_epochs``, and its gradient dg/ds = lambda dg/dlambda is estimated after each backward
pass by one of two estimators:

- ``pathwise`` (the authors' default): d f(theta + e^{s/2} eps)/ds = (sqrt(lambda) / 2) eps . grad f(v), which
  autograd computes in the same backward pass as theta's gradient;
- ``score`` (GC eq. 8): dg/dlambda ~ mean_j (||v_j - theta||^2 - m lambda) / (2 lambda^2) f(v_j), so that
  dg/ds ~ mean_j (||eps_j||^2 - m) / 2 f(v_j).

Regularization (GC eq. 12) adds beta m to dg/dlambda, i.e. beta m lambda to dg/ds (``regularization: paper``);
the authors' code adds beta m lambda / lambda_0 in s-space (``regularization: authors``, the default).
``variance_cap`` (a multiple of lambda_0; the authors use e^2) caps the variance used for sampling, the
s-gradient is then computed as if uncapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from optrepro.methods.base import Method
from optrepro.methods.schedules import Constant, Geometric, InversePower

SCHEDULES = ("learned", "constant", "geometric", "inverse_power")
ESTIMATORS = ("pathwise", "score")
REGULARIZATIONS = ("authors", "paper")


def fixed_schedule(kind: str, lambda0: float, gamma: float) -> Callable[[int], float]:
    """GC section 2.2, with i the epoch: lambda_0 (constant), lambda_0 gamma^i (geometric), lambda_0 / (1 + i)^gamma
    (inverse_power)."""
    if kind == "constant":
        return Constant(lambda0)
    if kind == "geometric":
        return Geometric(lambda0, gamma)
    if kind == "inverse_power":
        return InversePower(lambda0, gamma)
    raise ValueError(f"no fixed schedule {kind!r}; expected one of {SCHEDULES[1:]}")


def score_s_gradient(losses: Tensor, eps_sq: Tensor, m: int) -> Tensor:
    """GC eq. 8 in s = log(lambda): lambda dg/dlambda ~ mean_j (||eps_j||^2 - m) / 2 f(v_j)."""
    return ((eps_sq - m) / 2 * losses).mean()


class GaussianContinuation(Method):
    """Loss evaluated at Gaussian-perturbed parameters, with lambda scheduled or learned (GC Algorithm 2)."""

    def __init__(
        self,
        name: str = "gaussian_continuation",
        schedule: str = "learned",
        log_lambda0: float = -13.0,
        gamma: float = 1.0,
        lr: float = 1e-2,
        beta: float = 0.0,
        warmup_epochs: int = 0,
        estimator: str = "pathwise",
        samples: int = 1,
        variance_cap: float | None = None,
        regularization: str = "authors",
    ):
        for key, value, allowed in (
            ("schedule", schedule, SCHEDULES),
            ("estimator", estimator, ESTIMATORS),
            ("regularization", regularization, REGULARIZATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"method.{key}={value!r} is not one of {allowed}")
        if samples < 1 or lr <= 0 or beta < 0 or warmup_epochs < 0:
            raise ValueError("method.samples >= 1, method.lr > 0, method.beta >= 0, method.warmup_epochs >= 0")
        self.name, self.kind, self.s0, self.gamma = name, schedule, float(log_lambda0), float(gamma)
        self.lr, self.beta, self.warmup_epochs = float(lr), float(beta), int(warmup_epochs)
        self.estimator, self.samples, self.regularization = estimator, int(samples), regularization
        self.variance_cap = None if variance_cap is None else float(variance_cap)
        self.schedule = None if self.learned else fixed_schedule(schedule, self.lambda0, self.gamma)
        self.s: Tensor | None = None  # log lambda, learned
        self._optimizer: torch.optim.Optimizer | None = None
        self._epoch = 0
        self._losses: list[Tensor] = []
        self._eps_sq: list[Tensor] = []
        self._m = 0
        self.last_s_grad: Tensor | None = None  # the last estimate of dg/ds (regularization included)

    def requirements(self) -> dict[str, str]:
        return {
            "single_member": "its noise is drawn, and its lambda learned, for the parameters of one run "
            "(a vmapped ensemble would share them across members)"
        }

    @property
    def lambda0(self) -> float:
        return math.exp(self.s0)

    @property
    def learned(self) -> bool:
        return self.kind == "learned"

    def current_lambda(self) -> float:
        if self.learned:
            return math.exp(self.s0) if self.s is None else float(self.s.detach().exp())
        return self.schedule(self._epoch)

    def parameter(self, epoch: int) -> float:
        self._epoch = epoch
        return self.current_lambda()

    def logged(self) -> dict[str, float]:
        """lambda at the epoch's end and, when lambda is learned, the last estimate of dg/ds."""
        if not self.learned:
            return {"homotopy/lambda_end": self.current_lambda()}
        grad = float("nan") if self.last_s_grad is None else float(self.last_s_grad)
        return {"homotopy/lambda_end": self.current_lambda(), "homotopy/s_grad": grad}

    def _ensure_s(self, device: torch.device) -> Tensor:
        """s on ``device`` (created at s_0 on first use); moving it to another device keeps its Adam moments."""
        if self.s is None or self.s.device != device:
            value = self.s0 if self.s is None else float(self.s.detach())
            moments = None if self._optimizer is None else self._optimizer.state_dict()
            self.s = torch.tensor(value, device=device, dtype=torch.float32, requires_grad=True)
            self._optimizer = torch.optim.Adam([self.s], lr=self.lr)
            if moments is not None:
                self._optimizer.load_state_dict(moments)  # casts the moments to s's device
        return self.s

    def state_dict(self) -> dict:
        """The learned s, its Adam state and the last s-gradient (empty while s has not been created)."""
        if self.s is None:
            return {}
        grad = None if self.last_s_grad is None else self.last_s_grad.detach().cpu()
        return {"s": self.s.detach().cpu(), "optimizer": self._optimizer.state_dict(), "last_s_grad": grad}

    def load_state_dict(self, state: dict) -> None:
        """Resume s where ``state_dict`` left it; the next objective moves it to the model's device."""
        if not state:
            return
        self.s = state["s"].detach().clone().to(torch.float32).requires_grad_(True)
        self._optimizer = torch.optim.Adam([self.s], lr=self.lr)
        self._optimizer.load_state_dict(state["optimizer"])
        self.last_s_grad = state.get("last_s_grad")

    def _sqrt_lambda(self, device: torch.device, lam: float) -> Tensor:
        """sqrt of the sampling variance; carries the pathwise s-gradient when lambda is learned."""
        if not self.learned:
            lam = lam if self.variance_cap is None else min(lam, self.variance_cap * self.lambda0)
            return torch.tensor(math.sqrt(lam), device=device)
        s = self._ensure_s(device)
        root = torch.exp(s / 2) if self.estimator == "pathwise" else torch.exp(s.detach() / 2)
        if self.variance_cap is not None:  # sample with min(lambda, cap lambda_0); d/ds as if uncapped
            factor = torch.clamp(self.variance_cap * self.lambda0 / s.detach().exp(), max=1.0).sqrt()
            root = root.detach() * factor + (root - root.detach())  # value: capped; gradient: d e^{s/2} / ds
        return root

    def objective(
        self, model: nn.Module, x: Tensor, target: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor], parameter: float
    ) -> Tensor:
        """GC eq. 7: the mean over ``samples`` draws of the loss at theta + sqrt(lambda) eps."""
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        device = next(iter(params.values())).device
        root = self._sqrt_lambda(device, parameter)
        self._m = sum(p.numel() for p in params.values())
        self._losses, self._eps_sq = [], []
        total = 0.0
        for _ in range(self.samples):
            eps = {k: torch.randn_like(p) for k, p in params.items()}
            moved = {k: p + root * eps[k] for k, p in params.items()}
            loss = loss_fn(functional_call(model, {**moved, **buffers}, (x,)), target)
            self._losses.append(loss.detach())
            if self.estimator == "score":  # ||eps||^2 enters only the score-function estimator
                self._eps_sq.append(sum(e.pow(2).sum() for e in eps.values()).detach())
            total = total + loss
        return total / self.samples

    def s_gradient(self) -> Tensor:
        """dg/ds for the last objective: the chosen estimator plus the regularization (GC eq. 12)."""
        s = self.s
        if self.estimator == "pathwise":
            grad = s.grad.detach().clone() if s.grad is not None else torch.zeros_like(s)
        else:
            grad = score_s_gradient(torch.stack(self._losses), torch.stack(self._eps_sq), self._m)
        lam = s.detach().exp()
        scale = lam / self.lambda0 if self.regularization == "authors" else lam
        return grad + self.beta * self._m * scale

    def after_backward(self, model: nn.Module) -> None:
        """Estimate dg/ds and, after the warm-up, take one step of s's own Adam (GC Algorithm 2)."""
        if not self.learned or self.s is None:
            return
        grad = self.s_gradient()
        self.last_s_grad = grad  # kept on the device: no host sync per step
        self._optimizer.zero_grad(set_to_none=True)
        if self._epoch >= self.warmup_epochs:
            self.s.grad = grad.to(self.s.dtype)
            self._optimizer.step()
        self.s.grad = None
