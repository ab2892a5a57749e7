"""Networks of TH chapters 2 and 4: parameter counts derived by hand, output shapes on each input they meet."""

from __future__ import annotations

import pytest
import torch

from optrepro.models import VGG, AutoEncoder, LeNet, NiN, ResNet20
from optrepro.models.mlp import linear_stack


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def dense(a: int, b: int) -> int:
    return a * b + b


def bn(c: int) -> int:
    return 2 * c  # weight and bias (running statistics are buffers)


def test_resnet20_parameter_count_by_hand():
    stem = conv(3, 16, 3, bias=False) + bn(16)  # 432 + 32
    block = lambda a, b: conv(a, b, 3, False) + bn(b) + conv(b, b, 3, False) + bn(b)  # noqa: E731
    stage1 = 3 * block(16, 16)  # 3 * 4672 = 14016
    stage2 = block(16, 32) + 2 * block(32, 32)  # 13952 + 2 * 18560 = 51072 (option A: shortcut has none)
    stage3 = block(32, 64) + 2 * block(64, 64)  # 55552 + 2 * 73984 = 203520
    head = dense(64, 10)  # 650
    expected = stem + stage1 + stage2 + stage3 + head
    assert expected == 269_722
    assert n_params(ResNet20(3, 10)) == expected
    # CIFAR-100 changes only the head: 64 * 90 more weights and 90 more biases.
    assert n_params(ResNet20(3, 100)) == expected + 90 * 65


def test_resnet20_option_a_shortcut_pads_with_zeros():
    model = ResNet20(3, 10).eval()
    block = model.layers[3]  # first block of stage 2: 16 -> 32 channels, stride 2
    x = torch.randn(2, 16, 8, 8)
    s = block.shortcut(x)
    assert s.shape == (2, 32, 4, 4)
    assert torch.equal(s[:, 8:24], x[:, :, ::2, ::2])
    assert s[:, :8].abs().sum() == 0 and s[:, 24:].abs().sum() == 0


def test_nin_parameter_count_by_hand():
    k = 10
    convs = [(3, 192, 5), (192, 160, 1), (160, 96, 1), (96, 192, 5), (192, 192, 1), (192, 192, 1)]
    convs += [(192, 192, 3), (192, 192, 1), (192, k, 1)]
    expected = sum(conv(*c) for c in convs) + dense(k, k)
    assert expected == 967_096  # "about 0.97M" (PAPERS.md)
    assert n_params(NiN(3, k)) == expected
    with_bn = expected + sum(bn(c[1]) for c in convs)
    assert n_params(NiN(3, k, batch_norm=True, activation="elu")) == with_bn
    # MNIST (one channel): the first convolution loses 2 * 25 * 192 weights.
    assert n_params(NiN(1, k)) == expected - 2 * 25 * 192


def test_lenet_parameter_count_by_hand():
    # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5: 16 * 5 * 5 = 400 features.
    expected = conv(3, 6, 5) + conv(6, 16, 5) + dense(400, 120) + dense(120, 84) + dense(84, 10)
    assert expected == 456 + 2416 + 48120 + 10164 + 850 == 62_006
    assert n_params(LeNet(3, 10)) == expected
    assert n_params(LeNet(3, 10, batch_norm=True)) == expected + bn(6) + bn(16) + bn(120) + bn(84)


def test_autoencoder_parameter_count_by_hand():
    widths = [784, 1000, 500, 250, 30]
    encoder = sum(dense(a, b) for a, b in zip(widths[:-1], widths[1:]))
    decoder = sum(dense(b, a) for a, b in zip(widths[:-1], widths[1:]))
    model = AutoEncoder(1, 28, 28)
    # weights 2 * (784*1000 + 1000*500 + 500*250 + 250*30) = 2,833,000; biases 1780 (encoder) + 2534 (decoder)
    assert n_params(model) == encoder + decoder == 2_833_000 + 1_780 + 2_534
    assert sum(isinstance(m, torch.nn.SiLU) for m in model.modules()) == 6  # code and output layers are linear


