"""Adam for a packed ensemble: each member its own learning rate, its own step count and its own start.

A vmapped ensemble stacks its members' parameters along dim 0, so one ``torch.optim.Adam`` gives every member the
same learning rate and one step count per stacked tensor. The jobs a packed sweep trains together
(``optrepro.packed``) differ in both: a sweep over ``optimizer.lr``, and members that start later than
others (random initialization has no source pre-training, so it idles while the other methods pre-train). This
optimizer keeps per-member learning rates and step counts as ``[members]`` tensors; a member that has not started
(``active`` false) takes no step and its state stays zero.

Each member's update is torch's single-tensor Adam operation for operation (``torch.optim.adam``: the same
``lerp_``, ``addcmul_``, bias corrections in double precision, and ``addcdiv``'s order of products), so a member
equals an ordinary Adam run to float rounding (tests/test_packed.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

#: Adam's options that have a per-member form here, with torch's defaults; any other option (amsgrad, fused, ...)
#: keeps a job out of a pack (``optrepro.packing``)
ADAM_OPTIONS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


class MemberAdam(torch.optim.Optimizer):
    """Adam over stacked parameters ``[members, ...]`` with member ``i`` at learning rate ``lrs[i]`` times the
    group's ``lr`` (which an lr schedule scales; it starts at 1).

    ``active``: a ``[members]`` bool tensor, the members that step (default all); set it before ``step``.
    ``member_steps()``: the steps each member has taken. ``reset(mask)``: the members of ``mask`` start afresh
    (zero moments, step 0). ``copy_members(src, dst)``: member ``dst[k]`` gets ``src[k]``'s state.
    """

    elementwise = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lrs: list[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if any(lr <= 0 for lr in lrs):
            raise ValueError(f"every member's learning rate must be > 0, got {lrs}")
        super().__init__(params, {"lr": 1.0, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        self.members = len(lrs)
        self.lrs = torch.tensor([float(lr) for lr in lrs], dtype=torch.float64)
        for group in self.param_groups:
            for p in group["params"]:
                if p.shape[:1] != (self.members,):
                    raise ValueError(
                        f"a parameter of shape {tuple(p.shape)} is not stacked over {self.members} members"
                    )
        self.active = torch.ones(self.members, dtype=torch.bool)

    def _state(self, p: Tensor) -> dict[str, Tensor]:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros(self.members, dtype=torch.float64, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def member_steps(self) -> Tensor:
        """``[members]``: the optimizer steps each member has taken (0 before its first)."""
        for group in self.param_groups:
            for p in group["params"]:
                if self.state[p]:
                    return self.state[p]["step"].detach().cpu().to(torch.int64)
        return torch.zeros(self.members, dtype=torch.int64)

    def member_lrs(self) -> list[float]:
        """Each member's learning rate now: its own rate times the group's (scheduled) factor."""
        factor = self.param_groups[0]["lr"]
        return [lr * factor for lr in self.lrs.tolist()]

    def reset(self, mask: Tensor) -> None:
        """Members where ``mask`` is true start again: zero moments, step 0."""
        for group in self.param_groups:
            for p in group["params"]:
                if self.state[p]:
                    for value in self.state[p].values():
                        value[mask.to(value.device)] = 0

    def copy_members(self, src: list[int], dst: list[int]) -> None:
        """Member ``dst[k]`` takes member ``src[k]``'s moments and step count."""
        for group in self.param_groups:
            for p in group["params"]:
                for value in self.state[p].values():
                    value[dst] = value[src]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p)
                active = self.active.to(p.device)
                step = state["step"]
                step += active  # a member that has not started keeps step 0
                grad = p.grad
                shape = (self.members,) + (1,) * (p.dim() - 1)
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                if not bool(self.active.all()):  # a waiting member's state stays zero (weight decay would move it)
                    grad = torch.where(active.view(shape), grad, torch.zeros_like(grad))
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                # per member, in double precision as torch does with Python floats; a member at step 0 divides by 1
                counted = torch.where(active, step, torch.ones_like(step))
                bias1, bias2 = 1 - beta1**counted, 1 - beta2**counted
                lr = self.lrs.to(p.device) * group["lr"] * active
                step_size = (-(lr / bias1)).to(p.dtype).view(shape)
                bias2_sqrt = (bias2**0.5).to(p.dtype).view(shape)
                denom = (state["exp_avg_sq"].sqrt() / bias2_sqrt).add_(group["eps"])
                p.add_(step_size * state["exp_avg"] / denom)  # addcdiv's order: (value * t1) / t2
        return loss
