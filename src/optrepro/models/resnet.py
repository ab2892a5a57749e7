"""ResNet-20 for 32x32 images (He et al. 2016, section 4.2), the network of TH Table 4.1 problems (a) and (b)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from optrepro.models.mlp import activation_class


class _ShortcutA(nn.Module):
    """Option-A shortcut: identity subsampled with stride 2 and zero-padded to the new width (no parameters)."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, plus the shortcut, then the activation."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = activation_class(activation)()
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else _ShortcutA(c_out - c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-(6n+2) with n = 3: conv3x3 16, three stages of ``blocks`` basic blocks at 16/32/64 channels (the
    second and third start with stride 2), global average pooling, one linear layer. Shortcuts are option A (He et
    al. 2016): no projection parameters, 269,722 parameters for 10 classes. Kaiming-normal conv init.
    """

    def __init__(self, in_channels: int, num_classes: int, blocks: int = 3, activation: str = "relu"):
        super().__init__()
        self.act = activation_class(activation)()
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, c_in = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(c_in, width, stride, activation))
                c_in = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.act(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
