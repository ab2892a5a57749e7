"""Fully connected networks, and the stack of linear layers every fully connected model here is built from."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}
INITS = ("default", "xavier")


def activation_class(name: str) -> type[nn.Module]:
    """The activation ``model.activation`` names, or a ValueError listing the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation={name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def linear_stack(widths: list[int], activation: str = "relu", init: str = "default") -> nn.Sequential:
    """Linear layers ``widths[0] -> widths[1] -> ... -> widths[-1]``, ``activation`` after each but the last.

    ``init``: ``default`` keeps PyTorch's initialization of ``nn.Linear``; ``xavier`` redraws each weight
    Xavier-uniform and zeroes each bias (the GC authors' code), right after that layer is made, so the draws come
    in the same order as in a layer-by-layer build.
    """
    if len(widths) < 2:
        raise ValueError(f"a stack of linear layers needs at least two widths, got {widths}")
    act = activation_class(activation)
    if init not in INITS:
        raise ValueError(f"init={init!r} is not one of {INITS}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(a, b)
        if init == "xavier":
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class MLP(nn.Sequential):
    """``in_features -> hidden x depth -> out_features`` with an activation after every hidden layer.

    The HT sine regressor is ``MLP(1, 1, hidden=100, depth=6)`` with ReLU (HT section 5.1). Layers use
    PyTorch's default initialization.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int, activation: str = "relu"):
        if depth < 1 or hidden < 1:
            raise ValueError(f"MLP needs depth >= 1 and hidden >= 1, got depth={depth}, hidden={hidden}")
        super().__init__(*linear_stack([in_features] + [hidden] * depth + [out_features], activation))
