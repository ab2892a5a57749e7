"""The thesis's two-dimensional INNA experiments: gradients, the saddle-escape statistics, presets and figures."""

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from optrepro.config import compose, config_dir, experiment_names
from optrepro.optim import INNA
from optrepro.report.cli import main as report_main
from optrepro.toys import inna_toys as toys
from optrepro.train import run


def _is_toy(name: str) -> bool:
    """A preset whose task is a plain loop (module: toy), read from the files (the deep-learning presets of
    issue 4 train networks on image data and are checked at profile=smoke in test_configs.py)."""
    preset = OmegaConf.load(config_dir() / "experiment" / f"{name}.yaml")
    tasks = [d["override /task"] for d in preset.get("defaults", []) if "override /task" in d]
    return bool(tasks) and OmegaConf.load(config_dir() / "task" / f"{tasks[0]}.yaml").get("module") == "toy"


TH_PRESETS = [n for n in experiment_names() if n.startswith("th/") and _is_toy(n)]


@pytest.mark.parametrize(
    ("objective", "grad"),
    [
        (toys.rosenbrock_ns, toys.rosenbrock_ns_grad),
        (toys.quadratic, toys.quadratic_grad),
        (toys.saddle, toys.saddle_grad),
    ],
)
def test_gradients_match_autograd_away_from_kinks(objective, grad):
    t = torch.tensor([[0.7, -0.3], [-1.2, 1.9], [0.3, 0.8]], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(objective(t).sum(), t)
    torch.testing.assert_close(grad(t.detach()), auto)


def test_first_inna_step_on_the_quadratic_is_a_gradient_step():
    rows = [torch.tensor([[1.0, 1.0]], dtype=torch.float64)]
    path, _ = toys.descend(rows, toys.quadratic_grad, toys.inna_settings([(2.0, 0.1)], 0.01), 1)
    # grad J(1, 1) = (2, 4): theta_1 = (1 - 0.02, 1 - 0.04)
    torch.testing.assert_close(path[1, 0], torch.tensor([0.98, 0.96], dtype=torch.float64))


def test_escape_iterations_counts_the_first_exit():
    points = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    path = torch.tensor([[[0.0, 0.0]], [[0.4, 0.0]], [[0.6, 0.0]], [[0.1, 0.0]]], dtype=torch.float64)
    assert toys.escape_iterations(path, points, saddle=2).tolist() == [2]  # 0.6 is nearer (1, 0) than (0, 0)
    assert toys.escape_iterations(path[:2], points, saddle=2).tolist() == [-1]


def test_saddle_escape_at_100_starts(tmp_path):
    metrics = toys.saddle_t3_1(
        tmp_path,
        seed=3,
        starts=100,
        std=1e-12,
        lr=0.02,
        iterations=2000,
        inna=[[0.5, 1.0], [1.0, 1.1]],
    )
    table = pd.read_csv(tmp_path / "table.csv")
    off, on = table[table.start_set.str.startswith("off")], table[table.start_set.str.startswith("on")]
    assert (off["share (0, 0)"] == 0).all()  # no run off the manifold ends at the saddle
    assert (on["share (0, 0)"] == 1).all()  # every run on it does
    # each minimum gets a share consistent with 1/2: 4 binomial standard deviations, sqrt(1/4/100) = 0.05
    assert ((off["share (-sqrt2, 0)"] - 0.5).abs() <= 4 * math.sqrt(0.25 / 100)).all()
    # GD multiplies t1 by about 1 + 8 lr = 1.16 per step until |t1| > 1/sqrt 2: from |t1_0| = 1e-12 |z|,
    # (ln(0.707 / 1e-12) - E ln|z|) / ln 1.16 = (27.28 + 0.635) / 0.148 = 188 iterations (the cubic term adds a few)
    assert metrics["saddle/mean_escape_gd"] == pytest.approx(190, abs=8)


def test_a_row_of_inna_settings_is_the_single_run():
    rows = [torch.tensor([[-1.0, 1.5]], dtype=torch.float64) for _ in range(2)]
    _, both = toys.descend(rows, toys.rosenbrock_ns_grad, toys.inna_settings([(0.5, 0.1), (1.3, 0.1)], 1e-4), 50)
    theta = torch.nn.Parameter(torch.tensor([[-1.0, 1.5]], dtype=torch.float64))
    opt = INNA([theta], lr=1e-4, alpha=1.3, beta=0.1)
    for _ in range(50):
        theta.grad = toys.rosenbrock_ns_grad(theta.detach())
        opt.step()
    torch.testing.assert_close(both[1], theta.detach()[0])


@pytest.mark.parametrize("name", TH_PRESETS)
def test_th_preset_runs_at_quick_and_reports(name, tmp_path):
    cfg = compose([f"experiment={name}", "profile=quick", f"paths.run_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert isinstance(metrics[cfg.monitor], float)
    assert report_main([str(tmp_path / "run"), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "TH " in text
    assert list((tmp_path / "report").glob("th_*"))


# ---- TH Figures 4.2 and 4.3: the non-convex regression --------------------------------------------------------
def small_problem():
    from optrepro.toys.regression import regression_problem

    return regression_problem(seed=0, n=6, p=3, x_scale=2.0, noise_scale=3.0)


def test_regression_data_is_carmon_et_al_reading_drawn_in_order():
    from optrepro.toys.regression import regression_problem

    g = torch.Generator().manual_seed(3)
    A = torch.randn(5, 2, generator=g, dtype=torch.float64)
    z = 2.0 * torch.randn(2, generator=g, dtype=torch.float64)
    nu = torch.randn(5, generator=g, dtype=torch.float64)
    xi = torch.bernoulli(torch.full((5,), 0.3, dtype=torch.float64), generator=g)
    problem = regression_problem(seed=3, n=5, p=2, x_scale=2.0, noise_scale=3.0)  # gaussian_bernoulli by default
    torch.testing.assert_close(problem.A, A)
    torch.testing.assert_close(problem.b, A @ z + 3.0 * nu + xi)
    assert set(xi.tolist()) <= {0.0, 1.0}
    g = torch.Generator().manual_seed(3)
    A, z = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    u = torch.rand(5, generator=g, dtype=torch.float64)
    cauchy = regression_problem(seed=3, n=5, p=2, x_scale=1.0, noise_scale=0.5, noise="cauchy")
    torch.testing.assert_close(cauchy.b, A @ z + 0.5 * torch.tan(torch.pi * (u - 0.5)))
    with pytest.raises(ValueError, match="noise="):
        regression_problem(seed=3, n=5, p=2, x_scale=1.0, noise_scale=1.0, noise="laplace")


def test_regression_gradient_matches_autograd():
    problem = small_problem()
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(problem.loss(theta), theta)
    torch.testing.assert_close(problem.grad(theta.detach()), auto)


def test_expected_curvature_is_the_average_over_every_minibatch():
    import itertools

    problem = small_problem()
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)

    def curvature(idx):  # C_{J_A} = grad (1/2 ||grad J_A||^2) (thesis eq. 4.12), by autograd
        t = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.loss(t, idx), t, create_graph=True)
        return torch.autograd.grad(0.5 * (g**2).sum(), t)[0]

    subsets = [torch.tensor(s) for s in itertools.combinations(range(6), 2)]  # all 15 equally likely batches
    exact = torch.stack([curvature(s) for s in subsets]).mean(0)
    torch.testing.assert_close(problem.expected_curvature(theta, 2), exact)


def test_algorithm_2_tunes_its_second_step_from_the_first():
    from optrepro.toys.regression import bb_descent

    problem, alpha, nu = small_problem(), 0.5, 2.0
    losses = bb_descent(problem, torch.tensor([alpha], dtype=torch.float64), 2, "alg2", nu)
    t0 = torch.zeros(3, dtype=torch.float64)
    t1 = t0 - alpha * problem.grad(t0)
    d_theta, d_g = t1 - t0, problem.grad(t1) - problem.grad(t0)
    dot = float(d_theta @ d_g)
    gamma = float(d_theta @ d_theta) / dot if dot > 0 else nu
    t2 = t1 - alpha * gamma * problem.grad(t1)
    assert losses[:, 0].tolist() == pytest.approx([float(problem.loss(t)) for t in (t0, t1, t2)])


def test_figure_4_2_selects_alpha_and_nu_of_algorithm_2_jointly(tmp_path):
    import pandas as pd

    from optrepro.toys.regression import armijo_descent, bb_descent, deterministic_f4_2, regression_problem

    spec = dict(n=40, p=3, x_scale=5.0, noise_scale=1.0)  # far enough from the start for hits after 0
    grid, nus, steps, its, tol = [0.3, 1.0, 3.0], [2.0, 50.0], [1.0, 30.0], 30, 0.05
    deterministic_f4_2(tmp_path, 2, spec, its, 200, grid, nus, steps, tol)
    chosen = pd.read_csv(tmp_path / "chosen.csv").set_index("method")
    problem, alphas = regression_problem(2, **spec), torch.tensor(grid, dtype=torch.float64)
    alg2 = {(a, nu): bb_descent(problem, alphas, 200, "alg2", nu)[:, i] for nu in nus for i, a in enumerate(grid)}
    bb = {a: bb_descent(problem, alphas, 200, "bb_abs", 2.0)[:, i] for i, a in enumerate(grid)}
    arm = {s: armijo_descent(problem, torch.tensor(steps, dtype=torch.float64), 200)[:, i] for i, s in enumerate(steps)}
    j_star = min(float(c.min()) for runs in (alg2, bb, arm) for c in runs.values())
    assert chosen.J_star.iloc[0] == pytest.approx(j_star)

    def first(c):  # first iteration in [0, its] with J - J* < tol, its + 1 if none
        return next((k for k in range(its + 1) if float(c[k]) - j_star < tol), its + 1)

    for method, runs in (("Algorithm 2", alg2), ("BB with absolute values", bb), ("GD with Armijo", arm)):
        fastest = min(first(c) for c in runs.values())
        assert chosen.iterations_to_tolerance[method] == fastest
    a, nu = chosen.alpha["Algorithm 2"], chosen.nu["Algorithm 2"]
    assert first(alg2[(a, nu)]) == chosen.iterations_to_tolerance["Algorithm 2"]
    # on this instance nu matters: the large step nu = 50 reaches the tolerance before any alpha with nu = 2
    assert nu == 50.0 and min(first(alg2[(b, 2.0)]) for b in grid) > first(alg2[(a, nu)])
    assert chosen.alpha["GD with Armijo"] in steps and pd.isna(chosen.nu["GD with Armijo"])


def test_sgd_and_exact_gv_steps_by_hand():
    from optrepro.toys.regression import gv_sgd

    problem, alpha = small_problem(), 0.3
    batches = [[torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])]]
    a = [alpha / (k + 1) ** 0.501 for k in range(2)]
    t0 = torch.zeros(3, dtype=torch.float64)
    t1 = t0 - a[0] * problem.grad(t0, batches[0][0])
    sgd = t1 - a[1] * problem.grad(t1, batches[0][1])
    assert gv_sgd(problem, batches, alpha, "sgd")[-1] == pytest.approx(float(problem.loss(sgd)))
    d_theta, G = t1 - t0, problem.grad(t1) - problem.grad(t0)  # Exact-GV: full gradients
    dot = float(G @ d_theta)
    gamma = min(max(float(d_theta @ d_theta) / dot if dot > 0 else 2.0, 0.5), 2.0)
    exact = t1 - a[1] * gamma * problem.grad(t1, batches[0][1])
    assert gv_sgd(problem, batches, alpha, "exact")[-1] == pytest.approx(float(problem.loss(exact)))
