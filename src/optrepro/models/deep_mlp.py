"""The very deep fully connected classifier of GC section 3.1 (Figure 5), after Neelakantan et al. (2017).

``layers`` linear layers (GC: 30; we count the output layer among them, as the ODE models' "5 layers" do), 50
units each, ReLU after every hidden layer; Xavier-uniform weights and zero biases (the authors' code). The network
ends in a softmax layer when ``softmax`` is true, as the authors ran it: the cross-entropy loss on top of it then
applies a second softmax (PAPERS.md); ``softmax: false`` gives the usual logits.
"""

from __future__ import annotations

from torch import Tensor, nn

from optrepro.models.mlp import linear_stack


class DeepMLP(nn.Module):
    """``[B, C, H, W]`` (or ``[B, in_features]``) -> ``[B, num_classes]``: flatten, then the deep ReLU MLP."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 50, layers: int = 30, softmax: bool = True):
        super().__init__()
        if layers < 1 or hidden < 1:
            raise ValueError(f"DeepMLP needs layers >= 1 and hidden >= 1, got layers={layers}, hidden={hidden}")
        self.net = linear_stack([in_features] + [hidden] * (layers - 1) + [num_classes], "relu", "xavier")
        self.softmax = bool(softmax)

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x.flatten(1))
        return out.softmax(-1) if self.softmax else out
