"""HT figures and tables: Figures 1, 8 and 2b (median train loss against epochs), 2a (final loss against omega),
5 (pictures of the homotopy), and the table of final losses with the homotopy's ratios to the baselines."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from optrepro.methods import gaussian_filter_targets, homotopy_targets
from optrepro.report.figures import median_band, method_color, method_label, save

METHODS = ["random_init", "warm_start", "data_homotopy"]
FIGURE_BY_OMEGA = {74: "1a", 137: "1b", 95: "8a", 116: "8b"}
PAPER_CLAIM = "homotopy reaches up to two orders of magnitude lower train loss than warm start and random init"


def figure_id(experiment: str, omega: float) -> str:
    if experiment.endswith("sine_f2b"):
        return "2b"
    return FIGURE_BY_OMEGA.get(int(omega), "2a (one omega)") if float(omega).is_integer() else "2a (one omega)"


def _settings(runs: pd.DataFrame) -> str:
    r = runs.iloc[0]
    return (
        f"profile {r.profile}, {r.epochs} target epochs (+{runs.source_epochs.max()} source epochs for warm start and "
        f"homotopy, not shown), {r.n_samples} samples, batch {r.batch_size}, noise std {r.noise_std}, "
        f"{r.optimizer} lr {r.lr}, {r.schedule} schedule"
    )


def sine_curves(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[dict]:
    """One figure per (experiment, omega): median train loss across runs against epochs, per method."""
    items = []
    sine = runs[runs.task == "sine"]
    for (experiment, omega), group in sine.groupby(["experiment", "omega"]):
        fid = figure_id(experiment, omega)
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        counts = []
        for method in [m for m in METHODS if m in set(group.method)] + sorted(set(group.method) - set(METHODS)):
            done = group[(group.method == method) & (group.status == "completed")]
            diverged = int(((group.method == method) & (group.status == "diverged")).sum())
            curves = metrics[metrics.run_dir.isin(done.run_dir) & (metrics.epoch >= 0)]
            counts.append(f"{method_label(method)}: {len(done)} runs" + (f", {diverged} diverged" if diverged else ""))
            if len(curves):
                median_band(ax, curves, "epoch", "train/loss", method_label(method), method_color(method))
        ax.set_yscale("log")
        ax.set_xlabel("epoch (target budget)")
        ax.set_ylabel("train loss (MSE, target task)")
        ax.set_title(f"HT Figure {fid.split()[0]}: omega = {omega:g}")
        ax.legend()
        ax.grid(alpha=0.3, which="both")
        stem = f"ht_sine_{experiment.rsplit('/', 1)[-1]}_omega{omega:g}"
        files = save(fig, out, stem)
        caption = (
            f"HT Figure {fid}: median train loss across runs (band: interquartile range) against epochs, "
            f"sine regression, omega = {omega:g}; {_settings(group)}. {'; '.join(counts)}."
        )
        items.append({"files": files, "caption": caption})
    return items


def final_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Median final train loss per (experiment, omega, method), with homotopy / warm start and / random ratios."""
    done = runs[(runs.task == "sine") & (runs.status == "completed")]
    last = metrics[metrics.run_dir.isin(done.run_dir)].sort_values("epoch").groupby("run_dir").tail(1)
    last = last.merge(done[["run_dir"]], on="run_dir")
    table = last.groupby(["experiment", "omega", "method"])["train/loss"].agg(["median", "count"]).reset_index()
    wide = table.pivot_table(index=["experiment", "omega"], columns="method", values="median")
    n = table.pivot_table(index=["experiment", "omega"], columns="method", values="count")
    out = pd.DataFrame(index=wide.index)
    for m in METHODS:
        if m in wide:
            out[f"{m} median"] = wide[m]
            out[f"{m} runs"] = n[m].astype(int)
    if "data_homotopy" in wide:
        for base in ("warm_start", "random_init"):
            if base in wide:
                out[f"homotopy / {base}"] = wide["data_homotopy"] / wide[base]
    return out.reset_index()


def final_vs_omega(table: pd.DataFrame, out: Path) -> list[dict]:
    """HT Figure 2a: median final train loss against omega, per method (needs at least two omegas)."""
    items = []
    for experiment, t in table.groupby("experiment"):
        if t.omega.nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for m in METHODS:
            if f"{m} median" in t:
                ax.plot(t.omega, t[f"{m} median"], "o-", label=method_label(m), color=method_color(m))
        ax.set_yscale("log")
        ax.set_xlabel("omega (rad)")
        ax.set_ylabel("median final train loss")
        ax.set_title("HT Figure 2a")
        ax.legend()
        ax.grid(alpha=0.3, which="both")
        files = save(fig, out, f"ht_sine_{experiment.rsplit('/', 1)[-1]}_final_vs_omega")
        items.append(
            {
                "files": files,
                "caption": f"HT Figure 2a: median train loss at the end of the target budget against omega "
                f"({experiment}).",
            }
        )
    return items


def homotopy_pictures(out: Path, omega: float = 137.0, xi: float = 0.01, samples: int = 2000) -> list[dict]:
    """HT Figure 5: y_lambda(x) from sin(x) to sin(omega x), exact (eq. 14) and by Gaussian filter (eq. 21-22)."""
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, 600).unsqueeze(-1)
    x_t = torch.rand(samples, 1, generator=g)
    y_s, y_t = torch.sin(x), torch.sin(omega * x)
    y_filter = gaussian_filter_targets(x, x_t, torch.sin(omega * x_t), xi)
    lams = [0.0, 0.25, 0.5, 0.75, 1.0]
    fig, axes = plt.subplots(2, len(lams), figsize=(3 * len(lams), 4.5), sharex=True, sharey=True)
    for j, lam in enumerate(lams):
        for i, (target, kind) in enumerate(((y_t, "exact"), (y_filter, "Gaussian filter"))):
            ax = axes[i, j]
            ax.plot(x.squeeze(), homotopy_targets(y_s, target, lam).squeeze(), lw=0.8)
            ax.set_title(f"{kind}, lambda = {lam:g}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("x")
    fig.suptitle(f"HT Figure 5: homotopy from sin(x) to sin({omega:g} x)")
    files = save(fig, out, "ht_f5_homotopy_pictures")
    caption = (
        f"HT Figure 5: y_lambda(x) = (1 - lambda) sin(x) + lambda y_target(x); top: exact target sin({omega:g} x) "
        f"(eq. 14), bottom: the target estimated by the Gaussian filter of eq. 21-22 from {samples} samples at "
        f"other inputs (xi = {xi:g})."
    )
    return [{"files": files, "caption": caption}]


def to_markdown(df: pd.DataFrame) -> str:
    """A pipe table without the optional ``tabulate`` dependency; floats in 3 significant digits."""

    def cell(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
