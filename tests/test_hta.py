"""HTA (HTA eq. 3): H(Theta, L) by hand, the coupling gradient, the split, the L schedule, the variants."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optrepro.config import compose
from optrepro.methods import HTA, CoupledCopies, LSchedule
from optrepro.methods.hta import scoped_names, split_masks
from optrepro.utils import build


def tiny_net() -> nn.Module:
    """Conv(1->3) + BN + Linear(3*2*2 -> 5): odd unit counts, so halves are ceil(out / 2) and floor(out / 2)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 5), nn.Linear(5, 3)
    )


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g)


def perturb_eta(copies: CoupledCopies, scale: float = 0.1) -> None:
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in copies.eta.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def method(**kw) -> HTA:
    return HTA(schedule=LSchedule(values=[0.5]), **kw)


def test_h_equals_eq3_by_hand():
    """Anchors t = 0: theta's first halves and eta's second halves of every layer's output units (eq. 3)."""
    m = method()
    copies = m.wrap_model(tiny_net())
    perturb_eta(copies)
    x, y = batch()
    big_l = 0.3
    h = m.objective(copies, x, y, nn.functional.cross_entropy, big_l)

    # the same by hand, from separate networks and explicit row slices
    theta_net, eta_net = tiny_net(), tiny_net()
    theta_net.load_state_dict(copies.theta.state_dict())
    eta_net.load_state_dict(copies.eta.state_dict())
    f_theta = nn.functional.cross_entropy(theta_net(x), y)
    f_eta = nn.functional.cross_entropy(eta_net(x), y)
    anchor1 = anchor2 = coupling = 0.0
    for a, b in zip(theta_net.parameters(), eta_net.parameters()):
        a, b = a.detach(), b.detach()
        half = math.ceil(a.shape[0] / 2)
        anchor1 += float(a[:half].pow(2).sum())
        anchor2 += float(b[half:].pow(2).sum())
        coupling += float((a - b).pow(2).sum())
    f_theta, f_eta = f_theta.detach(), f_eta.detach()
    expected = float(f_theta) + big_l * anchor1 + float(f_eta) + big_l * anchor2 + coupling / big_l
    assert float(h.detach()) == pytest.approx(expected, rel=1e-6)
    assert coupling > 0


def test_coupling_gradient_is_2_over_l_times_the_difference():
    """With f = 0 and t = 0: dH/dtheta = 2 L 1[group 1] theta + (2/L)(theta - eta), dH/deta = 2 L 1[group 2] eta
    - (2/L)(theta - eta)."""
    m = method()
    copies = m.wrap_model(tiny_net())
    perturb_eta(copies)
    x, y = batch()
    big_l = 0.2
    m.objective(copies, x, y, lambda out, t: 0.0 * out.sum(), big_l).backward()
    for _, th, et, mask, _ in copies.pairs():
        d = (th - et).detach()
        torch.testing.assert_close(th.grad, 2 * big_l * mask * th.detach() + 2 / big_l * d)
        torch.testing.assert_close(et.grad, 2 * big_l * ~mask * et.detach() - 2 / big_l * d)


def test_coupling_vanishes_when_theta_equals_eta():
    m = method()
    copies = m.wrap_model(tiny_net())  # eta starts as a copy of theta
    x, y = batch()
    big_l = 0.25
    h = m.objective(copies, x, y, nn.functional.cross_entropy, big_l)
    f = nn.functional.cross_entropy(copies.theta(x), y)
    assert float(m.logged()["homotopy/coupling"]) == 0.0
    anchors = sum(
        float((torch.where(mask, th, 0.0).pow(2).sum() + torch.where(mask, 0.0, et).pow(2).sum()).detach())
        for _, th, et, mask, _ in copies.pairs()
    )
    assert float(h.detach()) == pytest.approx(2 * float(f.detach()) + big_l * anchors, rel=1e-6)


def test_unsquared_norms_and_a_finite_gradient_at_theta_equals_eta():
    m = method(variant="paper", squared=False, anchor="random", anchor_std=0.5)
    copies = m.wrap_model(tiny_net())
    x, y = batch()
    zero = lambda out, t: 0.0 * out.sum()  # noqa: E731
    h = m.objective(copies, x, y, zero, 0.5)
    with torch.no_grad():
        a1 = sum(float(torch.where(mk, th - t, 0.0).pow(2).sum()) for _, th, _, mk, t in copies.pairs())
        a2 = sum(float(torch.where(mk, 0.0, et - t).pow(2).sum()) for _, _, et, mk, t in copies.pairs())
    assert float(h.detach()) == pytest.approx(0.5 * math.sqrt(a1) + 0.5 * math.sqrt(a2), rel=1e-6)
    h.backward()
    assert all(torch.isfinite(p.grad).all() for p in copies.parameters() if p.grad is not None)


