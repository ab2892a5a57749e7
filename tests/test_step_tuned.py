"""Step-Tuned SGD (TH Algorithm 3), Algorithm 2 and the GV heuristics (Algorithms 4-6) against the thesis's
lines written out by hand."""

import copy
import itertools
import math

import pytest
import torch

from optrepro.optim import ExactGV, ExpectedGV, StepTunedGD, StepTunedSGD, StochasticGV, expected_curvature

A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)


def vec(*values):
    return torch.tensor(values, dtype=torch.float64)


def param(*values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def closure_for(theta, opt, loss_fn, calls=None, batch=None):
    """As Lightning's closure: zero the gradients, compute the loss on the batch, backward, return it."""

    def closure():
        if calls is not None:
            calls.append(batch)
        opt.zero_grad()
        loss = loss_fn(theta) if batch is None else loss_fn(theta, batch)
        loss.backward()
        return loss

    return closure


def quadratic(theta, matrix=A):
    return 0.5 * theta @ matrix @ theta


# ---------------------------------------------------------------- Algorithm 3


def algorithm_3(theta, lr, steps, nu=2.0, beta=0.9, m=0.5, M=2.0, delta=0.001, decay=True, wd=0.0, matrix=A):
    """Algorithm 3 on J = 1/2 theta^T A theta (+ wd/2 ||theta||^2), line by line; returns
    [(theta_{k+1}, gamma_{k+1}, <G_hat_k, d_theta_k>)]."""
    H = matrix + wd * torch.eye(len(theta), dtype=torch.float64)
    G, gamma, out = torch.zeros(len(theta), dtype=torch.float64), 1.0, []  # line 3
    for k in range(steps):
        a = lr / (k + 1) ** (0.5 + delta) if decay else lr
        half = theta - a * gamma * (H @ theta)  # line 6
        new = half - a * gamma * (H @ half)  # line 7
        d_theta = half - theta  # line 8
        d_g = H @ half - H @ theta  # line 9
        G = beta * G + (1 - beta) * d_g  # line 10
        G_hat = G / (1 - beta ** (k + 1))  # line 11
        curv = float(G_hat @ d_theta)
        gamma = float(d_theta @ d_theta) / curv if curv > 0 else nu  # lines 12-16
        gamma = min(max(gamma, m), M)  # line 17
        out.append((new.clone(), gamma, curv))
        theta = new
    return out


def test_closure_runs_twice_per_step_on_the_same_batch():
    theta = param(1.0, -1.0)
    opt = StepTunedSGD([theta], lr=0.1)
    calls = []
    batches = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([3.0])]
    for batch in batches:
        opt.step(closure_for(theta, opt, lambda t, b: b.item() * quadratic(t), calls, batch))
    assert [id(b) for b in calls] == [id(b) for b in batches for _ in range(2)]
    assert opt.grad_evals == 6 and opt.evals_per_step == 2


def test_grad_evals_counts_two_per_step():
    theta = param(1.0, -1.0)
    opt = StepTunedSGD([theta], lr=0.1)
    assert opt.grad_evals == 0
    for k in range(1, 4):
        opt.step(closure_for(theta, opt, quadratic))
        assert opt.grad_evals == 2 * k


def test_step_returns_the_loss_at_theta_k():
    theta = param(1.0, -1.0)
    opt = StepTunedSGD([theta], lr=0.1)
    loss = opt.step(closure_for(theta, opt, quadratic))
    assert loss.item() == pytest.approx(0.5 * (3 - 1 - 1 + 2))  # 1/2 [1, -1] A [1, -1]


