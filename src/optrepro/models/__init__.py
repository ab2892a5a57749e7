"""Plain ``nn.Module`` networks, free of any training logic."""

from optrepro.models.autoencoder import AutoEncoder
from optrepro.models.deep_mlp import DeepMLP
from optrepro.models.lenet import LeNet
from optrepro.models.mlp import MLP
from optrepro.models.nin import NiN
from optrepro.models.ode_mlp import NeuralODE
from optrepro.models.resnet import ResNet20
from optrepro.models.vgg import VGG
from optrepro.models.vgg_type import VGGType

__all__ = ["MLP", "AutoEncoder", "DeepMLP", "LeNet", "NeuralODE", "NiN", "ResNet20", "VGG", "VGGType"]