@pytest.mark.parametrize("rule", ["units", "layers", "random"])
def test_split_covers_every_parameter_exactly_once(rule):
    net = tiny_net()
    names = scoped_names(net, "all")
    assert names == [n for n, _ in net.named_parameters()]
    masks = split_masks(net, names, rule, seed=3)
    total = sum(p.numel() for p in net.parameters())
    group1 = sum(int(m.sum()) for m in masks.values())
    group2 = sum(int((~m).sum()) for m in masks.values())
    assert group1 + group2 == total and 0 < group1 < total
    params = dict(net.named_parameters())
    for name, mask in masks.items():
        assert mask.shape == params[name].shape and mask.dtype == torch.bool
        if rule == "units":  # the first ceil(out / 2) output units of each tensor
            out = params[name].shape[0]
            assert int(mask.sum()) == math.ceil(out / 2) * params[name][0].numel()
            assert mask[: math.ceil(out / 2)].all() and not mask[math.ceil(out / 2) :].any()
    if rule == "layers":  # 4 layers with parameters (conv, bn, linear, linear): the first 2 in group 1
        assert [bool(m.all()) for m in masks.values()] == [True] * 4 + [False] * 4


def test_scopes_partition_the_parameters():
    net = tiny_net()
    conv, head = scoped_names(net, "conv"), scoped_names(net, "classifier")
    assert conv == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert head == ["4.weight", "4.bias", "5.weight", "5.bias"]
    assert sorted(conv + head) == sorted(scoped_names(net, "all"))


def test_authors_variant_shares_the_trunk_and_couples_the_heads():
    m = method(variant="authors")
    assert (m.scope, m.squared) == ("classifier", False)
    copies = m.wrap_model(tiny_net())
    assert [n for n, _ in copies.eta.named_parameters()] == ["4.weight", "4.bias", "5.weight", "5.bias"]
    x, y = batch()
    torch.testing.assert_close(copies.forward_eta(x), copies.theta(x))  # same trunk, equal heads at the start
    loss = m.objective(copies, x, y, nn.functional.cross_entropy, 0.01)
    loss.backward()
    trunk = copies.theta[0].weight
    assert trunk.grad is not None and torch.isfinite(trunk.grad).all()
    # the shared trunk gets the gradient of f(theta) + f(eta) = 2 f(theta) here (theta = eta)
    net = tiny_net()
    net.load_state_dict(copies.theta.state_dict())
    (2 * nn.functional.cross_entropy(net(x), y)).backward()
    torch.testing.assert_close(trunk.grad, net[0].weight.grad)


def test_batch_norm_buffers_stay_with_their_copy():
    m = method()
    copies = m.wrap_model(tiny_net())
    x, _ = batch()
    before = copies.theta[1].running_mean.clone()
    copies.forward_eta(x)
    torch.testing.assert_close(copies.theta[1].running_mean, before)
    assert not torch.equal(copies.eta[1].running_mean, before)