def test_first_step_by_hand():
    # A = diag(4, 1), theta_0 = (1, 1), lr 0.1, gamma_0 = 1, decay 1/1 at k = 0:
    # theta_1/2 = (1, 1) - 0.1 (4, 1) = (0.6, 0.9); theta_1 = (0.6, 0.9) - 0.1 (2.4, 0.9) = (0.36, 0.81)
    # d_theta = (-0.4, -0.1), d_g = A d_theta = (-1.6, -0.1); G_hat_0 = (1 - beta) d_g / (1 - beta) = d_g
    # <G_hat, d_theta> = 0.64 + 0.01 = 0.65; ||d_theta||^2 = 0.17; gamma_1 = 0.17 / 0.65 = 17/65
    D = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    for m, gamma_1 in ((0.1, 17 / 65), (0.5, 0.5)):  # 17/65 = 0.26 is clipped up to m = 0.5
        theta = param(1.0, 1.0)
        opt = StepTunedSGD([theta], lr=0.1, m=m)
        opt.step(closure_for(theta, opt, lambda t, D=D: quadratic(t, D)))
        torch.testing.assert_close(theta.detach(), torch.tensor([0.36, 0.81], dtype=torch.float64))
        assert opt.last_curvature == pytest.approx(0.65)
        assert opt.last_step_size == pytest.approx(gamma_1)


def test_large_step_is_clipped_to_M():
    # J = 1/8 ||theta||^2: d_g = d_theta / 4, so ||d_theta||^2 / <G_hat, d_theta> = 4, clipped to M = 2
    theta = param(1.0, 2.0)
    opt = StepTunedSGD([theta], lr=0.1)
    opt.step(closure_for(theta, opt, lambda t: (t**2).sum() / 8))
    assert opt.last_curvature == pytest.approx(0.25 * (0.1 / 4) ** 2 * 5)  # <d/4, d>, d = -0.1 theta0 / 4
    assert opt.last_step_size == 2.0


@pytest.mark.parametrize("decay", ["step", "none"])
@pytest.mark.parametrize("wd", [0.0, 0.3])
def test_iterates_and_step_sizes_follow_algorithm_3(decay, wd):
    theta0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    theta = torch.nn.Parameter(theta0.clone())
    opt = StepTunedSGD([theta], lr=0.1, decay=decay, m=0.1, weight_decay=wd)
    for new, gamma, curv in algorithm_3(theta0, 0.1, 6, m=0.1, decay=decay == "step", wd=wd):
        opt.step(closure_for(theta, opt, quadratic))
        torch.testing.assert_close(theta.detach(), new)
        assert opt.last_step_size == pytest.approx(gamma)
        assert opt.last_curvature == pytest.approx(curv)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_several_tensors_follow_algorithm_3_on_their_concatenation(set_to_none):
    """The curvature product and ||d_theta||^2 run over every element of every tensor; a closure that zeroes
    the gradients in place must not disturb the first gradient; a tensor without a gradient is left alone."""
    M5 = torch.tensor(
        [[4, 1, 0, 0, 1], [1, 3, 1, 0, 0], [0, 1, 2, 0, 0], [0, 0, 0, 1, 0.5], [1, 0, 0, 0.5, 2]], dtype=torch.float64
    )  # symmetric, diagonally dominant, so positive definite
    x0 = torch.tensor([1.0, -1.0, 0.5, 2.0, -0.5], dtype=torch.float64)
    vector, matrix, frozen = param(1.0, -1.0), torch.nn.Parameter(x0[2:].reshape(1, 3).clone()), param(7.0)
    opt = StepTunedSGD([vector, matrix, frozen], lr=0.1, m=0.1, weight_decay=0.2)

    def closure():
        opt.zero_grad(set_to_none=set_to_none)
        x = torch.cat([vector, matrix.flatten()])
        loss = 0.5 * x @ M5 @ x
        loss.backward()
        return loss

    for new, gamma, curv in algorithm_3(x0, 0.1, 5, m=0.1, wd=0.2, matrix=M5):
        opt.step(closure)
        torch.testing.assert_close(torch.cat([vector.detach(), matrix.detach().flatten()]), new)
        assert opt.last_step_size == pytest.approx(gamma)
        assert opt.last_curvature == pytest.approx(curv)
    assert frozen.item() == 7.0 and "G" not in opt.state[frozen]


def test_a_group_mixing_dtypes_is_refused_with_the_fix():
    single, double = torch.nn.Parameter(torch.ones(2)), param(1.0, 2.0)
    opt = StepTunedSGD([single, double], lr=0.1)
    with pytest.raises(ValueError, match="separate param groups"):
        opt.step(closure_for(single, opt, lambda t: (t**2).sum() + (double**2).sum()))
    opt = StepTunedSGD([{"params": [single]}, {"params": [double]}], lr=0.1)
    opt.step(closure_for(single, opt, lambda t: (t**2).sum() + (double**2).sum()))
    torch.testing.assert_close(double.detach(), vec(0.8, 1.6) - 0.1 * 2 * vec(0.8, 1.6))


