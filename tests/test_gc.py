"""Gaussian continuation (GC): the perturbed objective, both lambda-gradient estimators, the scheduled lambdas and the
2-D saddle of GC eq. 9 against its closed-form smoothing."""

import math

import pytest
import torch
from torch import nn

from optrepro.methods.gaussian_continuation import GaussianContinuation, fixed_schedule
from optrepro.toys import gc_saddle


class Quadratic(nn.Module):
    """f(theta) = 1/2 theta^T A theta, evaluated by a 'model' whose only parameter is theta (x is ignored)."""

    def __init__(self, theta, a):
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.register_buffer("a", a)

    def forward(self, x):
        return 0.5 * self.theta @ self.a @ self.theta


def _loss(pred, target):
    return pred


def test_tiny_lambda_gives_the_plain_update():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    plain = [p.clone() for p in net.parameters()]
    method = GaussianContinuation(schedule="constant", log_lambda0=-80.0)  # lambda = e^-80, sqrt ~ 4e-18
    results = []
    for use_method in (False, True):
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        with torch.no_grad():
            for p, q in zip(model.parameters(), plain):
                p.copy_(q)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = nn.functional.mse_loss
        loss = method.objective(model, x, y, loss_fn, method.parameter(0)) if use_method else loss_fn(model(x), y)
        loss.backward()
        method.after_backward(model)
        opt.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def _estimates(estimator, n, lam, theta, a, beta=0.0, regularization="paper", seed=0):
    """n one-sample estimates of dg/dlambda (s frozen by a long warm-up, so every draw sees the same lambda)."""
    torch.manual_seed(seed)
    method = GaussianContinuation(
        log_lambda0=math.log(lam),
        estimator=estimator,
        warmup_epochs=10**9,
        beta=beta,
        regularization=regularization,
    )
    method.parameter(0)
    model = Quadratic(theta, a)
    out = []
    for _ in range(n):
        model.zero_grad()
        if method.s is not None:
            method.s.grad = None
        method.objective(model, None, None, _loss, lam).backward()
        method.after_backward(model)
        out.append(float(method.last_s_grad) / lam)  # dg/ds = lambda dg/dlambda
    assert float(method.s.detach().exp()) == pytest.approx(lam)  # frozen during the warm-up
    return torch.tensor(out, dtype=torch.float64)


A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
THETA = torch.tensor([0.5, -1.0, 2.0])
LAM = 0.3


def test_pathwise_estimator_matches_the_trace_within_its_derived_spread():
    # One draw: X = eps.A theta / (2 sqrt(lambda)) + eps^T A eps / 2, E X = tr(A) / 2,
    # Var X = theta^T A^2 theta / (4 lambda) + tr(A^2) / 2 (eps Gaussian: the two terms are uncorrelated).
    n = 1500
    est = _estimates("pathwise", n, LAM, THETA, A)
    var = float(THETA @ A @ A @ THETA) / (4 * LAM) + float(torch.trace(A @ A)) / 2
    assert abs(float(est.mean()) - float(torch.trace(A)) / 2) < 5 * math.sqrt(var / n)
    # the derived variance is the right one: kurtosis ~8.3 here, so var-hat has relative sd sqrt(7.3/n) = 0.07
    assert float(est.var()) == pytest.approx(var, rel=0.3)


def test_score_estimator_matches_the_trace_within_a_conservative_bound():
    # GC eq. 8 has a heavier-tailed spread; bound: 6 standard errors from the draws' own spread (fixed seed).
    n = 1500
    est = _estimates("score", n, LAM, THETA, A, seed=1)
    assert abs(float(est.mean()) - float(torch.trace(A)) / 2) < 6 * float(est.std()) / math.sqrt(n)


@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_regularization_adds_beta_m(estimator):
    beta = 0.25
    plain = _estimates(estimator, 20, LAM, THETA, A, seed=3)
    regularized = _estimates(estimator, 20, LAM, THETA, A, beta=beta, seed=3)  # same draws
    torch.testing.assert_close(regularized - plain, torch.full_like(plain, beta * 3), rtol=0, atol=1e-4)