def test_a_training_step_and_eval_model_with_sgd():
    m = method(anchor="init")
    copies = m.wrap_model(tiny_net())
    opt = torch.optim.SGD(copies.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = batch()
    theta0 = copies.theta[4].weight.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        loss = m.objective(copies, x, y, nn.functional.cross_entropy, 0.01)
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    net = m.eval_model(copies)
    assert net is copies.theta and net(x).shape == (8, 3)
    assert not torch.equal(net[4].weight, theta0)
    assert set(m.logged()) == {"train/f_theta", "train/f_eta", "homotopy/coupling"}


def test_l_schedule_is_the_papers_sequence():
    """HTA 4.2: L = 0.01, 0.009, ..., 0.005, 4 epochs each, then 0.005 to the end of the budget."""
    s = LSchedule(start=0.01, stop=0.005, step=0.001, epochs_per_value=4)
    assert s.values == pytest.approx([0.01, 0.009, 0.008, 0.007, 0.006, 0.005])
    assert s.epochs == 20
    by_epoch = [s(e) for e in range(30)]
    expected = [v for v in s.values for _ in range(4)] + [0.005] * 6
    assert by_epoch == pytest.approx(expected)
    assert s(619) == 0.005 and s(-3) == 0.01
    assert LSchedule(values=[0.9, 0.5, 0.1], epochs_per_value=2).values == [0.9, 0.5, 0.1]
    with pytest.raises(ValueError):
        LSchedule(values=[0.1, 0.0])


def test_method_config_builds_the_papers_schedule():
    cfg = compose(["method=hta"])
    m = build(cfg.method, keep=("name",))
    assert isinstance(m, HTA) and m.name == "hta" and m.parameter_name == "homotopy/L"
    assert (m.scope, m.squared, m.split, m.anchor) == ("all", True, "units", "zero")
    assert [m.parameter(e) for e in (0, 4, 8, 12, 16, 20, 100)] == pytest.approx(
        [0.01, 0.009, 0.008, 0.007, 0.006, 0.005, 0.005]
    )


def test_step_schedule_halves_every_30_epochs():
    from optrepro.optim.schedules import Step

    s = Step(total=620, step_size=30, gamma=0.5)
    assert [s(t) for t in (0, 29, 30, 59, 60, 619)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.5**20]
    assert s(-1) == 1.0


STUBS = {  # what the contract says A's cifar10 task and B's vgg model configs hold, used only where they are missing
    "task/cifar10.yaml": "_target_: optrepro.data.images.ImageDataModule\nname: cifar10\nmodule: classification\n"
    "data: cifar10\nbatch_size: 128\naugment: true\n",
    "model/vgg.yaml": "_target_: optrepro.models.vgg.VGG\ndepth: 11\nbatch_norm: true\nin_channels: 3\n"
    "num_classes: 10\n",
}


def test_vgg_presets_compose_with_the_papers_settings(tmp_path, monkeypatch):
    """Each VGG preset with its own method, plain and hta: the paper's SGD settings and L path."""
    import shutil

    from optrepro.config import apply_profile, config_dir, validate

    root = tmp_path / "configs"
    shutil.copytree(config_dir(), root)
    for rel, text in STUBS.items():
        if not (root / rel).is_file():
            (root / rel).write_text(text)
    monkeypatch.setenv("OPTREPRO_CONFIG_DIR", str(root))
    presets = {"hta/vgg_t2": "classifier", "hta/vgg_t3": "classifier", "hta/vgg_f3": "conv"}
    for preset, scope in presets.items():
        for method_override in (None, "plain", "hta"):
            overrides = [f"experiment={preset}"] + ([f"method={method_override}"] if method_override else [])
            cfg = compose(overrides)
            validate(apply_profile(cfg))
            assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (0.05, 0.9, 5e-4)
            assert (cfg.schedule.step_size, cfg.schedule.gamma, cfg.trainer.epochs) == (30, 0.5, 620)
            assert (cfg.task.batch_size, cfg.task.augment, cfg.model.batch_norm) == (128, True, True)
            m = build(cfg.method, keep=("name",))
            if method_override is None:  # the authors' unsquared form (the paper's squared one diverges here)
                assert (m.scope, m.squared) == (scope, False)
            if method_override == "hta":
                assert (m.scope, m.squared) == ("all", True)
            if method_override != "plain":
                assert [m.parameter(e) for e in (0, 23, 24)] == pytest.approx([0.01, 0.005, 0.005])


@pytest.mark.parametrize(
    "override", ["method.variant=theirs", "method.scope=heads", "method.schedule.stop=0", "schedule.step_size=0"]
)
def test_bad_values_fail_before_training(override):
    from optrepro.config import ConfigError, validate

    cfg = compose(["method=hta", "schedule=step", override])
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        validate(cfg)


def test_squared_coupling_is_stable_for_sgd_only_below_lr_3_8_over_4_over_l():
    """With f = 0, theta - eta follows heavy-ball SGD on (1/L)||d||^2 per copy, curvature 4/L along d: momentum 0.9
    is stable iff lr * 4/L < 2 (1 + 0.9) = 3.8. At L = 0.01 the limit is lr < 0.0095; the paper's lr 0.05 diverges."""

    def grows(lr: float) -> bool:
        m = method(anchor="zero")
        copies = m.wrap_model(nn.Linear(3, 2))
        perturb_eta(copies, scale=1e-3)
        opt = torch.optim.SGD(copies.parameters(), lr=lr, momentum=0.9)
        x, y = batch()
        m.objective(copies, x.flatten(1)[:, :3], y, lambda out, t: 0.0 * out.sum(), 0.01)
        start = float(m.logged()["homotopy/coupling"])
        for _ in range(100):
            opt.zero_grad()
            m.objective(copies, x.flatten(1)[:, :3], y, lambda out, t: 0.0 * out.sum(), 0.01).backward()
            opt.step()
        return not float(m.logged()["homotopy/coupling"]) < start  # inf or nan: grown

    assert grows(0.05) and grows(0.0100)
    assert not grows(0.0090)
