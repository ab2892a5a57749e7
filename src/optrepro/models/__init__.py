"""Plain ``nn.Module`` networks, free of any training logic."""

from optrepro.models.deep_mlp import DeepMLP
from optrepro.models.mlp import MLP
from optrepro.models.ode_mlp import NeuralODE

__all__ = ["DeepMLP", "MLP", "NeuralODE"]