def test_authors_regularization_is_scaled_by_lambda0_in_s_space():
    beta = 0.25
    plain = _estimates("pathwise", 5, LAM, THETA, A, seed=4)
    authors = _estimates("pathwise", 5, LAM, THETA, A, beta=beta, regularization="authors", seed=4)
    # s-space term beta m lambda / lambda_0 = beta m at the start; divided by lambda in _estimates
    torch.testing.assert_close(authors - plain, torch.full_like(plain, beta * 3 / LAM), rtol=0, atol=1e-4)


def test_learned_lambda_moves_after_the_warm_up_and_parameters_see_unperturbed_theta():
    torch.manual_seed(0)
    model = Quadratic(THETA, A)
    method = GaussianContinuation(log_lambda0=math.log(LAM), lr=0.1, warmup_epochs=1, beta=1.0)
    before = model.theta.detach().clone()
    for epoch in (0, 1):
        method.parameter(epoch)
        method.objective(model, None, None, _loss, LAM).backward()
        method.after_backward(model)
    torch.testing.assert_close(model.theta.detach(), before)  # the objective never writes theta
    assert method.current_lambda() < LAM  # beta m pushes s down once the warm-up is over


def test_fixed_schedules():
    assert fixed_schedule("geometric", 2.0, 0.5)(3) == pytest.approx(0.25)
    assert fixed_schedule("inverse_power", 2.0, 2.0)(3) == pytest.approx(2.0 / 16)
    assert fixed_schedule("constant", 2.0, 0.5)(7) == 2.0
    with pytest.raises(ValueError, match="no fixed schedule"):
        fixed_schedule("learned", 2.0, 0.5)
    method = GaussianContinuation(schedule="geometric", log_lambda0=0.0, gamma=0.5)
    assert method.parameter(2) == pytest.approx(0.25)


# ---- GC Figure 4: the saddle ------------------------------------------------------------------------------------
def test_closed_form_smoothing_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    theta, lam, a = torch.tensor([0.7, -0.4], dtype=torch.float64), 1.3, 0.02
    eps = torch.randn(400_000, 2, generator=g, dtype=torch.float64) * math.sqrt(lam)
    values = gc_saddle.saddle(theta + eps, a)
    exact = float(gc_saddle.smoothed_saddle(theta, lam, a))
    assert abs(float(values.mean()) - exact) < 5 * float(values.std()) / math.sqrt(len(values))
    assert float(gc_saddle.smoothed_saddle(theta, 0.0, a)) == pytest.approx(float(gc_saddle.saddle(theta, a)))


def test_the_authors_gradient_is_the_gradient_of_their_smoothed_function_and_not_eq_9s():
    """The notebook's theta-gradient -(theta - h) exp(-d^2) (per well, plus the quadratic's) is the gradient of
    F = a (d1^2 + d2^2) - (e^{-d1^2} + e^{-d2^2}) / 2; authors_smoothed is E F(theta + eps), checked by Monte Carlo."""
    theta, a = torch.tensor([0.7, -0.4], dtype=torch.float64, requires_grad=True), 0.02
    centres = torch.tensor(gc_saddle.CENTRES, dtype=torch.float64)
    by_hand = sum(2 * a * (theta - c) + (theta - c) * torch.exp(-(theta - c).pow(2).sum()) for c in centres)
    (autograd,) = torch.autograd.grad(gc_saddle.authors_smoothed(theta, 0.0, a), theta)
    assert torch.allclose(autograd, by_hand.detach())
    (eq9,) = torch.autograd.grad(gc_saddle.saddle(theta, a), theta)
    assert not torch.allclose(autograd, eq9, rtol=0.1)
    g = torch.Generator().manual_seed(1)
    lam = 0.9
    eps = torch.randn(400_000, 2, generator=g, dtype=torch.float64) * math.sqrt(lam)
    d1, d2 = ((theta.detach() + eps - c).pow(2).sum(-1) for c in centres)
    values = a * (d1 + d2) - (torch.exp(-d1) + torch.exp(-d2)) / 2
    exact = float(gc_saddle.authors_smoothed(theta.detach(), lam, a))
    assert abs(float(values.mean()) - exact) < 5 * float(values.std()) / math.sqrt(len(values))


