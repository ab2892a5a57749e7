"""The dense MNIST auto-encoder of Hinton & Salakhutdinov (2006), TH Table 4.1 problem (d): 784-1000-500-250-30
and the mirrored decoder 30-250-500-1000-784, SiLU, trained with the mean-squared error."""

from __future__ import annotations

import torch
from torch import nn

from optrepro.models.mlp import linear_stack


class AutoEncoder(nn.Module):
    """Input ``[B, C, H, W]`` (or already flat), output ``[B, C*H*W]``: the reconstruction of the flattened input.

    The activation follows every layer except the 30-unit code layer and the output layer, which are linear (as in
    Hinton & Salakhutdinov's code layer; the output activation is not stated in the paper).
    """

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        hidden: tuple[int, ...] = (1000, 500, 250),
        code: int = 30,
        activation: str = "silu",
    ):
        super().__init__()
        encoder_widths = [in_channels * height * width, *hidden, code]
        self.encoder = linear_stack(encoder_widths, activation)
        self.decoder = linear_stack(encoder_widths[::-1], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(torch.flatten(x, 1)))