@pytest.mark.parametrize(("nu", "gamma_1"), [(1.7, 1.7), (5.0, 2.0), (0.2, 0.5)])
def test_negative_curvature_gives_nu_clipped(nu, gamma_1):
    theta = param(0.5, -0.25)
    opt = StepTunedSGD([theta], lr=0.1, nu=nu)
    opt.step(closure_for(theta, opt, lambda t: -0.5 * (t**2).sum()))  # concave: d_g = -d_theta
    d_theta = 0.1 * torch.tensor([0.5, -0.25], dtype=torch.float64)  # -lr * grad = +lr theta
    assert opt.last_curvature == pytest.approx(-float(d_theta @ d_theta))
    assert opt.last_step_size == gamma_1


def test_lr_decay_per_step():
    # on J = t (gradient 1, no curvature: gamma stays nu = 2, in [0.5, 2]) each step moves by 2 a_k gamma_k
    for decay in ("step", "none"):
        theta = param(0.0)
        opt = StepTunedSGD([theta], lr=0.1, decay=decay)
        x, positions = 0.0, []
        for k, gamma in enumerate([1.0, 2.0, 2.0, 2.0]):
            opt.step(closure_for(theta, opt, lambda t: t.sum()))
            positions.append(theta.item())
            x -= 2 * 0.1 * gamma * ((k + 1) ** -0.501 if decay == "step" else 1.0)
            assert positions[-1] == pytest.approx(x)


def test_param_groups_share_one_step_size_with_their_own_lr():
    # J = 1/2 (4 x^2 + y^2): d_theta = -(0.1 * 4 x, 0.2 * y) = (-0.4, -0.2) from (1, 1)
    # <G_hat, d_theta> = 4 * 0.16 + 0.04 = 0.68, ||d_theta||^2 = 0.2, gamma_1 = 0.2 / 0.68 -> clipped to 0.5
    x, y = param(1.0), param(1.0)
    opt = StepTunedSGD([{"params": [x]}, {"params": [y], "lr": 0.2}], lr=0.1, m=0.1)
    opt.step(closure_for((x, y), opt, lambda t: 2 * t[0].sum() ** 2 + 0.5 * t[1].sum() ** 2))
    assert opt.last_curvature == pytest.approx(0.68)
    assert opt.last_step_size == pytest.approx(0.2 / 0.68)
    assert x.item() == pytest.approx(0.6 * (1 - 0.4))  # two half-steps of 0.1 * 4 x
    assert y.item() == pytest.approx(0.8 * (1 - 0.2))


def test_state_dict_round_trip_continues_identically():
    theta0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    theta = torch.nn.Parameter(theta0.clone())
    opt = StepTunedSGD([theta], lr=0.1, m=0.1)
    for _ in range(2):
        opt.step(closure_for(theta, opt, quadratic))
    clone = torch.nn.Parameter(theta.detach().clone())
    restored = StepTunedSGD([clone], lr=0.1, m=0.1)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert restored.last_step_size == opt.last_step_size and restored.grad_evals == 4
    for _ in range(3):
        opt.step(closure_for(theta, opt, quadratic))
        restored.step(closure_for(clone, restored, quadratic))
        assert restored.last_step_size == opt.last_step_size
    assert torch.equal(theta.detach(), clone.detach())
    torch.testing.assert_close(clone.detach(), algorithm_3(theta0, 0.1, 5, m=0.1)[-1][0])
    assert restored.grad_evals == 10


def test_step_without_closure_is_refused():
    opt = StepTunedSGD([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": 1.0}, "beta=1.0"),
        ({"m": 3.0}, "m=3.0"),
        ({"decay": "epoch"}, "decay='epoch'"),
        ({"delta": 0.5}, "delta=0.5"),
    ],
)
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StepTunedSGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)


