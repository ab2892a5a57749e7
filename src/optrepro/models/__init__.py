"""Plain ``nn.Module`` networks, free of any training logic."""

from optrepro.models.mlp import MLP

__all__ = ["MLP"]
