"""INNA against TH eq. 2.13 written out by hand on J = 1/2 theta^T A theta."""

import copy

import pytest
import torch

import optrepro.optim.inna as inna_module
from optrepro.optim.inna import INNA

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)  # SPD; grad J = A theta
THETA0 = torch.tensor([1.0, -2.0], dtype=torch.float64)  # A theta0 = [1, -3]


def by_hand(theta0, lr, alpha, beta, steps, wd=0.0, decoupled=False):
    """Eq. 2.13 with psi_0 = (1 - alpha beta) theta_0 - (beta^2 - beta) v_0; v = A theta (+ wd theta as a
    loss term), or the decoupled decay - lr wd theta_k added to the theta line. Returns [(theta_k, psi_k)]."""
    theta = theta0.clone()

    def v_at(t):
        return A @ t if decoupled else A @ t + wd * t

    psi = (1 - alpha * beta) * theta - (beta**2 - beta) * v_at(theta)
    out = []
    for _ in range(steps):
        v = v_at(theta)
        new_theta = theta + lr * ((1 / beta - alpha) * theta - psi / beta - beta * v)
        if decoupled:
            new_theta = new_theta - lr * wd * theta
        psi = psi + lr * ((1 / beta - alpha) * theta - psi / beta)
        theta = new_theta
        out.append((theta.clone(), psi.clone()))
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
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.1), (1.3, 0.1), (0.5, 1.0), (2.0, 0.05)])
def test_three_steps_equal_eq_2_13(alpha, beta, foreach):
    got, opt = run_inna(THETA0, 3, lr=0.05, alpha=alpha, beta=beta, foreach=foreach)
    expected = by_hand(THETA0, 0.05, alpha, beta, 3)
    for g, (e, _) in zip(got, expected):
        torch.testing.assert_close(g, e)
    p = opt.param_groups[0]["params"][0]
    torch.testing.assert_close(opt.psi(p), expected[-1][1])  # psi = theta - phi is the thesis's psi


def test_first_step_is_a_gradient_step():
    (first,), _ = run_inna(THETA0, 1, lr=0.05, alpha=0.7, beta=0.3)
    # theta0 - 0.05 A theta0 = [1, -2] - 0.05 [1, -3]
    torch.testing.assert_close(first, torch.tensor([0.95, -1.85], dtype=torch.float64))


def test_closure_is_called_and_its_loss_returned():
    theta = torch.nn.Parameter(THETA0.clone())
    opt = INNA([theta], lr=0.05)

    def closure():
        opt.zero_grad()
        loss = 0.5 * theta @ A @ theta
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(0.5 * (1 * 1 + -2 * -3))  # 1/2 theta0 . A theta0 = 3.5
    torch.testing.assert_close(theta.detach(), torch.tensor([0.95, -1.85], dtype=torch.float64))


def test_weight_decay_as_a_loss_term_goes_through_beta():
    got, _ = run_inna(THETA0, 3, lr=0.05, alpha=0.5, beta=0.1, weight_decay=0.1)
    for g, (e, _) in zip(got, by_hand(THETA0, 0.05, 0.5, 0.1, 3, wd=0.1)):
        torch.testing.assert_close(g, e)
    # first step: a gradient step on J + wd/2 ||theta||^2, theta0 - 0.05 ([1, -3] + 0.1 [1, -2])
    torch.testing.assert_close(got[0], torch.tensor([0.945, -1.84], dtype=torch.float64))


def test_decoupled_weight_decay_shrinks_theta_outside_the_gradient():
    lr, wd = 0.05, 0.1
    got, _ = run_inna(THETA0, 3, lr=lr, weight_decay=wd, decoupled_weight_decay=True)
    for g, (e, _) in zip(got, by_hand(THETA0, lr, 0.5, 0.1, 3, wd=wd, decoupled=True)):
        torch.testing.assert_close(g, e)
    # first step (1 - lr wd) theta0 - lr A theta0 = 0.995 [1, -2] - 0.05 [1, -3]
    torch.testing.assert_close(got[0], torch.tensor([0.945, -1.84], dtype=torch.float64))
    # the same first step as the loss-term decay, but from then on the decay no longer goes through beta
    coupled, _ = run_inna(THETA0, 3, lr=lr, weight_decay=wd)
    torch.testing.assert_close(got[0], coupled[0])
    assert not torch.allclose(got[2], coupled[2], rtol=0, atol=1e-6)


