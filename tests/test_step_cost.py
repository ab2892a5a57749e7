"""What makes a training step cheaper must not change its results (docs/architecture.md "Many seeds at once")."""

from __future__ import annotations

import functools

import pytest
import torch

from optrepro.ensemble import build_members
from optrepro.models import MLP
from optrepro.optim import INNA
from optrepro.train import FOREACH_SAME_BITS, prefer_foreach

SETTINGS = {
    torch.optim.Adam: [{"lr": 1e-3}, {"lr": 1e-3, "weight_decay": 1e-2}, {"lr": 1e-3, "amsgrad": True}],
    torch.optim.AdamW: [{"lr": 1e-3}],
    torch.optim.SGD: [{"lr": 1e-2}, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}],
    torch.optim.RMSprop: [{"lr": 1e-3}, {"lr": 1e-3, "momentum": 0.9, "centered": True}],
    torch.optim.Adagrad: [{"lr": 1e-2}],
    INNA: [{"lr": 0.05}, {"lr": 0.05, "weight_decay": 0.1}],
}


def train(optimizer, members: int, steps: int = 25) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = build_members(lambda: MLP(1, 1, 16, 3), list(range(members)))
    opt = optimizer(model.parameters())
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.rand(members, 32, 1, generator=gen)
        loss = (model(x) - torch.sin(20 * x)).pow(2).flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize(
    ("cls", "kwargs"), [(cls, kwargs) for cls, settings in SETTINGS.items() for kwargs in settings], ids=str
)
def test_foreach_gives_the_per_tensor_loops_bits_on_the_cpu(cls, kwargs, members):
    """``prefer_foreach`` may choose foreach only where it changes nothing: a torch upgrade that broke this fails
    here (remove the optimizer from ``FOREACH_SAME_BITS`` then)."""
    loop = train(functools.partial(cls, foreach=False, **kwargs), members)
    chosen = prefer_foreach(functools.partial(cls, **kwargs))
    assert chosen.keywords["foreach"] is True
    for a, b in zip(loop, train(chosen, members)):
        assert torch.equal(a, b)


def test_every_listed_optimizer_is_checked():
    assert set(SETTINGS) == set(FOREACH_SAME_BITS)


def test_prefer_foreach_leaves_a_chosen_implementation_and_other_optimizers_alone():
    for keywords in ({"foreach": False}, {"fused": True}, {"differentiable": True}):
        factory = functools.partial(torch.optim.Adam, lr=1e-3, **keywords)
        assert prefer_foreach(factory) is factory
    lbfgs = functools.partial(torch.optim.LBFGS, lr=1.0)
    assert prefer_foreach(lbfgs) is lbfgs


def test_the_trainer_profiles_nothing_at_no_cost_unless_a_profiler_is_chosen(make_cfg, tmp_path):
    from lightning.pytorch.profilers import SimpleProfiler

    from optrepro.trainer import NoProfiler, build_trainer

    quiet = build_trainer(make_cfg(), tmp_path / "a", 1, [], [], False)
    assert isinstance(quiet.profiler, NoProfiler)
    with quiet.profiler.profile("run_training_batch"):
        pass
    chosen = build_trainer(make_cfg("+trainer.profiler=simple"), tmp_path / "b", 1, [], [], False)
    assert isinstance(chosen.profiler, SimpleProfiler)


def test_the_loop_sets_lightnings_hook_name_as_a_plain_attribute(make_cfg, tmp_path):
    """TrainingLoop.__setattr__'s shortcut keeps what nn.Module.__setattr__ would do for those names."""
    from optrepro.loop import TrainingLoop

    loop = TrainingLoop.__new__(TrainingLoop)
    torch.nn.Module.__init__(loop)
    for name in TrainingLoop._PLAIN_ATTRIBUTES:
        setattr(loop, name, "x")
        assert loop.__dict__[name] == "x" and name not in loop._parameters and name not in loop._modules
    loop.weight = torch.nn.Parameter(torch.zeros(1))  # other names still go through nn.Module
    assert "weight" in loop._parameters
