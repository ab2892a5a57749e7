"""Network-in-Network (Lin et al. 2014) as modified in the thesis (TH section 2.6.2 and Table 4.1 problem (c)).

Layer list from the author's public Keras code (PAPERS.md): three mlpconv blocks
[conv5x5 192, conv1x1 160, conv1x1 96, maxpool 3/2, dropout 0.5]
[conv5x5 192, conv1x1 192, conv1x1 192, avgpool 3/2, dropout 0.5]
[conv3x3 192, conv1x1 192, conv1x1 n_classes, global avgpool], then one dense n_classes -> n_classes layer (the
thesis's "modification"); 967,096 parameters on CIFAR-10 without batch norm. Chapter 2 uses ReLU without batch norm,
chapter 4 (problem (c)) batch norm and ELU.
"""

from __future__ import annotations

import torch
from torch import nn

from optrepro.models.mlp import activation_class


class NiN(nn.Module):
    """Convolutions keep the spatial size ("same" padding); pooling windows 3, stride 2, padding 1 (32 -> 16 -> 8;
    the padding is not stated in the paper). With ``batch_norm`` every convolution is followed by batch norm before
    its activation; the activation follows every convolution, the last one included (not stated in the paper).
    The network returns logits (the softmax is in the loss)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        batch_norm: bool = False,
        activation: str = "relu",
        dropout: float = 0.5,
    ):
        super().__init__()
        act = activation_class(activation)

        def conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, padding=k // 2)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            return layers + [act()]

        self.features = nn.Sequential(
            *conv(in_channels, 192, 5),
            *conv(192, 160, 1),
            *conv(160, 96, 1),
            nn.MaxPool2d(3, 2, padding=1),
            nn.Dropout(dropout),
            *conv(96, 192, 5),
            *conv(192, 192, 1),
            *conv(192, 192, 1),
            nn.AvgPool2d(3, 2, padding=1),
            nn.Dropout(dropout),
            *conv(192, 192, 3),
            *conv(192, 192, 1),
            *conv(192, num_classes, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dense = nn.Linear(num_classes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x))