def test_vgg_parameter_counts_by_hand():
    # VGG-11: convs 3-64, 64-128, 128-256, 256-256, 256-512, 512-512 x3; classifier 512 -> 10.
    pairs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    plain = sum(conv(a, b, 3) for a, b in pairs) + dense(512, 10)
    assert n_params(VGG(3, 10, depth=11, batch_norm=False)) == plain
    assert n_params(VGG(3, 10, depth=11, batch_norm=True)) == plain + sum(bn(b) for _, b in pairs)
    # VGG-16 adds 64-64, 128-128, 256-256, 512-512, 512-512 to VGG-11.
    extra = conv(64, 64, 3) + conv(128, 128, 3) + conv(256, 256, 3) + 2 * conv(512, 512, 3)
    assert n_params(VGG(3, 10, depth=16, batch_norm=False)) == plain + extra


MNIST, MNIST32, CIFAR = (1, 28, 28), (1, 32, 32), (3, 32, 32)


@pytest.mark.parametrize(
    "make, shape, out",
    [
        (lambda: ResNet20(3, 10), CIFAR, 10),
        (lambda: ResNet20(3, 100), CIFAR, 100),
        (lambda: ResNet20(1, 10), MNIST32, 10),
        (lambda: NiN(1, 10), MNIST32, 10),
        (lambda: NiN(3, 100, batch_norm=True, activation="elu"), CIFAR, 100),
        (lambda: LeNet(3, 10, batch_norm=True), CIFAR, 10),
        (lambda: LeNet(1, 10, size=28), MNIST, 10),
        (lambda: VGG(3, 10, depth=19), CIFAR, 10),
        (lambda: VGG(1, 10, depth=13, batch_norm=False), MNIST32, 10),
        (lambda: AutoEncoder(1, 28, 28), MNIST, 784),
        (lambda: AutoEncoder(1, 32, 32), MNIST32, 1024),
    ],
)
def test_output_shapes(make, shape, out):
    model = make()
    y = model(torch.randn(4, *shape))
    assert y.shape == (4, out)


@pytest.mark.parametrize("model", [NiN, ResNet20, LeNet, VGG])
def test_bad_activation_is_refused(model):
    with pytest.raises(ValueError, match="model.activation='swish' is not one of"):
        model(3, 10, activation="swish")
    with pytest.raises(ValueError, match="model.depth"):
        VGG(3, 10, depth=12)


def test_linear_stack_layers_and_xavier_init():
    """3 -> 5 -> 2 with tanh between: 3*5 + 5 + 5*2 + 2 = 32 parameters; Xavier-uniform weights lie within
    sqrt(6 / (fan_in + fan_out)) (sqrt(6/8) and sqrt(6/7)), biases are zero."""
    torch.manual_seed(0)
    stack = linear_stack([3, 5, 2], "tanh", init="xavier")
    assert [type(m) for m in stack] == [torch.nn.Linear, torch.nn.Tanh, torch.nn.Linear]
    assert n_params(stack) == 32
    for linear, bound in ((stack[0], (6 / 8) ** 0.5), (stack[2], (6 / 7) ** 0.5)):
        assert linear.weight.abs().max() <= bound
        assert torch.equal(linear.bias, torch.zeros_like(linear.bias))
    single = linear_stack([4, 1])  # one layer: linear, no activation
    assert [type(m) for m in single] == [torch.nn.Linear]


def test_linear_stack_refuses_bad_arguments():
    with pytest.raises(ValueError, match="two widths"):
        linear_stack([4])
    with pytest.raises(ValueError, match="model.activation"):
        linear_stack([4, 2], "swish")
    with pytest.raises(ValueError, match="init"):
        linear_stack([4, 2], init="orthogonal")
