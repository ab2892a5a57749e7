"""HTA Table 1: quasi-Newton (scipy's BFGS) with and without the homotopy on the test function of HTA eq. 33-34.

    f(x) = (pi/n) {k sin^2(pi y_1) + sum_{i<n} (y_i - A)^2 [1 + k sin^2(pi y_{i+1})] + (y_n - A)^2},
    y_i = 1 + (x_i - 1) / 4, k = 10, A = 1: about 5^n local minima in |x_i| < 10, the global one at x = (1, ..., 1).

The homotopy (HTA eq. 35): two copies x and y of the variable, both starting at the initial guess x^0, and

    F(x, y; L) = f(x) + L ||x_{1..n/2} - x^0_{1..n/2}||^2 + f(y) + L ||y_{n/2+1..n} - x^0_{n/2+1..n}||^2
                 + (1/L) ||x - y||^2,

minimized by BFGS to convergence for each L on the path 0.9, 0.8, ..., 0.1 (the paper: "L from 0.9 to 0.1"; the
step 0.1 and solving each L to convergence are not stated in the paper), each solve starting where the previous one
ended; then (not stated in the paper) one BFGS solve of f itself from x, the limit L -> 0 of the path, since the
minimizer of F at L = 0.1 is still pulled towards the anchor. A start "reaches the global minimum" when the final x
is within ``tol`` of (1, ..., 1) in the max norm (not stated in the paper).

Eq. 35 anchors at the initial guess ("fixed and chosen based on the initial guess"); with that anchor the first
coordinate stays in the basin it starts in and the homotopy reaches the global minimum from the same starts as BFGS
alone. The anchor t = 0 of eq. 3 ("as in dropout") lies in the global minimum's basin; ``homotopies`` lists the
settings run side by side (docs/hta.md has the counts).

Follows the toy contract of ``optrepro.train.run_toy``: ``table_1(run_dir, seed, **settings) -> dict``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from optrepro.methods.schedules import stepped_range
from optrepro.toys import steps

#: HTA Table 1: (n, grid of initial values per coordinate) -> starts reaching the global minimum,
#: (quasi-Newton with the homotopy, quasi-Newton alone), and the number of starts.
PAPER_T1 = {2: (36, 24, 36), 4: (1296, 864, 1296), 6: (4096, 991, 4096)}


def nonconvex_f(x: np.ndarray, k: float = 10.0, a: float = 1.0) -> float:
    """HTA eq. 33-34."""
    n = x.shape[0]
    y = 1 + (x - 1) / 4
    s = np.sin(np.pi * y) ** 2
    inner = np.sum((y[:-1] - a) ** 2 * (1 + k * s[1:]))
    return float(np.pi / n * (k * s[0] + inner + (y[-1] - a) ** 2))


def nonconvex_grad(x: np.ndarray, k: float = 10.0, a: float = 1.0) -> np.ndarray:
    """The gradient of HTA eq. 33 (d sin^2(pi y) / dy = pi sin(2 pi y), dy/dx = 1/4)."""
    n = x.shape[0]
    y = 1 + (x - 1) / 4
    s = np.sin(np.pi * y) ** 2
    ds = np.pi * np.sin(2 * np.pi * y)
    g = np.zeros(n)
    g[0] += k * ds[0]
    g[:-1] += 2 * (y[:-1] - a) * (1 + k * s[1:])
    g[1:] += (y[:-1] - a) ** 2 * k * ds[1:]
    g[-1] += 2 * (y[-1] - a)
    return np.pi / n * g / 4


def homotopy_objective(z: np.ndarray, big_l: float, anchor: np.ndarray, k: float, a: float) -> tuple[float, np.ndarray]:
    """F(x, y; L) of HTA eq. 35 and its gradient, with z = (x, y); x's first and y's second half are anchored."""
    n = anchor.shape[0]
    h = n // 2
    x, y = z[:n], z[n:]
    dx = np.zeros(n)
    dx[:h] = x[:h] - anchor[:h]
    dy = np.zeros(n)
    dy[h:] = y[h:] - anchor[h:]
    diff = x - y
    value = nonconvex_f(x, k, a) + nonconvex_f(y, k, a) + big_l * (dx @ dx + dy @ dy) + (diff @ diff) / big_l
    gx = nonconvex_grad(x, k, a) + 2 * big_l * dx + 2 * diff / big_l
    gy = nonconvex_grad(y, k, a) + 2 * big_l * dy - 2 * diff / big_l
    return value, np.concatenate([gx, gy])


def bfgs(start: np.ndarray, k: float, a: float, gtol: float) -> tuple[np.ndarray, int]:
    """scipy's BFGS on f from ``start``: (end point, iterations)."""
    res = minimize(nonconvex_f, start, args=(k, a), jac=nonconvex_grad, method="BFGS", options={"gtol": gtol})
    return res.x, int(res.nit)


