"""The "VGG-type" network of HT section 5.2 (Figures 3a, 3b).

The paper names only "a VGG-type of network (Karen & Andrew, 2015)". Our choice, stated in docs/ht.md: VGG's
pattern (Simonyan & Zisserman 2015) at MNIST scale: blocks of ``convs_per_block`` 3x3 convolutions (padding 1,
ReLU) closed by a 2x2 max pool, widths doubling from block to block (default 32, 64, 128), then one hidden
fully connected layer (default 256 units, ReLU) and the ``num_classes`` logits. No batch norm and no dropout, so
the train loss it reports is that of the network as it is (as in VGG's original form). The input is given
explicitly (``in_channels``, ``input_size``): 28x28x1 for MNIST -> FashionMNIST, 32x32x3 for MNIST -> CIFAR-10.
"""

from __future__ import annotations

from torch import Tensor, nn


class VGGType(nn.Module):
    """``[conv3x3-ReLU] x convs_per_block -> maxpool2`` per width, then ``Linear-ReLU-Linear`` to the logits."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        input_size: int,
        widths: list[int] = (32, 64, 128),
        convs_per_block: int = 2,
        hidden: int = 256,
    ):
        super().__init__()
        if in_channels < 1 or num_classes < 2 or convs_per_block < 1 or hidden < 1 or not widths:
            raise ValueError(
                f"VGGType needs in_channels >= 1, num_classes >= 2, convs_per_block >= 1, hidden >= 1 and some "
                f"widths; got {in_channels}, {num_classes}, {convs_per_block}, {hidden}, {list(widths)}"
            )
        size = input_size
        layers: list[nn.Module] = []
        c = in_channels
        for width in widths:
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
                c = width
            layers.append(nn.MaxPool2d(2))
            size //= 2
        if size < 1:
            raise ValueError(f"model.input_size={input_size} is too small for {len(widths)} pooling blocks")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c * size * size, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )
        self.input_shape = (in_channels, input_size, input_size)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"VGGType built for inputs {self.input_shape} (C, H, W) got {tuple(x.shape[1:])}")
        return self.classifier(self.features(x))
