"""A model trained for one or several seeds, behind one interface: ``[members, batch, ...] -> [members, ...]``.

``SingleMember`` is a plain model; ``VmappedEnsemble`` stacks N copies' parameters along a new leading
dimension and evaluates them with ``torch.func.vmap``. With an elementwise optimizer (Adam, SGD) and a loss that
is the sum of the members' own losses, each member's parameters receive exactly the gradient and the update they
would receive alone: the ensemble is N independent runs that share kernel launches.

A stack of ``nn.Linear`` layers and elementwise activations (``models.MLP``, ``linear_stack``) skips ``vmap``: its
forward is written out as the operations ``vmap`` dispatches for it (per layer one ``bmm`` of the inputs with the
transposed weights, then the bias added), so its outputs and gradients are the same bits, without ``vmap``'s and
``functional_call``'s per-call host work (tests/test_ensemble.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from optrepro.utils import member_seed

INIT_STREAM = 3
#: activations applied elementwise: on stacked members they compute what ``vmap`` computes
ELEMENTWISE = (nn.ReLU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.GELU, nn.Identity)


def linear_plan(model: nn.Module) -> list[tuple[str, str | None] | nn.Module] | None:
    """The layers of ``model`` as ``(weight name, bias name or None)`` for each ``nn.Linear`` and the module for
    each elementwise activation, when ``model`` is a plain ``nn.Sequential`` of only those (its forward not
    overridden) without buffers; None otherwise (``vmap`` evaluates it)."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None
    if any(True for _ in model.buffers()):
        return None
    plan: list[tuple[str, str | None] | nn.Module] = []
    for name, layer in model.named_children():
        if type(layer) is nn.Linear:
            plan.append((f"{name}/weight", f"{name}/bias" if layer.bias is not None else None))
        elif type(layer) in ELEMENTWISE:
            plan.append(layer)
        else:
            return None
    return plan


class Members(nn.Module):
    """Common interface of ``SingleMember`` and ``VmappedEnsemble``."""

    size: int

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        raise NotImplementedError


class SingleMember(Members):
    """One ordinary model, fed batches with a member dimension of size 1 (a tensor, or a tuple of tensors: the
    neural ODE's ``(mu, x0)``)."""

    size = 1

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor | tuple[Tensor, ...]) -> Tensor:
        inputs = tuple(t[0] for t in x) if isinstance(x, tuple | list) else x[0]
        return self.model(inputs).unsqueeze(0)

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        return self.model.state_dict()


class VmappedEnsemble(Members):
    """N models of one architecture with stacked parameters, evaluated as one vmapped function."""

    def __init__(self, models: list[nn.Module], compile: bool = False):
        super().__init__()
        if len(models) < 2:
            raise ValueError("VmappedEnsemble needs at least two models; use SingleMember for one")
        self.size = len(models)
        params, buffers = stack_module_state(models)
        # ParameterDict keys cannot contain '.', so parameter paths are stored with '/' instead.
        self.params = nn.ParameterDict({k.replace(".", "/"): nn.Parameter(v) for k, v in params.items()})
        for k, v in buffers.items():
            self.register_buffer("buf_" + k.replace(".", "/"), v)
        self._buffer_names = list(buffers)
        # A stateless copy on the meta device: only its structure is used, by functional_call.
        self._skeleton = [copy.deepcopy(models[0]).to("meta")]
        self._plan = linear_plan(self._skeleton[0])
        # compile: the whole vmapped (or linear-stack) forward through torch.compile, parameters read at each call
        self._forward = [torch.compile(self._eager_forward) if compile else self._eager_forward]

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = {k.replace("/", "."): v for k, v in self.params.items()}
        buffers = {k: getattr(self, "buf_" + k.replace(".", "/")) for k in self._buffer_names}
        return params, buffers

    def forward(self, x: Tensor) -> Tensor:
        return self._forward[0](x)

    def _eager_forward(self, x: Tensor) -> Tensor:
        if self._plan is not None and isinstance(x, Tensor) and x.dim() == 3:
            return self._linear_forward(x)
        skeleton = self._skeleton[0]

        def one(params, buffers, xi):
            return functional_call(skeleton, (params, buffers), (xi,))

        params, buffers = self._state()
        return vmap(one)(params, buffers, x)

    def _linear_forward(self, h: Tensor) -> Tensor:
        """``[members, batch, in] -> [members, batch, out]`` through the Linear/activation stack: what ``vmap``
        dispatches for ``nn.Linear`` (``bmm`` with the transposed weight, then ``+ bias``; its ``bias * 1`` is exact
        and left out). Parameters are read at each call, so ``functional_call`` on the ensemble (GC) still works."""
        params = self.params
        for step in self._plan:
            if isinstance(step, nn.Module):
                h = step(h)
                continue
            weight, bias = step
            h = torch.bmm(h, params[weight].mT)
            if bias is not None:
                h = params[bias].unsqueeze(1) + h
        return h

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        params, buffers = self._state()
        return {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}


def build_members(make_model: Callable[[], nn.Module], seeds: list[int], compile: bool = False) -> Members:
    """One model per seed, each initialized from its own seed, as a single model or a vmapped ensemble.

    ``compile``: the single model, or the ensemble's forward, goes through ``torch.compile``.
    """
    models = []
    for s in seeds:
        torch.manual_seed(member_seed(s, INIT_STREAM))
        models.append(make_model())
    if len(models) > 1:
        return VmappedEnsemble(models, compile=compile)
    return SingleMember(torch.compile(models[0]) if compile else models[0])
