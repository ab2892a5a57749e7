"""LeNet (LeCun et al. 1998) as in TH Table 4.1 problems (e) and (f): conv5 6, pool, conv5 16, pool, FC 120, FC 84,
FC n_classes, ELU, with (f) or without (e) batch norm."""

from __future__ import annotations

import torch
from torch import nn

from optrepro.models.mlp import activation_class


class LeNet(nn.Module):
    """For ``size`` x ``size`` inputs (32: CIFAR or padded MNIST): 5x5 convolutions without padding, 2x2 max pooling
    (max rather than the original average subsampling: not stated in the paper), so the flattened features are
    16 x 5 x 5. With ``batch_norm``, batch norm follows both convolutions and both hidden dense layers, before the
    activation (placement not stated in the paper). 62,006 parameters on CIFAR-10 without batch norm."""

    def __init__(
        self, in_channels: int, num_classes: int, batch_norm: bool = False, activation: str = "elu", size: int = 32
    ):
        super().__init__()
        side = ((size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs inputs of at least 16x16, got model.size={size}")
        act = activation_class(activation)

        def norm(n: int, dim: int) -> list[nn.Module]:
            if not batch_norm:
                return []
            return [nn.BatchNorm2d(n) if dim == 2 else nn.BatchNorm1d(n)]

        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            *norm(6, 2),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            *norm(16, 2),
            act(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),
            *norm(120, 1),
            act(),
            nn.Linear(120, 84),
            *norm(84, 1),
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
