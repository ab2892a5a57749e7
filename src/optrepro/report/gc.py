"""GC figures from run directories: Figure 4 (the saddle: paths coloured by lambda, lambda against iterations),
Figure 5 (deep MLP on MNIST: mean train loss and accuracy) and Figures 6, 7 (neural ODEs: mean train and test MSE
against epochs), each with continuation against without and the range over runs shaded."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from optrepro.report.figures import figure_lines, save, to_markdown
from optrepro.report.series import scale_note
from optrepro.toys.gc_saddle import saddle

STYLE = {"gaussian_continuation": ("with continuation", "tab:red"), "plain": ("without continuation", "tab:blue")}
MSE = [("train/loss", "train MSE"), ("test/loss", "test MSE")]
CURVES = {
    "gc/mnist_mlp_f5": ("GC Figure 5: 30-layer MLP on MNIST", [("train/loss", "train loss"), ("train/acc", "acc")]),
    "gc/lotka_volterra_f6": ("GC Figure 6: Lotka-Volterra neural ODE", MSE),
    "gc/lorenz_f7": ("GC Figure 7: Lorenz neural ODE", MSE),
}
PAPER = {
    "gc/saddle_f4": "a = 0.01: lambda stalls, then reaches 0 at one of the minima; a = 0.02: lambda stalls > 0 at the "
    "origin unless regularized",
    "gc/mnist_mlp_f5": "without: stuck at 60-90% accuracy; with: about 94%, less spread",
    "gc/lotka_volterra_f6": "continuation descends faster",
    "gc/lorenz_f7": "without: stuck near MSE 1e1 with spikes; with: lower and more stable",
}


def saddle_figure(run_dir: Path, out: Path) -> dict:
    """GC Figure 4 from a ``gc/saddle_f4`` run's ``paths.csv``."""
    paths = pd.read_csv(Path(run_dir) / "paths.csv")
    keys = list(dict.fromkeys(zip(paths.a, paths.beta)))
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 6.6), squeeze=False, layout="constrained")
    grid = np.linspace(-3.5, 3.5, 200)
    x, y = np.meshgrid(grid, grid)
    vmax = paths["lambda"].max()
    for j, (a, beta) in enumerate(keys):
        p = paths[(paths.a == a) & (paths.beta == beta)]
        z = saddle(torch.tensor(np.stack([x, y], -1)), a).numpy()
        ax = axes[0, j]
        ax.contour(x, y, z, levels=20, cmap="Greys", linewidths=0.5)
        sc = ax.scatter(p.t1, p.t2, c=p["lambda"], cmap="viridis", vmin=0, vmax=vmax, s=4)
        ax.set_title(f"a = {a}, beta = {beta}", fontsize=9)
        ax.set_aspect("equal")
        axes[1, j].plot(p.iteration, p["lambda"], color="tab:purple")
        axes[1, j].set_xlabel("iteration")
        axes[1, j].set_ylabel("lambda")
    fig.colorbar(sc, ax=axes[0, :].tolist(), label="lambda", shrink=0.8)
    files = save(fig, out, "gc_f4_saddle")
    finals = paths.groupby(["a", "beta"]).last()
    summary = "; ".join(
        f"a={a}, beta={b}: final lambda {r['lambda']:.3g}, theta ({r.t1:.3g}, {r.t2:.3g})"
        for (a, b), r in finals.iterrows()
    )
    caption = f"GC Figure 4: Algorithm 2 with exact gradients of the smoothed eq. 9, lambda_0 = 3. {summary}."
    return {"files": files, "caption": caption}