def test_with_the_authors_gradient_a_0_02_holds_the_origin_and_a_0_01_does_not():
    """The authors' setting (docs/gc.md "F4"): a = 0.02 stalls at the origin with lambda at eq. 9's lambda* (0.824),
    beta = 0.01 lowers lambda but does not release theta; a = 0.01 leaves for a minimum with lambda -> 0."""
    settings = dict(start=[-3.0, 3.000001], lambda0=3.0, lr=1.5, lambda_lr=1.0, warmup=200, iterations=3000)
    for beta in (0.0, 0.01):
        bad = gc_saddle.continuation_path(0.02, **settings, beta=beta, theta_gradient="authors").iloc[-1]
        assert math.hypot(bad.t1, bad.t2) < 1e-3 and bad["lambda"] > 0.5
        good = gc_saddle.continuation_path(0.01, **settings, beta=beta, theta_gradient="authors").iloc[-1]
        assert math.hypot(good.t1, good.t2) > 2.5 and good["lambda"] == 0.0
    bad = gc_saddle.continuation_path(0.02, **settings, theta_gradient="authors").iloc[-1]
    assert bad["lambda"] == pytest.approx(_stall_lambda(0.02), rel=1e-3)
    exact = gc_saddle.continuation_path(0.02, **settings).iloc[-1]  # eq. 9's own gradient: no bad saddle
    assert math.hypot(exact.t1, exact.t2) > 2.5 and exact["lambda"] == 0.0


def test_trace_identity_on_the_saddle():
    # GC eq. 6: tr(d2g/dtheta2) = 2 dg/dlambda, checked on the closed form by autograd
    theta, lam = torch.tensor([0.3, 0.9], dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(lambda t: gc_saddle.smoothed_saddle(t, lam, 0.02), theta)
    lv = lam.clone().requires_grad_(True)
    (dl,) = torch.autograd.grad(gc_saddle.smoothed_saddle(theta, lv, 0.02), lv)
    assert float(torch.trace(hess)) == pytest.approx(2 * float(dl))


def _stall_lambda(a):
    """lambda* > 0 where dg/dlambda at the origin vanishes: 4a + 2 e^{-4/s} s^-2 (1 - 4/s) = 0, s = 1 + lambda."""
    from scipy.optimize import brentq

    return brentq(lambda lam: 4 * a + 2 * math.exp(-4 / (1 + lam)) / (1 + lam) ** 2 * (1 - 4 / (1 + lam)), 0.3, 3)


def test_bad_saddle_stalls_with_lambda_above_zero_without_regularization():
    # a = 0.02 from a start on the origin's stable line: theta -> 0 and lambda -> lambda* > 0 (g stationary in both)
    path = gc_saddle.continuation_path(0.02, [1.5, -1.5], 3.0, 0.5, 0.2, 100, 1500)
    last = path.iloc[-1]
    assert math.hypot(last.t1, last.t2) < 1e-6
    assert last["lambda"] == pytest.approx(_stall_lambda(0.02), rel=1e-3) and last["lambda"] > 0.5


def test_regularization_drives_lambda_to_zero_and_reaches_a_minimum():
    start = [1.5, -1.499999]  # the preset's start
    free = gc_saddle.continuation_path(0.02, start, 3.0, 0.5, 0.02, 300, 1200)
    reg = gc_saddle.continuation_path(0.02, start, 3.0, 0.5, 0.02, 300, 1200, beta=0.05)
    # without beta: still held at the origin with lambda > 0 after 1200 iterations
    assert math.hypot(free.t1.iloc[-1], free.t2.iloc[-1]) < 1e-3 and free["lambda"].iloc[-1] > 0.5
    # with beta: lambda decreases to 0 and the iterate sits at a minimum of f (gradient ~ 0, f below the saddle's)
    assert reg["lambda"].iloc[-1] == 0.0
    theta = torch.tensor([reg.t1.iloc[-1], reg.t2.iloc[-1]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(gc_saddle.saddle(theta, 0.02), theta)
    assert float(grad.norm()) < 1e-6
    assert reg.f.iloc[-1] < float(gc_saddle.saddle(torch.zeros(2, dtype=torch.float64), 0.02)) - 0.5