# ---------------------------------------------------------------- Algorithms 2, 4, 5, 6
# Two minibatch quadratics J_B(theta) = 1/2 theta^T D_B theta and the full loss J = their mean.

D1 = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))
D2 = torch.diag(torch.tensor([4.0, 3.0], dtype=torch.float64))
DFULL = (D1 + D2) / 2
T0 = torch.tensor([1.0, 1.0], dtype=torch.float64)


def batch_loss(theta, D):
    return quadratic(theta, D)


def two_gv_steps(opt_cls, theta, extra=None, **kwargs):
    opt = opt_cls([theta], **kwargs)
    for D in (D1, D2):
        args = (extra(theta, opt),) if extra else ()
        opt.step(closure_for(theta, opt, batch_loss, batch=D), *args)
    return opt


def test_stochastic_gv_by_hand():
    # theta_1 = (1, 1) - 0.1 (2, 1) = (0.8, 0.9); d_theta_1 = (-0.2, -0.1)
    # G_1 = D2 theta_1 - D1 theta_0 = (3.2, 2.7) - (2, 1) = (1.2, 1.7)
    # <G_1, d_theta_1> = -0.24 - 0.17 < 0 -> nu = 2; theta_2 = theta_1 - 0.1 / 2^0.501 * 2 * (3.2, 2.7)
    theta = torch.nn.Parameter(T0.clone())
    opt = two_gv_steps(StochasticGV, theta, lr=0.1)
    assert opt.last_curvature == pytest.approx(-0.41)
    assert opt.last_step_size == 2.0
    expected = vec(0.8, 0.9) - 0.2 / 2**0.501 * vec(3.2, 2.7)
    torch.testing.assert_close(theta.detach(), expected)


def test_exact_gv_by_hand():
    # theta_1 = (0.8, 0.9) as above; G_1 = DFULL d_theta_1 = (3, 2) * (-0.2, -0.1) = (-0.6, -0.2)
    # <G_1, d_theta_1> = 0.12 + 0.02 = 0.14, ||d_theta_1||^2 = 0.05, gamma_1 = 0.05 / 0.14 = 0.357 -> m = 0.5
    for m, gamma_1 in ((0.1, 0.05 / 0.14), (0.5, 0.5)):
        theta, full_calls = torch.nn.Parameter(T0.clone()), []

        def full(t, opt, calls=full_calls):
            return closure_for(t, opt, lambda s: quadratic(s, DFULL), calls)

        opt = two_gv_steps(ExactGV, theta, full, lr=0.1, m=m)
        assert len(full_calls) == 2
        assert opt.last_curvature == pytest.approx(0.14)
        assert opt.last_step_size == pytest.approx(gamma_1)
        theta_1 = vec(0.8, 0.9)
        torch.testing.assert_close(theta.detach(), theta_1 - 0.1 / 2**0.501 * gamma_1 * (D2 @ theta_1))


def test_expected_gv_by_hand():
    # with E[C] = DFULL^2 theta (the full-batch C_J, a stand-in): G_1 = -s_0 DFULL^2 theta_0 with
    # s_0 = 0.1 * 1 * 1, = -0.1 (9, 4); <G_1, d_theta_1> = 0.18 + 0.04 = 0.22; gamma_1 = 0.05 / 0.22
    theta = torch.nn.Parameter(T0.clone())

    def curvature(t, opt):
        return lambda: DFULL @ DFULL @ t.detach()

    opt = two_gv_steps(ExpectedGV, theta, curvature, lr=0.1, m=0.1, decay="none")
    assert opt.last_curvature == pytest.approx(0.22)
    assert opt.last_step_size == pytest.approx(0.05 / 0.22)
    expected = vec(0.8, 0.9) - 0.1 * 0.05 / 0.22 * vec(3.2, 2.7)
    torch.testing.assert_close(theta.detach(), expected)


