"""Step-Tuned SGD against Algorithm 3 written out by hand."""

import copy

import pytest
import torch

from optrepro.optim.step_tuned import StepTunedSGD

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)


def quadratic_closure(theta, opt, calls=None, batch=None):
    def closure():
        if calls is not None:
            calls.append(batch)
        opt.zero_grad()
        loss = 0.5 * theta @ A @ theta
        loss.backward()
        return loss

    return closure


def by_hand(theta, lr, steps, nu=2.0, beta=0.9, m=0.5, M=2.0, delta=0.001, decay=True):
    """Algorithm 3 on J = 1/2 theta^T A theta, every line spelled out; returns iterates and step sizes."""
    G, gamma, out = torch.zeros(2, dtype=torch.float64), 1.0, []
    for k in range(steps):
        a = lr / (k + 1) ** (0.5 + delta) if decay else lr
        g0 = A @ theta
        half = theta - a * gamma * g0
        g1 = A @ half
        new = half - a * gamma * g1
        d_theta, d_g = half - theta, g1 - g0
        G = beta * G + (1 - beta) * d_g
        G_hat = G / (1 - beta ** (k + 1))
        curv = float(G_hat @ d_theta)
        nxt = float(d_theta @ d_theta) / curv if curv > 0 else nu
        out.append((new.clone(), gamma, curv))
        gamma, theta = min(max(nxt, m), M), new
    return out


def test_closure_runs_twice_per_step_on_the_same_batch():
    theta = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = StepTunedSGD([theta], lr=0.1)
    calls = []
    for batch in range(3):
        opt.step(quadratic_closure(theta, opt, calls, batch))
    assert calls == [0, 0, 1, 1, 2, 2]
    assert opt.evals_per_step == 2


@pytest.mark.parametrize("decay", ["step", "none"])
def test_iterates_and_step_sizes_follow_algorithm_3(decay):
    theta0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    theta = torch.nn.Parameter(theta0.clone())
    opt = StepTunedSGD([theta], lr=0.1, decay=decay)
    expected = by_hand(theta0, 0.1, 4, decay=decay == "step")
    for new, gamma, curv in expected:
        opt.step(quadratic_closure(theta, opt))
        torch.testing.assert_close(theta.detach(), new)
        assert opt.last_step_size == pytest.approx(gamma)
        assert opt.last_curvature == pytest.approx(curv)


def test_first_tuned_step_is_the_clipped_rayleigh_quotient():
    theta0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    theta = torch.nn.Parameter(theta0.clone())
    opt = StepTunedSGD([theta], lr=0.1, m=0.1)  # a bound low enough not to clip
    opt.step(quadratic_closure(theta, opt))
    d = -0.1 * (A @ theta0)  # d_theta with gamma_0 = 1 and a_0 = 0.1
    # G_0 = (1 - beta) d_g and its bias correction divides by (1 - beta): G_hat = d_g = A d
    assert opt.param_groups[0]["gamma"] == pytest.approx(float(d @ d) / float(d @ A @ d))


def test_negative_curvature_gives_nu():
    theta = torch.nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    opt = StepTunedSGD([theta], lr=0.1, nu=1.7)

    def closure():
        opt.zero_grad()
        loss = -(theta**2).sum()  # concave: the gradient variation points against the step
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.last_curvature < 0
    assert opt.param_groups[0]["gamma"] == 1.7


def test_lr_decay_per_step():
    # on J = t (gradient 1, no curvature: gamma stays nu = 2 clipped to M = 2) each step moves by 2 a_k (two halves)
    theta = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = StepTunedSGD([theta], lr=0.1)
    positions = []

    def closure():
        opt.zero_grad()
        loss = theta.sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
        positions.append(theta.item())
    gammas = [1.0, 2.0, 2.0]  # gamma_0 = 1, then <G_hat, d> = 0 -> nu = 2, within [0.5, 2]
    expected, x = [], 0.0
    for k, g in enumerate(gammas):
        x -= 2 * 0.1 / (k + 1) ** 0.501 * g
        expected.append(x)
    assert positions == pytest.approx(expected)


def test_state_dict_round_trip_continues_identically():
    theta = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    opt = StepTunedSGD([theta], lr=0.1)
    for _ in range(2):
        opt.step(quadratic_closure(theta, opt))
    clone = torch.nn.Parameter(theta.detach().clone())
    restored = StepTunedSGD([clone], lr=0.1)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        opt.step(quadratic_closure(theta, opt))
        restored.step(quadratic_closure(clone, restored))
    torch.testing.assert_close(theta.detach(), clone.detach())
    assert restored.param_groups[0]["k"] == 5


def test_step_without_closure_is_refused():
    opt = StepTunedSGD([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"beta": 1.0}, "beta=1.0"), ({"m": 3.0}, "m=3.0"), ({"decay": "epoch"}, "decay='epoch'")]
)
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StepTunedSGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)