def mean_and_range(group: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per epoch, across runs: the ``mean`` of ``column`` (the curve the paper draws) and its ``low`` and ``high``
    (the minimum and maximum over runs, the shaded band).

    The band is the range over runs, not mean +- one standard deviation: with a large spread (Lorenz) mean - std
    goes below zero, where a log axis has no place for it; the paper does not say what spread its figures show.
    """
    return group.groupby("epoch")[column].agg(mean="mean", low="min", high="max")


def curves_figure(metrics: pd.DataFrame, experiment: str, out: Path, note: str = "") -> dict:
    """Mean across runs of each panel's metric, per method, with the range over runs shaded (``mean_and_range``)."""
    title, panels = CURVES[experiment]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), layout="constrained")
    counts = {}
    for ax, (column, label) in zip(np.atleast_1d(axes), panels):
        for method, group in metrics.groupby("method"):
            if column not in group:
                continue
            name, color = STYLE.get(method, (method, None))
            stats = mean_and_range(group, column)
            ax.plot(stats.index, stats["mean"], color=color, label=name)
            ax.fill_between(stats.index, stats["low"], stats["high"], color=color, alpha=0.2)
            counts[method] = group.run_dir.nunique()
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if "loss" in column:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    if "data" in metrics and (metrics["data"] == "mnist5k").any():  # offline runs: say it wherever the numbers go
        title = f"{title} (SUBSET RUN: the 5000-image MNIST subset, task=mnist5k)"
    if note:  # below the paper's scale: said in the title and the caption
        title = f"{title} ({note})"
    fig.suptitle(title, fontsize=9)  # the figure says what it is (and its scale), not only the caption
    stem = experiment.replace("/", "_")
    files = save(fig, out, stem)
    runs = ", ".join(f"{n} {STYLE.get(m, (m,))[0]}" for m, n in counts.items())
    caption = f"{title}: mean across runs, shaded from the lowest to the highest run ({runs})."
    return {"files": files, "caption": caption}


def final_table(metrics: pd.DataFrame) -> pd.DataFrame:
    last = metrics.sort_values("epoch").groupby("run_dir").last()
    cols = [c for c in ("train/loss", "test/loss", "train/acc", "test/acc") if c in last]
    table = last.groupby(["experiment", "method"])[cols].agg(["mean", "std"])
    table.columns = [f"{a} {b}" for a, b in table.columns]
    table["runs"] = last.groupby(["experiment", "method"]).size()
    table["last epoch"] = last.groupby(["experiment", "method"]).epoch.max()
    if "data" in last:
        subset = last.groupby(["experiment", "method"])["data"].agg(lambda d: (d == "mnist5k").any())
        table["subset run"] = subset.map({True: "yes (mnist5k)", False: ""})
    return table.reset_index()


def gc_section(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[str]:
    """The report's GC section: every GC figure the runs allow, and a table of final metrics."""
    lines = ["## GC: Gaussian continuation", ""]
    items = []
    for run_dir in runs[runs.experiment == "gc/saddle_f4"].run_dir:
        if (Path(run_dir) / "paths.csv").is_file():
            items.append(saddle_figure(Path(run_dir), out))
            lines += [f"The paper (Figure 4): {PAPER['gc/saddle_f4']}.", ""]
            break
    if len(metrics) and "experiment" in metrics:
        # completed runs only: a run still going (or failed) would bend the mean at its last epoch
        gc = metrics[metrics.experiment.isin(list(CURVES)) & (metrics.status == "completed")]
        for experiment in sorted(set(gc.experiment)):
            note = scale_note(runs[(runs.experiment == experiment) & (runs.status == "completed")])
            items.append(curves_figure(gc[gc.experiment == experiment], experiment, out, note))
        if len(gc):
            table = final_table(gc)
            table.to_csv(out / "gc_final.csv", index=False)
            lines += ["Final-epoch metrics, mean and standard deviation across runs (`gc_final.csv`):", ""]
            lines += [to_markdown(table), ""]
            for experiment in sorted(set(gc.experiment)):
                lines += [f"The paper ({CURVES[experiment][0].split(':')[0]}): {PAPER[experiment]}.", ""]
    for item in items:
        lines += figure_lines(item["caption"], item["files"])
    return lines
