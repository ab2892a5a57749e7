"""optrepro-report's TH toy section on fabricated F4.2 runs over several problem instances."""

from __future__ import annotations

import json

import pandas as pd

from optrepro.report.cli import write_report

METHODS = ("Algorithm 2", "BB with absolute values", "GD with Armijo")
# iterations to J - J* < 0.1 per seed (251 = not within 250 iterations)
ITERATIONS = {0: (61, 61, 251), 1: (107, 100, 156), 2: (32, 85, 84)}


def fake_f4_2_run(root, seed, iterations):
    d = root / f"seed={seed}"
    d.mkdir(parents=True)
    summary = {"kind": "run", "status": "completed", "experiment": "th/regression_f4_2", "method": "plain"}
    cfg = {"task": {"name": "th_regression_f4_2", "module": "toy"}}
    (d / "summary.json").write_text(json.dumps({**summary, "seed": seed, "config": cfg}))
    chosen = pd.DataFrame(
        {
            "method": METHODS,
            "alpha": [1.0, 1.0, 1e4],
            "nu": [2.0, None, None],
            "iterations_to_tolerance": iterations,
            "J_star": 0.6,
        }
    )
    chosen.to_csv(d / "chosen.csv", index=False)
    curves = pd.DataFrame([{"method": m, "iteration": k, "J_minus_Jstar": 2.0**-k} for m in METHODS for k in range(4)])
    curves.to_csv(d / "curves.csv", index=False)


def test_several_f4_2_instances_give_one_figure_and_a_table_of_all(tmp_path):
    root = tmp_path / "runs"
    for seed, iterations in ITERATIONS.items():
        fake_f4_2_run(root, seed, iterations)
    report = write_report([root], tmp_path / "report").read_text()
    table = pd.read_csv(tmp_path / "report" / "th_f4_2_instances.csv")
    assert table.seed.tolist() == [0, 1, 2]
    assert table[list(METHODS)].values.tolist() == [list(v) for v in ITERATIONS.values()]
    # best or tied per seed: seed 0 Algorithm 2 and BB (61), seed 1 BB, seed 2 Algorithm 2; Armijo never
    assert "Algorithm 2 2 (alone 1); BB with absolute values 2 (alone 1); GD with Armijo 0 (alone 0)" in report
    assert "Median: Algorithm 2 61; BB with absolute values 85; GD with Armijo 156." in report
    assert report.count("th_f4_2_regression.png") == 1  # one figure, of the first instance (seed 0)
    assert "GD with Armijo: 251" in report