def homotopy_bfgs(
    start: np.ndarray,
    path: list[float],
    k: float,
    a: float,
    gtol: float,
    polish: bool = True,
    anchor: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """BFGS along the homotopy path of HTA eq. 35 from x = y = start, anchored at ``anchor`` (default: the start,
    as eq. 35 says): (end point x, total iterations)."""
    anchor = start if anchor is None else anchor
    z, iterations = np.concatenate([start, start]).astype(float), 0
    for big_l in path:
        res = minimize(
            homotopy_objective, z, args=(big_l, anchor, k, a), jac=True, method="BFGS", options={"gtol": gtol}
        )
        z, iterations = res.x, iterations + int(res.nit)
    x = z[: start.shape[0]]
    if polish:
        x, nit = bfgs(x, k, a, gtol)
        iterations += nit
    return x, iterations


def grid_starts(n: int, grid: list[float], starts: int, seed: int) -> np.ndarray:
    """Every point of grid^n (HTA Table 1), or ``starts`` of them drawn without replacement when fewer."""
    points = np.array(list(itertools.product(grid, repeat=n)), dtype=float)
    if starts < len(points):
        rng = np.random.default_rng(seed)
        points = points[np.sort(rng.choice(len(points), size=starts, replace=False))]
    return points


def table_1(
    run_dir: Path,
    seed: int,
    problems: list[dict],
    homotopies: list[dict],
    starts: int,
    k: float = 10.0,
    A: float = 1.0,  # noqa: N803 (the paper's name)
    polish: bool = True,
    tol: float = 1e-3,
    gtol: float = 1e-6,
    example: list[float] | None = None,
) -> dict[str, float]:
    """HTA Table 1: for each ``{n, grid}`` in ``problems``, BFGS alone and BFGS along each homotopy in
    ``homotopies`` (``{label, anchor: init | zero, L: {start, stop, step}}``) from every grid point (at most
    ``starts`` of them); counts the starts that reach the global minimum (1, ..., 1).

    Writes ``table.csv`` (one row per n and method, the paper's counts beside ours) and ``starts.csv`` (one row per
    start and method). ``example`` is the start of the paper's n = 4 illustration ([5, 4, 5, 5]: 8 BFGS steps
    without and 14 with the homotopy, only the homotopy reaching the global minimum); its iterations are returned.
    """
    methods = {"plain": None} | {h["label"]: h for h in homotopies}

    def solve(method: str, x0: np.ndarray) -> tuple[np.ndarray, int]:
        h = methods[method]
        if h is None:
            return bfgs(x0, k, A, gtol)
        if h["anchor"] not in ("init", "zero"):
            raise ValueError(f"task.homotopies[].anchor={h['anchor']!r} is not one of init, zero")
        anchor = x0 if h["anchor"] == "init" else np.zeros_like(x0)
        return homotopy_bfgs(x0, stepped_range(**h["L"]), k, A, gtol, polish, anchor)

    rows, per_start = [], []
    for problem in problems:
        n, grid = int(problem["n"]), list(problem["grid"])
        points = grid_starts(n, grid, starts, seed)
        paper = PAPER_T1.get(n, (math.nan, math.nan, math.nan))
        for method in methods:
            hits, iters = 0, []
            for x0 in steps(points, f"HTA Table 1, n={n}, {method}"):
                x, nit = solve(method, x0)
                hit = bool(np.max(np.abs(x - 1)) < tol)
                hits += hit
                iters.append(nit)
                per_start.append(
                    {"n": n, "start": " ".join(f"{v:g}" for v in x0), "method": method, "hit": hit, "iterations": nit}
                )
            rows.append(
                {
                    "n": n,
                    "grid": f"[{grid[0]:g}..{grid[-1]:g}]^{n}",
                    "method": method,
                    "starts": len(points),
                    "grid_points": len(grid) ** n,
                    "global_minimum": hits,
                    "share": hits / len(points),
                    "paper": paper[1] if method == "plain" else paper[0],
                    "paper_starts": paper[2],
                    "mean_iterations": float(np.mean(iters)),
                }
            )
    table = pd.DataFrame(rows)
    table.to_csv(Path(run_dir) / "table.csv", index=False)
    pd.DataFrame(per_start).to_csv(Path(run_dir) / "starts.csv", index=False)
    metrics: dict[str, float] = {}
    for row in rows:
        key = "plain" if row["method"] == "plain" else f"homotopy{list(methods).index(row['method'])}"
        metrics[f"t1/{key}_share_n{row['n']}"] = row["share"]
        metrics[f"t1/{key}_hits_n{row['n']}"] = float(row["global_minimum"])
    first = table[table.method == homotopies[0]["label"]] if homotopies else table
    metrics["t1/homotopy_share"] = float(first.global_minimum.sum() / first.starts.sum())
    if example is not None:
        x0 = np.array(example, dtype=float)
        for j, method in enumerate(methods):
            x, nit = solve(method, x0)
            key = "plain" if method == "plain" else f"homotopy{j}"
            metrics[f"t1/example_iterations_{key}"] = float(nit)
            metrics[f"t1/example_hit_{key}"] = float(np.max(np.abs(x - 1)) < tol)
    return metrics