def test_expected_gv_uses_the_step_actually_taken():
    # three steps with decay: G_2 = -s_1 E[C(theta_1)] with s_1 = 0.1 / 2^0.501 * gamma_1
    theta = torch.nn.Parameter(T0.clone())
    opt = ExpectedGV([theta], lr=0.1, m=0.1, M=10.0)
    thetas, gammas = [], []
    for D in (D1, D2, D1):
        thetas.append(theta.detach().clone())
        opt.step(closure_for(theta, opt, batch_loss, batch=D), lambda: DFULL @ DFULL @ theta.detach())
        gammas.append(opt.last_step_size)
    d_theta = thetas[2] - thetas[1]
    G = -(0.1 / 2**0.501 * gammas[1]) * (DFULL @ DFULL @ thetas[1])
    assert opt.last_curvature == pytest.approx(float(G @ d_theta))
    assert gammas[2] == pytest.approx(float(d_theta @ d_theta) / float(G @ d_theta))


def test_algorithm_2_by_hand():
    # J = 1/2 theta^T DFULL theta, DFULL = diag(3, 2), lr 0.1: theta_1 = (1, 1) - 0.1 (3, 2) = (0.7, 0.8)
    # d_theta = (-0.3, -0.2), d_g = (-0.9, -0.4): gamma_1 = 0.13 / 0.35;
    # theta_2 = theta_1 - 0.1 gamma_1 (2.1, 1.6)
    theta = torch.nn.Parameter(T0.clone())
    opt = StepTunedGD([theta], lr=0.1)
    for _ in range(2):
        opt.step(closure_for(theta, opt, lambda t: quadratic(t, DFULL)))
    gamma_1 = 0.13 / 0.35
    assert opt.last_step_size == pytest.approx(gamma_1)  # not clipped although 0.37 < 0.5
    expected = torch.tensor([0.7 - 0.21 * gamma_1, 0.8 - 0.16 * gamma_1], dtype=torch.float64)
    torch.testing.assert_close(theta.detach(), expected)
    # a third step, no decay: gamma_2 = ||d_theta_2||^2 / <DFULL d_theta_2, d_theta_2>
    d2 = expected - torch.tensor([0.7, 0.8], dtype=torch.float64)
    opt.step(closure_for(theta, opt, lambda t: quadratic(t, DFULL)))
    gamma_2 = float(d2 @ d2) / float(d2 @ DFULL @ d2)
    assert opt.last_step_size == pytest.approx(gamma_2)
    torch.testing.assert_close(theta.detach(), expected - 0.1 * gamma_2 * (DFULL @ expected))


@pytest.mark.parametrize(("abs_curvature", "gamma_1"), [(False, 7.0), (True, 1.0)])
def test_algorithm_2_on_a_concave_function(abs_curvature, gamma_1):
    # J = -1/2 ||theta||^2: d_g = -d_theta, so <d_g, d_theta> < 0: nu (eq. 4.8), or |.| for BB with absolute
    # values, which gives ||d_theta||^2 / ||d_theta||^2 = 1
    theta = torch.nn.Parameter(T0.clone())
    opt = StepTunedGD([theta], lr=0.1, nu=7.0, abs_curvature=abs_curvature)
    for _ in range(2):
        opt.step(closure_for(theta, opt, lambda t: -0.5 * (t**2).sum()))
    assert opt.last_step_size == gamma_1
    torch.testing.assert_close(theta.detach(), T0 * 1.1 * (1 + 0.1 * gamma_1))


@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_expected_curvature_averages_over_all_minibatches(b):
    # per-sample J_n = 1/2 (a_n . theta - y_n)^2: g_n = a_n r_n, H_n = a_n a_n^T; average H_B g_B over all
    # the subsets of size b
    a = torch.tensor([[1.0, 2.0], [0.5, -1.0], [-2.0, 0.3], [1.5, 1.0]], dtype=torch.float64)
    y = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    theta = torch.tensor([0.7, -0.4], dtype=torch.float64)
    r = a @ theta - y
    subsets = list(itertools.combinations(range(4), b))
    expected = torch.zeros(2, dtype=torch.float64)
    for s in subsets:
        H_B = sum(torch.outer(a[n], a[n]) for n in s) / b
        g_B = sum(a[n] * r[n] for n in s) / b
        expected += H_B @ g_B / len(subsets)
    got = expected_curvature(lambda t: 0.5 * (a @ t - y) ** 2, theta, b)
    torch.testing.assert_close(got, expected)
    assert math.comb(4, b) == len(subsets)
