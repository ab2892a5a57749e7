"""Plain ``nn.Module`` networks, free of any training logic."""

from optrepro.models.mlp import MLP
from optrepro.models.vgg_type import VGGType

__all__ = ["MLP", "VGGType"]
