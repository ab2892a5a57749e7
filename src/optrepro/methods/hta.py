"""HTA, the homotopy training algorithm: two coupled copies of the parameters, each half-pinned to an anchor.

HTA eq. 3, with Theta = (theta, eta) and the homotopy parameter L > 0:

    H(Theta, L) = f(theta) + L ||theta_1 - t_1||^2 + f(eta) + L ||eta_2 - t_2||^2 + (1/L) ||theta - eta||^2

theta_1 / theta_2 (and eta_1 / eta_2) are the two groups of a split of the parameters; t = (t_1, t_2) a fixed point
(0 "as in dropout", or random). The anchor terms pin the FIRST group of theta and the SECOND group of eta: for large
L, theta only moves theta_2 and eta only moves eta_1 (the paper's remark after eq. 3 and its eq. 35 and 37 for the
test function say the same: theta_2 and eta_1 are solved while theta_1 = t_1, eta_2 = t_2), so the two copies solve
two decoupled half-size problems; as L -> 0 the 1/L coupling forces theta = eta, the original problem. Predictions
and test metrics use theta (``eval_model``).

The split (HTA section 2): for convolutional and linear layers, the first and second half of each layer's output
units (``split=units``: rows of every weight, entries of every bias and normalization vector); for MLPs also the
first and second half of the layers (``split=layers``) or a random element-wise split (``split=random``). Every
parameter element is in exactly one group.

``variant=paper`` (default) is eq. 3 on two full copies with squared norms. ``variant=authors`` follows the
authors' public code as PAPERS.md describes it: the two copies share the convolutional trunk and only the
classifier (linear layers) is duplicated, split, anchored at 0 and coupled, with unsquared norms. ``scope``
(``all | conv | classifier``) says which layers are duplicated; the others are shared by theta and eta (one
tensor, so no anchor or coupling term for them): HTA Figure 3 applies the homotopy to the conv part only.

Batch-norm buffers: each copy keeps its own running statistics, updated only by its own forward pass, so theta's
statistics (used at test time) never see eta's activations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from optrepro.config import ConfigError
from optrepro.methods.base import Method

SPLITS = ("units", "layers", "random")
SCOPES = ("all", "conv", "classifier")
ANCHORS = ("zero", "init", "random")
VARIANTS = {"paper": {"scope": "all", "squared": True}, "authors": {"scope": "classifier", "squared": False}}


# ---- the split --------------------------------------------------------------------------------------------------
def _owners(model: nn.Module) -> dict[str, nn.Module]:
    """Parameter name -> the module that holds it directly."""
    return {
        f"{prefix}.{n}" if prefix else n: module
        for prefix, module in model.named_modules()
        for n, _ in module.named_parameters(recurse=False)
    }


def scoped_names(model: nn.Module, scope: str) -> list[str]:
    """The parameters that get two copies: all of them, those of the conv part (every layer but the linear ones:
    convolutions and their normalizations), or those of the classifier (the linear layers)."""
    if scope not in SCOPES:
        raise ValueError(f"method.scope={scope!r} is not one of {', '.join(SCOPES)}")
    owners = _owners(model)
    if scope == "all":
        return list(owners)
    linear = [name for name, module in owners.items() if isinstance(module, nn.Linear)]
    return linear if scope == "classifier" else [name for name in owners if name not in linear]


def split_masks(model: nn.Module, names: list[str], rule: str = "units", seed: int = 0) -> dict[str, Tensor]:
    """For each parameter in ``names``, a bool mask of its shape: True = group 1, False = group 2 (HTA section 2).

    ``units``: the first ceil(out / 2) output units (dim 0) of every tensor; ``layers``: the parameters of the first
    ceil(n / 2) of the n layers (modules holding parameters, in definition order); ``random``: each element in group
    1 with probability 1/2, drawn from ``seed`` (the dropout-style split).
    """
    params = dict(model.named_parameters())
    if rule == "units":
        masks = {}
        for name in names:
            p = params[name]
            mask = torch.zeros_like(p, dtype=torch.bool)
            if p.dim() == 0:
                mask.fill_(True)
            else:
                mask[: math.ceil(p.shape[0] / 2)] = True
            masks[name] = mask
        return masks
    if rule == "layers":
        owners = _owners(model)
        layers = list(dict.fromkeys(id(owners[n]) for n in names))
        first = set(layers[: math.ceil(len(layers) / 2)])
        return {n: torch.full_like(params[n], id(owners[n]) in first, dtype=torch.bool) for n in names}
    if rule == "random":
        g = torch.Generator().manual_seed(seed)
        return {n: torch.rand(params[n].shape, generator=g) < 0.5 for n in names}
    raise ValueError(f"method.split={rule!r} is not one of {', '.join(SPLITS)}")


# ---- the two copies ---------------------------------------------------------------------------------------------
def _key(name: str) -> str:
    return name.replace(".", "__")


class CoupledCopies(nn.Module):
    """theta (the network itself) and eta (a copy of the parameters in ``names``; the others are theta's own).

    ``eta`` starts equal to theta (not stated in the paper). The split masks and non-zero anchors are buffers, so
    they follow the module to its device and into checkpoints.
    """

    def __init__(self, model: nn.Module, names: list[str], masks: dict[str, Tensor], anchors: dict[str, Tensor]):
        super().__init__()
        self.theta = model
        self.eta = copy.deepcopy(model)
        self.names = list(names)
        shared = [n for n, _ in model.named_parameters() if n not in set(names)]
        for name in shared:  # eta uses theta's tensor for these: drop its own copy
            prefix, _, leaf = name.rpartition(".")
            owner = self.eta.get_submodule(prefix) if prefix else self.eta
            del owner._parameters[leaf]
            setattr(owner, leaf, None)
        self.shared = shared
        for name in names:
            self.register_buffer(f"mask_{_key(name)}", masks[name])
            if name in anchors:
                self.register_buffer(f"anchor_{_key(name)}", anchors[name].detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.theta(x)

    def forward_eta(self, x: Tensor) -> Tensor:
        if not self.shared:
            return self.eta(x)
        theta = dict(self.theta.named_parameters())
        return functional_call(self.eta, {n: theta[n] for n in self.shared}, (x,))

    def pairs(self):
        """(name, theta's tensor, eta's tensor, group-1 mask, anchor or None) for each duplicated parameter."""
        theta, eta = dict(self.theta.named_parameters()), dict(self.eta.named_parameters())
        for name in self.names:
            key = _key(name)
            yield name, theta[name], eta[name], getattr(self, f"mask_{key}"), getattr(self, f"anchor_{key}", None)


def penalty_terms(copies: CoupledCopies) -> tuple[Tensor, Tensor, Tensor]:
    """The squared norms of HTA eq. 3: (||theta_1 - t_1||^2, ||eta_2 - t_2||^2, ||theta - eta||^2)."""
    a1 = a2 = c = 0.0
    for _, th, et, mask, anchor in copies.pairs():
        dt, de = (th, et) if anchor is None else (th - anchor, et - anchor)
        a1 = a1 + torch.where(mask, dt, 0.0).pow(2).sum()
        a2 = a2 + torch.where(mask, 0.0, de).pow(2).sum()
        c = c + (th - et).pow(2).sum()
    zero = next(copies.theta.parameters()).new_zeros(())
    return tuple(t if torch.is_tensor(t) else zero for t in (a1, a2, c))


class HTA(Method):
    """HTA eq. 3 as a method: ``wrap_model`` makes the two copies, ``objective`` is H(Theta, L), ``eval_model`` theta.

    ``squared=False`` uses the norms themselves (the authors' code). ``anchor``: ``zero`` (t = 0, as dropout),
    ``init`` (t = the initial parameters; HTA eq. 35 anchors at the initial guess) or ``random`` (t ~ N(0,
    anchor_std^2), not stated in the paper).
    """

    name = "hta"
    parameter_name = "homotopy/L"

    def __init__(
        self,
        schedule: Callable[[int], float],
        name: str = "hta",
        variant: str = "paper",
        scope: str | None = None,
        squared: bool | None = None,
        split: str = "units",
        anchor: str = "zero",
        anchor_std: float = 1.0,
        seed: int = 0,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"method.variant={variant!r} is not one of {', '.join(VARIANTS)}")
        if anchor not in ANCHORS:
            raise ValueError(f"method.anchor={anchor!r} is not one of {', '.join(ANCHORS)}")
        if split not in SPLITS:
            raise ValueError(f"method.split={split!r} is not one of {', '.join(SPLITS)}")
        self.name, self.schedule, self.variant = name, schedule, variant
        self.scope = VARIANTS[variant]["scope"] if scope is None else scope
        if self.scope not in SCOPES:
            raise ValueError(f"method.scope={self.scope!r} is not one of {', '.join(SCOPES)}")
        self.squared = VARIANTS[variant]["squared"] if squared is None else bool(squared)
        self.split, self.anchor, self.anchor_std, self.seed = split, anchor, anchor_std, seed
        self._last: dict[str, Tensor] = {}

    def requirements(self) -> dict[str, str]:
        return {
            "single_member": "it splits one network's parameters into two groups per layer and couples two copies "
            "of them (the stacked parameters of an ensemble would be split along the members)"
        }

    def parameter(self, epoch: int) -> float:
        return float(self.schedule(epoch))

    def wrap_model(self, model: nn.Module) -> CoupledCopies:
        names = scoped_names(model, self.scope)
        if not names:
            network = getattr(model, "model", model)  # the network inside a SingleMember
            raise ConfigError(
                f"method={self.name} cannot train this model: method.scope={self.scope!r} selects no parameter of "
                f"{type(network).__name__}"
            )
        masks = split_masks(model, names, self.split, self.seed)
        params = dict(model.named_parameters())
        if self.anchor == "init":
            anchors = {n: params[n].detach() for n in names}
        elif self.anchor == "random":
            g = torch.Generator().manual_seed(self.seed + 1)
            anchors = {n: self.anchor_std * torch.randn(params[n].shape, generator=g) for n in names}
        else:
            anchors = {}
        return CoupledCopies(model, names, masks, anchors)

    def eval_model(self, model: nn.Module) -> nn.Module:
        return model.theta if isinstance(model, CoupledCopies) else model

    def objective(
        self, model: nn.Module, x: Tensor, target: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor], parameter: float
    ) -> Tensor:
        """H(Theta, L), HTA eq. 3 (``parameter`` is L)."""
        if not isinstance(model, CoupledCopies):
            raise TypeError("HTA.objective needs the module that HTA.wrap_model returned")
        big_l = float(parameter)
        f_theta = loss_fn(model(x), target)
        f_eta = loss_fn(model.forward_eta(x), target)
        a1, a2, c = penalty_terms(model)
        if not self.squared:  # the authors' code: norms, not squared norms
            a1, a2, c = _norm(a1), _norm(a2), _norm(c)
        h = f_theta + big_l * a1 + f_eta + big_l * a2 + c / big_l
        self._last = {"train/f_theta": f_theta.detach(), "train/f_eta": f_eta.detach(), "homotopy/coupling": c.detach()}
        return h

    def logged(self) -> dict[str, float]:
        """The last step's f(theta), f(eta) and coupling term ||theta - eta|| (squared for the paper's form)."""
        return {k: float(v) for k, v in self._last.items()}


def _norm(square: Tensor) -> Tensor:
    """sqrt of a sum of squares whose gradient at 0 is 0 (the subgradient), not NaN."""
    safe = torch.where(square > 0, square, torch.ones_like(square))
    return torch.where(square > 0, safe.sqrt(), torch.zeros_like(square))