def test_param_groups_keep_their_own_hyper_parameters():
    x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = INNA([{"params": [x], "beta": 1.0, "alpha": 1.3}, {"params": [y], "lr": 0.2}], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (x**2 + y**2).backward()  # grad 2 theta
        opt.step()
    # each coordinate is the 1-D eq. 2.13 with its own group's values
    for p, lr, alpha, beta in ((x, 0.1, 1.3, 1.0), (y, 0.2, 0.5, 0.1)):
        theta, psi = 1.0, (1 - alpha * beta) * 1.0 - (beta**2 - beta) * 2.0
        for _ in range(2):
            theta, psi = (
                theta + lr * ((1 / beta - alpha) * theta - psi / beta - beta * 2 * theta),
                psi + lr * ((1 / beta - alpha) * theta - psi / beta),
            )
        assert p.item() == pytest.approx(theta)


def test_state_dict_round_trip_continues_identically():
    _, opt = run_inna(THETA0, 2, lr=0.05)
    theta = opt.param_groups[0]["params"][0]
    clone = torch.nn.Parameter(theta.detach().clone())
    restored = INNA([clone], lr=0.05)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        for p, o in ((theta, opt), (clone, restored)):
            o.zero_grad()
            (0.5 * p @ A @ p).backward()
            o.step()
    assert torch.equal(theta.detach(), clone.detach())
    torch.testing.assert_close(theta.detach(), by_hand(THETA0, 0.05, 0.5, 0.1, 5)[-1][0])


@pytest.mark.parametrize(("wd", "decoupled"), [(0.0, False), (0.1, False), (0.1, True)])
def test_foreach_and_loop_give_the_same_numbers(wd, decoupled):
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 2), (5,), (1,), (2, 2, 2)]
    init = [torch.randn(s, generator=gen) for s in shapes]
    runs = []
    for foreach in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = INNA(
            params,
            lr=0.1,
            alpha=0.5,
            beta=0.3,
            weight_decay=wd,
            decoupled_weight_decay=decoupled,
            foreach=foreach,
        )
        for _ in range(4):
            opt.zero_grad()
            sum((p.sin() * p).sum() for p in params).backward()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_foreach_none_uses_the_loop_on_cpu(monkeypatch):
    used = []
    monkeypatch.setattr(inna_module, "_loop_inna", lambda *a: used.append("loop"))
    monkeypatch.setattr(inna_module, "_foreach_inna", lambda *a: used.append("foreach"))
    for foreach in (None, True, False):
        run_inna(THETA0, 1, lr=0.05, foreach=foreach)
    assert used == ["loop", "foreach", "loop"]


@pytest.mark.cuda
def test_foreach_on_cuda_matches_eq_2_13():
    got, opt = run_inna(THETA0.cuda(), 3, lr=0.05, weight_decay=0.1)
    assert opt.param_groups[0]["foreach"] is None
    torch.testing.assert_close(got[-1].cpu(), by_hand(THETA0, 0.05, 0.5, 0.1, 3, wd=0.1)[-1][0])


def test_parameters_without_gradient_are_left_alone():
    x = torch.nn.Parameter(torch.tensor([1.0]))
    frozen = torch.nn.Parameter(torch.tensor([2.0]))
    opt = INNA([x, frozen], lr=0.1)
    (x**2).sum().backward()
    opt.step()
    assert frozen.item() == 2.0 and frozen not in opt.state


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, "lr=0"),
        ({"beta": 0.0}, "beta=0.0"),
        ({"alpha": -1.0}, "alpha=-1.0"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1"),
    ],
)
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        INNA([torch.nn.Parameter(torch.zeros(1))], **{"lr": 0.1, **kwargs})
