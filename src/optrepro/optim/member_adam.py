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
        self._lrs_on: dict[torch.device, Tensor] = {}
        self._buffers: dict[int, dict[str, Tensor]] = {}
        self.active = torch.ones(self.members, dtype=torch.bool)

    @property
    def active(self) -> Tensor:
        """``[members]`` bool, on the CPU: the members that step (copied to the device once, when it changes)."""
        return self._active

    @active.setter
    def active(self, mask: Tensor) -> None:
        self._active = mask.detach().to("cpu", torch.bool)
        self._all_active = bool(self._active.all())
        self._active_on: dict[torch.device, Tensor] = {}

    def _lrs_at(self, device: torch.device) -> Tensor:
        if device not in self._lrs_on:
            self._lrs_on[device] = self.lrs.to(device)
        return self._lrs_on[device]

    def _active_at(self, device: torch.device) -> Tensor:
        if device not in self._active_on:
            self._active_on[device] = self._active.to(device)
        return self._active_on[device]

    # The state of a group lives under its first parameter: step ``[members]`` and both moments as one
    # ``[members, n]`` tensor, row i holding member i's elements of every parameter in turn, so that a step is a fixed
    # number of operations (kernel launches on a GPU) however many parameter tensors the model has, and per-member
    # values broadcast as ``[members, 1]``.
    def _params(self, group: dict) -> list[Tensor]:
        return [p for p in group["params"] if p.grad is not None]

    def _state(self, group: dict) -> dict[str, Tensor]:
        first = group["params"][0]
        state = self.state[first]
        if not state:
            n = sum(p[0].numel() for p in group["params"])
            state["step"] = torch.zeros(self.members, dtype=torch.float64, device=first.device)
            state["exp_avg"] = torch.zeros(self.members, n, dtype=first.dtype, device=first.device)
            state["exp_avg_sq"] = torch.zeros(self.members, n, dtype=first.dtype, device=first.device)
        return state

    def _work(self, group: dict, like: Tensor) -> dict[str, Tensor]:
        """Two ``[members, n]`` buffers a step writes into (no allocation per step; not state)."""
        work = self._buffers.get(id(group))
        if work is None or work["grad"].device != like.device:
            n = sum(p[0].numel() for p in group["params"])
            work = {k: torch.empty(self.members, n, dtype=like.dtype, device=like.device) for k in ("grad", "denom")}
            self._buffers[id(group)] = work
        return work

    def _rows(self, tensors: list[Tensor]) -> Tensor:
        """``[members, ...]`` tensors -> one ``[members, n]`` tensor (one copy)."""
        return torch.cat([t.reshape(self.members, -1) for t in tensors], 1)

    def member_steps(self) -> Tensor:
        """``[members]``: the optimizer steps each member has taken (0 before its first)."""
        for group in self.param_groups:
            state = self.state[group["params"][0]]
            if state:
                return state["step"].detach().cpu().to(torch.int64)
        return torch.zeros(self.members, dtype=torch.int64)

    def member_lrs(self) -> list[float]:
        """Each member's learning rate now: its own rate times the group's (scheduled) factor."""
        factor = self.param_groups[0]["lr"]
        return [lr * factor for lr in self.lrs.tolist()]

    def reset(self, mask: Tensor) -> None:
        """Members where ``mask`` is true start again: zero moments, step 0."""
        for group in self.param_groups:
            for value in self.state[group["params"][0]].values():
                value[mask.to(value.device)] = 0

    def copy_members(self, src: list[int], dst: list[int]) -> None:
        """Member ``dst[k]`` takes member ``src[k]``'s moments and step count."""
        for group in self.param_groups:
            for value in self.state[group["params"][0]].values():
                value[dst] = value[src]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = self._params(group)
            if not params:
                continue
            if len(params) != len(group["params"]):
                raise RuntimeError("MemberAdam needs a gradient for every parameter of a group (or for none)")
            beta1, beta2 = group["betas"]
            state = self._state(group)
            device, dtype = params[0].device, params[0].dtype
            active = self._active_at(device)
            step = state["step"]
            step += active  # a member that has not started keeps step 0
            work = self._work(group, params[0])
            grad = torch.cat([p.grad.reshape(self.members, -1) for p in params], 1, out=work["grad"])
            if group["weight_decay"] != 0:
                grad.add_(self._rows(params), alpha=group["weight_decay"])
            if not self._all_active:  # a waiting member's state stays zero (weight decay would move it)
                grad.mul_(active.to(dtype).view(-1, 1))  # its gradient is finite: its loss is masked
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            # per member, in double precision as torch does with Python floats; a member at step 0 divides by 1
            counted = torch.where(active, step, torch.ones_like(step))
            bias1, bias2 = 1 - beta1**counted, 1 - beta2**counted
            lr = self._lrs_at(device) * group["lr"] * active
            step_size = (-(lr / bias1)).to(dtype).view(-1, 1)
            bias2_sqrt = (bias2**0.5).to(dtype).view(-1, 1)
            denom = torch.sqrt(exp_avg_sq, out=work["denom"]).div_(bias2_sqrt).add_(group["eps"])
            update = torch.mul(step_size, exp_avg, out=grad).div_(denom)  # addcdiv's order: (value * t1) / t2
            # each parameter's columns, viewed in its shape (a view: only the leading dimension is strided)
            columns = update.split([p[0].numel() for p in params], 1)
            torch._foreach_add_(params, [u.view(p.shape) for u, p in zip(columns, params)])
        return loss
