"""VGG 11/13/16/19 (Simonyan & Zisserman 2015, configurations A, B, D, E) for 32x32 inputs, with or without batch
norm. The classifier is one linear layer 512 -> num_classes on the 512 x 1 x 1 features left by the five poolings
(the usual CIFAR variant; the ImageNet 4096-4096 head is not used)."""

from __future__ import annotations

import torch
from torch import nn

from optrepro.models.mlp import activation_class

CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """3x3 convolutions with padding 1, 2x2 max pooling at each "M"; batch norm after each convolution if asked."""

    def __init__(
        self, in_channels: int, num_classes: int, depth: int = 16, batch_norm: bool = True, activation: str = "relu"
    ):
        super().__init__()
        if depth not in CFGS:
            raise ValueError(f"model.depth={depth} is not one of {sorted(CFGS)}")
        act = activation_class(activation)
        layers: list[nn.Module] = []
        c = in_channels
        for v in CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(act())
            c = v
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
