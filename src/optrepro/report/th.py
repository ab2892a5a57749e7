"""TH figures and tables from the toy runs: Figure 2.1 (non-smooth Rosenbrock), Figure 3.2 (spirals), Table 3.1
(saddle escape) beside the thesis's numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from optrepro.report.figures import figure_lines, save, to_markdown
from optrepro.toys.inna_toys import quadratic, rosenbrock_ns

THESIS_T3_1 = pd.DataFrame(
    {
        "method": ["INNA alpha beta < 1", "INNA alpha beta > 1", "GD"],
        "thesis share (-sqrt2, 0)": [0.488, 0.507, 0.502],
        "thesis share (sqrt2, 0)": [0.512, 0.493, 0.498],
        "thesis share (0, 0)": [0.0, 0.0, 0.0],
        "thesis escape (units of 5 iterations)": [36, 35, 37],
    }
)


def _contour(ax, objective, paths: pd.DataFrame, levels) -> None:
    """Level lines of ``objective`` over the box the trajectories visit (with a margin)."""
    box = []
    for col in ("t1", "t2"):
        lo, hi = paths[col].min(), paths[col].max()
        pad = 0.1 * (hi - lo) + 1e-3
        box.append((lo - pad, hi + pad))
    x, y = np.meshgrid(np.linspace(*box[0], 300), np.linspace(*box[1], 300))
    z = objective(torch.tensor(np.stack([x, y], -1))).numpy()
    ax.contour(x, y, z, levels=levels, cmap="Greys", linewidths=0.6)


def rosenbrock_figure(run_dir: Path, out: Path) -> dict:
    paths = pd.read_csv(run_dir / "trajectories.csv")
    settings = list(dict.fromkeys(paths.setting))
    fig, axes = plt.subplots(1, len(settings) + 1, figsize=(4 * (len(settings) + 1), 3.6), layout="constrained")
    for ax, setting in zip(axes, settings):
        p = paths[paths.setting == setting]
        _contour(ax, rosenbrock_ns, p, np.geomspace(0.05, 1000, 15))
        ax.plot(p.t1, p.t2, lw=0.8, color="tab:red")
        ax.plot([-1], [1.5], "kx")
        ax.plot([1], [1], "k*")
        ax.set_title(setting, fontsize=9)
    for setting in settings:
        p = paths[paths.setting == setting]
        axes[-1].plot(p.iteration, p.J, label=setting, lw=1)
    axes[-1].set_yscale("log")
    axes[-1].set_xlabel("iteration")
    axes[-1].set_ylabel("J")
    axes[-1].legend(fontsize=7)
    files = save(fig, out, "th_f2_1_rosenbrock")
    last = paths.groupby("setting").J.last()
    caption = (
        "TH Figure 2.1: full-batch INNA on J = 100 (t2 - |t1|)^2 + |1 - t1| from (-1, 1.5), step 1e-4, "
        f"{int(paths.iteration.max())} iterations; final J: "
        + "; ".join(f"{s}: {last[s]:.2g}" for s in settings)
        + ". Thesis: larger beta removes transverse oscillations; (1.3, 0.1) best in the long run."
    )
    return {"files": files, "caption": caption}


def spirals_figure(run_dir: Path, out: Path) -> dict:
    paths = pd.read_csv(run_dir / "trajectories.csv")
    settings = list(dict.fromkeys(paths.setting))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    _contour(axes[0], quadratic, paths, np.geomspace(0.01, 3000, 12))
    for setting in settings:
        p = paths[paths.setting == setting]
        axes[0].plot(p.t1, p.t2, lw=0.8, label=setting)
        axes[1].plot(p.iteration, p.J, lw=1, label=setting)
        axes[2].plot(p.iteration, p.distance, lw=1, label=setting)
    axes[0].legend(fontsize=7)
    axes[0].set_xlabel("t1")
    axes[0].set_ylabel("t2")
    for ax, name in zip(axes[1:], ("J", "distance to (0, 0)")):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(name)
    for ax, title in zip(axes, ("(a) paths on the contours of J", "(b) J", "(c) distance to the minimizer")):
        ax.set_title(title, fontsize=9)
    fig.suptitle("TH Figure 3.2: INNA on J = t1^2 + 2 t2^2", fontsize=10)
    files = save(fig, out, "th_f3_2_spirals")
    caption = (
        "TH Figure 3.2: full-batch INNA on J = t1^2 + 2 t2^2 from (1, 1), step 1e-2, "
        f"{int(paths.iteration.max())} iterations. Thesis: spirals when alpha beta < 1, none when alpha beta > 1, "
        "and alpha beta < 1 is still faster; alpha(t) = 2/t spirals widely unless beta is larger."
    )
    return {"files": files, "caption": caption}


def saddle_table(run_dir: Path) -> tuple[pd.DataFrame, str]:
    ours = pd.read_csv(run_dir / "table.csv")
    ours["method kind"] = ours.method.str.replace(r" \(.*\)", "", regex=True).str.strip()
    ours.loc[ours.method.str.contains("< 1"), "method kind"] = "INNA alpha beta < 1"
    ours.loc[ours.method.str.contains("> 1"), "method kind"] = "INNA alpha beta > 1"
    off = ours[ours.start_set.str.startswith("off")].merge(THESIS_T3_1, left_on="method kind", right_on="method")
    cols = ["method_x", "runs", "share (-sqrt2, 0)", "share (sqrt2, 0)", "share (0, 0)", "mean_escape/5"]
    table = off[cols + list(THESIS_T3_1.columns[1:])].rename(columns={"method_x": "method"})
    on = ours[ours.start_set.str.startswith("on")]
    note = (
        f"On the stable manifold, the share ending at (0, 0): {', '.join(f'{s:.0%}' for s in on['share (0, 0)'])} "
        "(thesis: 100% for each). Escape: the first iteration at which the iterate is nearer a minimizer than the "
        "saddle, divided by 5 because the thesis's column counted in units of 5 iterations."
    )
    return table, note


def regression_figure(run_dir: Path, out: Path, deterministic: bool) -> dict:
    curves, chosen = pd.read_csv(run_dir / "curves.csv"), pd.read_csv(run_dir / "chosen.csv")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x, y = ("iteration", "J_minus_Jstar") if deterministic else ("epoch", "J")
    settings = chosen.set_index("method")
    for method, c in curves.groupby("method", sort=False):
        row = settings.loc[method]
        nu = row.get("nu", float("nan"))  # Algorithm 2's nu (F4.2 runs before it was selected have no column)
        label = f"{method} ({'step' if method == 'GD with Armijo' else 'alpha'} {row.alpha:g}"
        label += ")" if pd.isna(nu) else f", nu {nu:g})"
        ax.plot(c[x], c[y].clip(lower=1e-16), label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("J - J*" if deterministic else "J")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    if deterministic:
        files = save(fig, out, "th_f4_2_regression")
        hits = "; ".join(f"{r.method}: {r.iterations_to_tolerance}" for r in chosen.itertuples())
        caption = (
            f"TH Figure 4.2: non-convex regression (N = 500, P = 30), full batch; J* = {chosen.J_star.iloc[0]:.6g} "
            f"(best value of any method). Iterations to reach J - J* < 0.1 with each method's best hyper-parameters "
            f"(Algorithm 2: alpha and nu; BB: alpha; Armijo: first trial step): {hits}. "
            "Thesis: Algorithm 2 fastest."
        )
    else:
        files = save(fig, out, "th_f4_3_regression_minibatch")
        finals = "; ".join(f"{r.method}: {r.final_J:.4g}" for r in chosen.itertuples())
        caption = (
            "TH Figure 4.3: the same problem with minibatches of 50, J after each epoch; alpha chosen by the lowest J "
            f"after {chosen.selection_epochs.iloc[0]} epochs. Final J: {finals}. Thesis: Exact-GV, Expected-GV and "
            "Step-Tuned SGD drop fast, Stochastic-GV fails."
        )
    return {"files": files, "caption": caption}


def instances_table(run_dirs: list[Path], seeds: list[int], deterministic: bool) -> tuple[pd.DataFrame, str]:
    """F4.2 or F4.3 over several problem instances (one run per seed): one row per instance with each method's
    iterations to the tolerance (F4.2) or final J (F4.3), and a sentence on how often each method came first."""
    value = "iterations_to_tolerance" if deterministic else "final_J"
    frames = [pd.read_csv(d / "chosen.csv").assign(seed=seed) for d, seed in zip(run_dirs, seeds)]
    table = pd.concat(frames).pivot(index="seed", columns="method", values=value)
    table = table[list(frames[0].method)]  # the methods in the order they ran
    best = table.min(axis=1)
    first = {m: int((table[m] == best).sum()) for m in table}
    alone = {m: int((table[m] < table.drop(columns=m).min(axis=1)).sum()) for m in table}
    what = "iterations to J - J* < 0.1 (251: not within 250)" if deterministic else "final J after the last epoch"
    note = (
        f"Over {len(table)} problem instances (seeds {', '.join(map(str, table.index))}), {what}. Best or tied: "
        + "; ".join(f"{m} {first[m]} (alone {alone[m]})" for m in table)
        + ". Median: "
        + "; ".join(f"{m} {table[m].median():.4g}" for m in table)
        + "."
    )
    return table.reset_index(), note


def th_section(runs: pd.DataFrame, out: Path) -> list[str]:
    lines = ["## TH: low-dimensional experiments", ""]
    done = runs[runs.status == "completed"].sort_values("seed", kind="stable")
    for experiment, stem in (("th/regression_f4_2", "th_f4_2_instances"), ("th/regression_f4_3", "th_f4_3_instances")):
        several = done[done.experiment == experiment]
        if len(several) > 1:  # a sweep over problem instances: the figure shows the first, the table all of them
            table, note = instances_table(
                [Path(d) for d in several.run_dir], [int(s) for s in several.seed], experiment.endswith("f4_2")
            )
            table.to_csv(out / f"{stem}.csv", index=False)
            figure = "4.2" if experiment.endswith("f4_2") else "4.3"
            lines += [f"TH Figure {figure} on every problem instance run:", "", to_markdown(table), "", note, ""]
        done = done.drop(several.index[1:])
    for run in done.itertuples():
        run_dir = Path(run.run_dir)
        if run.experiment == "th/saddle_t3_1":
            table, note = saddle_table(run_dir)
            table.to_csv(out / "th_t3_1_saddle.csv", index=False)
            lines += [
                "TH Table 3.1, starts off the stable manifold (ours beside the thesis's):",
                "",
                to_markdown(table),
                "",
                note,
                "",
            ]
            continue
        draw = {
            "th/rosenbrock_f2_1": rosenbrock_figure,
            "th/spirals_f3_2": spirals_figure,
            "th/regression_f4_2": lambda d, o: regression_figure(d, o, deterministic=True),
            "th/regression_f4_3": lambda d, o: regression_figure(d, o, deterministic=False),
        }.get(run.experiment)
        if draw is not None:
            item = draw(run_dir, out)
            lines += figure_lines(item["caption"], item["files"])
    return lines
