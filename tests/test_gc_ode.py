"""GC Figures 6 and 7: the ODE generators, the split, the neural ODE and the presets at profile=smoke."""

import pytest
import torch

from optrepro.config import compose
from optrepro.data import ode
from optrepro.models import NeuralODE
from optrepro.train import run

ODE_PRESETS = ["gc/lotka_volterra_f6", "gc/lorenz_f7"]


def test_lotka_volterra_conserves_its_first_integral():
    mu, t, traj = ode.generate("lotka_volterra")
    assert mu.shape == (30, 2) and t.shape == (50,) and traj.shape == (30, 50, 2)
    v = ode.lotka_volterra_invariant(traj.transpose(0, 1), mu)  # [T, 30]
    drift = (v - v[0]).abs().max()
    assert float(drift) < 1e-7  # solver tolerance 1e-10, over 50 points on [0, 20]
    # and it is not trivially constant: the populations do oscillate
    assert float(traj[..., 0].std(1).min()) > 0.05


def test_invariant_derivative_vanishes_along_the_field():
    mu = torch.tensor([[0.7, 1.5]], dtype=torch.float64)
    u = torch.tensor([[0.8, 1.3]], dtype=torch.float64, requires_grad=True)
    (grad_v,) = torch.autograd.grad(ode.lotka_volterra_invariant(u, mu).sum(), u)
    assert float((grad_v * ode.lotka_volterra_field(mu)(0, u.detach())).sum()) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("system", ["lotka_volterra", "lorenz"])
def test_generators_are_deterministic_and_splits_follow_the_seed(system):
    a, b = ode.generate(system), ode.generate(system)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    train, test = ode.split_instances(30, 3, seed=0)
    assert len(train) == 27 and len(test) == 3 and set(train.tolist()).isdisjoint(test.tolist())
    again = ode.split_instances(30, 3, seed=0)
    assert torch.equal(again[1], test)
    assert not torch.equal(ode.split_instances(30, 3, seed=1)[1], test)


def test_lorenz_grid_and_initial_state():
    mu, t, traj = ode.generate("lorenz")
    assert traj.shape == (30, 20, 3) and float(t[-1]) == pytest.approx(2.0)
    assert torch.equal(traj[:, 0], torch.full((30, 3), 5.0, dtype=torch.float64))
    assert sorted(set(mu[:, 0].tolist())) == pytest.approx([9.0, 9.5, 10.0, 10.5, 11.0])
    assert sorted(set(mu[:, 1].tolist())) == pytest.approx([25.0, 26.0, 27.0, 28.0, 29.0, 30.0])


def test_neural_ode_shapes_and_init():
    torch.manual_seed(0)
    model = NeuralODE(state_dim=2, param_dim=2, t_end=1.0, n_times=7, layers=5)
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 50)] + [(50, 50)] * 3 + [(50, 2)]
    assert all(float(m.bias.detach().abs().max()) == 0 for m in linears)
    bound = (6 / (50 + 50)) ** 0.5  # Xavier uniform
    assert float(linears[1].weight.detach().abs().max()) <= bound
    x0 = torch.rand(3, 2)
    out = model((torch.rand(3, 2), x0))
    assert out.shape == (3, 7, 2)
    torch.testing.assert_close(out[:, 0], x0)


@pytest.mark.parametrize("name", ODE_PRESETS)
def test_ode_presets_run_without_continuation_at_profile_smoke(name, tmp_path):
    # with continuation (the presets' default method) they run in tests/test_configs.py
    cfg = compose([f"experiment={name}", "profile=smoke", "method=plain", f"paths.run_dir={tmp_path}"])
    metrics = run(cfg)
    assert isinstance(metrics[cfg.monitor], float)
    assert (tmp_path / "summary.json").is_file()


def test_bad_continuation_values_fail_before_training(tmp_path):
    from optrepro.config import ConfigError

    for override, key in (("continuation.lr=0", "continuation.lr"), ("+continuation.estimator=exact", "estimator")):
        cfg = compose(["experiment=gc/lotka_volterra_f6", override, f"paths.run_dir={tmp_path}"])
        with pytest.raises(ConfigError, match=key):
            run(cfg)
