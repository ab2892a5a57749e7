"""Fully connected networks."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """``in_features -> hidden x depth -> out_features`` with an activation after every hidden layer.

    The HT sine regressor is ``MLP(1, 1, hidden=100, depth=6)`` with ReLU (HT section 5.1). Layers use
    PyTorch's default initialization.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int, activation: str = "relu"):
        if depth < 1 or hidden < 1:
            raise ValueError(f"MLP needs depth >= 1 and hidden >= 1, got depth={depth}, hidden={hidden}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={activation!r} is not one of {sorted(ACTIVATIONS)}")
        widths = [in_features] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], out_features))
        super().__init__(*layers)
