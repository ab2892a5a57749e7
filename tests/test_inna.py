"""INNA against eq. 2.13 written out by hand on a quadratic."""

import copy

import pytest
import torch

from optrepro.optim.inna import INNA

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # J = 1/2 theta^T A theta, grad = A theta


def by_hand(theta0, lr, alpha, beta, steps, wd=0.0):
    """Eq. 2.13 with psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) v_0 and v = A theta + wd theta."""
    theta = theta0.clone()
    v = A @ theta + wd * theta
    psi = (1 - alpha * beta) * theta - (beta**2 - beta) * v
    out = []
    for _ in range(steps):
        v = A @ theta + wd * theta
        theta, psi = (
            theta + lr * ((1 / beta - alpha) * theta - psi / beta - beta * v),
            psi + lr * ((1 / beta - alpha) * theta - psi / beta),
        )
        out.append(theta.clone())
    return out


def run_inna(theta0, steps, **kwargs):
    theta = torch.nn.Parameter(theta0.clone())
    opt = INNA([theta], **kwargs)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * theta @ A @ theta).backward()
        opt.step()
        out.append(theta.detach().clone())
    return out, opt


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.1), (1.3, 0.1), (0.5, 1.0)])
def test_three_steps_equal_eq_2_13(alpha, beta, foreach):
    theta0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    got, _ = run_inna(theta0, 3, lr=0.05, alpha=alpha, beta=beta, foreach=foreach)
    for g, e in zip(got, by_hand(theta0, 0.05, alpha, beta, 3)):
        torch.testing.assert_close(g, e)


def test_first_step_is_a_gradient_step():
    theta0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    (first,), _ = run_inna(theta0, 1, lr=0.05, alpha=0.7, beta=0.3)
    torch.testing.assert_close(first, theta0 - 0.05 * (A @ theta0))  # [1, -2] - 0.05 [1, -3]


def test_weight_decay_as_a_loss_term_goes_through_beta():
    theta0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    got, _ = run_inna(theta0, 3, lr=0.05, alpha=0.5, beta=0.1, weight_decay=0.1)
    for g, e in zip(got, by_hand(theta0, 0.05, 0.5, 0.1, 3, wd=0.1)):
        torch.testing.assert_close(g, e)


def test_decoupled_weight_decay_shrinks_theta_before_the_update():
    theta0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    lr, wd = 0.05, 0.1
    (first,), _ = run_inna(theta0, 1, lr=lr, weight_decay=wd, decoupled_weight_decay=True)
    # psi_0 is set from the plain gradient at the unshrunk theta_0; then theta_0 <- (1 - lr wd) theta_0
    a, b = 0.5, 0.1
    v = A @ theta0
    psi = (1 - a * b) * theta0 - (b * b - b) * v
    shrunk = (1 - lr * wd) * theta0
    expected = shrunk + lr * ((1 / b - a) * shrunk - psi / b - b * v)
    torch.testing.assert_close(first, expected)
    coupled, _ = run_inna(theta0, 1, lr=lr, weight_decay=wd)
    assert not torch.allclose(first, coupled[0])


def test_param_groups_keep_their_own_hyper_parameters():
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = INNA([{"params": [x], "beta": 1.0}, {"params": [y], "lr": 0.2}], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (x**2 + y**2).backward()  # grad 2 theta
        opt.step()
    # each coordinate is the 1-D eq. 2.13 with its own group's values
    for p, lr, beta in ((x, 0.1, 1.0), (y, 0.2, 0.1)):
        theta, psi = 1.0, (1 - 0.5 * beta) * 1.0 - (beta**2 - beta) * 2.0
        for _ in range(2):
            theta, psi = (
                theta + lr * ((1 / beta - 0.5) * theta - psi / beta - beta * 2 * theta),
                psi + lr * ((1 / beta - 0.5) * theta - psi / beta),
            )
        assert p.item() == pytest.approx(theta)


def test_state_dict_round_trip_continues_identically():
    theta0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    _, opt = run_inna(theta0, 2, lr=0.05)
    theta = opt.param_groups[0]["params"][0]
    clone = torch.nn.Parameter(theta.detach().clone())
    restored = INNA([clone], lr=0.05)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p, o in ((theta, opt), (clone, restored)):
        o.zero_grad()
        (0.5 * p @ A @ p).backward()
        o.step()
    torch.testing.assert_close(theta.detach(), clone.detach())


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"lr": 0}, "lr=0"), ({"beta": 0.0}, "beta=0.0"), ({"alpha": -1.0}, "alpha=-1.0")]
)
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        INNA([torch.nn.Parameter(torch.zeros(1))], **{"lr": 0.1, **kwargs})
