"""A model trained for one or several seeds, behind one interface: ``[members, batch, ...] -> [members, ...]``.

``SingleMember`` is a plain model; ``VmappedEnsemble`` stacks N copies' parameters along a new leading
dimension and evaluates them with ``torch.func.vmap``. With an elementwise optimizer (Adam, SGD) and a loss that
is the sum of the members' own losses, each member's parameters receive exactly the gradient and the update they
would receive alone: the ensemble is N independent runs that share kernel launches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from optrepro.utils import member_seed

INIT_STREAM = 3


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

    def __init__(self, models: list[nn.Module]):
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

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = {k.replace("/", "."): v for k, v in self.params.items()}
        buffers = {k: getattr(self, "buf_" + k.replace(".", "/")) for k in self._buffer_names}
        return params, buffers

    def forward(self, x: Tensor) -> Tensor:
        skeleton = self._skeleton[0]

        def one(params, buffers, xi):
            return functional_call(skeleton, (params, buffers), (xi,))

        params, buffers = self._state()
        return vmap(one)(params, buffers, x)

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        params, buffers = self._state()
        return {k: v[i].detach().clone() for k, v in {**params, **buffers}.items()}


def build_members(make_model: Callable[[], nn.Module], seeds: list[int], compile: bool = False) -> Members:
    """One model per seed, each initialized from its own seed, as a single model or a vmapped ensemble.

    ``compile``: the single model goes through ``torch.compile`` (a vmapped ensemble is not compiled).
    """
    models = []
    for s in seeds:
        torch.manual_seed(member_seed(s, INIT_STREAM))
        models.append(make_model())
    if len(models) > 1:
        if compile:
            raise ValueError("compile=True is for a single model; a vmapped ensemble is not compiled")
        return VmappedEnsemble(models)
    return SingleMember(torch.compile(models[0]) if compile else models[0])
