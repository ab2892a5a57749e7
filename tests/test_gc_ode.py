"""GC Figures 6 and 7: the ODE generators, the split, the neural ODE and the presets at profile=smoke."""

import json

import pandas as pd
import pytest
import torch

from optrepro.config import apply_profile, compose
from optrepro.data import ode
from optrepro.models import NeuralODE
from optrepro.train import run
from optrepro.utils import build

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
def test_ode_presets_run_without_continuation_and_log_the_mse_of_their_model(name, tmp_path):
    """At profile=smoke (with continuation they run in tests/test_configs.py): the rows hold one epoch each, the
    steps of the full-batch split, and a train/test MSE that the final model, taken from the checkpoint of the last
    epoch, gives again on the data module's own splits."""
    overrides = [f"experiment={name}", "profile=smoke", "method=plain", "trainer.checkpoint=true"]
    cfg = compose([*overrides, f"paths.run_dir={tmp_path}"])
    metrics = run(cfg)
    rows = pd.read_csv(tmp_path / "metrics.csv")
    epochs = max(1, int(cfg.trainer.epochs * 0.005))  # profile=smoke: the preset's 400 or 200 epochs x 0.005
    assert rows.epoch.tolist() == list(range(epochs))
    # 27 train trajectories, full batch capped at 16 by the profile: batches of 16 and 11, both within the 2 allowed
    assert rows.step.tolist() == [2 * (e + 1) for e in range(epochs)]

    dm = build(apply_profile(cfg).task, seeds=[cfg.seed])
    dm.setup()
    model = build(cfg.model)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model.model."): v for k, v in state.items() if k.startswith("model.")})
    with torch.no_grad():
        for split, data in (("train", dm.train), ("test", dm.test)):
            assert len(data) == (27 if split == "train" else 3)
            mse = float((model((data.mu, data.x0)) - data.traj).pow(2).mean())
            assert rows[f"{split}/loss"].iloc[-1] == pytest.approx(mse, rel=1e-5)
            assert metrics[f"{split}/loss"] == pytest.approx(mse, rel=1e-5)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_lorenz_data_obey_the_lorenz_equations():
    """Each step of the data is one step of dx = sigma (y - x), dy = x (rho - z) - y, dz = x y - 8/3 z (written
    here, not the generator's field), integrated by classical Runge-Kutta with 400 substeps."""
    mu, t, traj = ode.generate("lorenz")
    sigma, rho = mu[:, :1], mu[:, 1:]

    def field(u):
        x, y, z = u[:, :1], u[:, 1:2], u[:, 2:]
        return torch.cat([sigma * (y - x), x * (rho - z) - y, x * y - 8 / 3 * z], 1)

    for k in (0, 9, 18):
        u, h = traj[:, k].clone(), float(t[k + 1] - t[k]) / 400
        for _ in range(400):
            k1 = field(u)
            k2 = field(u + h / 2 * k1)
            k3 = field(u + h / 2 * k2)
            k4 = field(u + h * k3)
            u = u + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        torch.testing.assert_close(u, traj[:, k + 1], rtol=1e-6, atol=1e-6)


def test_bad_continuation_values_fail_before_training(tmp_path):
    from optrepro.config import ConfigError

    for override, key in (("continuation.lr=0", "continuation.lr"), ("+continuation.estimator=exact", "estimator")):
        cfg = compose(["experiment=gc/lotka_volterra_f6", override, f"paths.run_dir={tmp_path}"])
        with pytest.raises(ConfigError, match=key):
            run(cfg)
