"""HT figures and tables: Figures 1, 8 and 2b (median train loss against epochs), 2a (final loss against omega),
5 (pictures of the homotopy), the table of final losses with the homotopy's ratios to the baselines; and for
classification Figures 3a, 3b (train loss and test accuracy against epochs) and 6 (an interpolated image pair)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from optrepro.report.figures import median_band, method_color, method_label, save
from optrepro.report.series import scale_note

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


def _method_curves(group: pd.DataFrame, metrics: pd.DataFrame) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """Per method of ``group`` (``METHODS`` first, others after, sorted): its completed runs' metric rows over the
    target budget (epoch >= 0), and the caption's count of runs (and diverged ones) per method."""
    per_method, counts = [], []
    for method in [m for m in METHODS if m in set(group.method)] + sorted(set(group.method) - set(METHODS)):
        done = group[(group.method == method) & (group.status == "completed")]
        diverged = int(((group.method == method) & (group.status == "diverged")).sum())
        curves = metrics[metrics.run_dir.isin(done.run_dir) & (metrics.epoch >= 0)]
        counts.append(f"{method_label(method)}: {len(done)} runs" + (f", {diverged} diverged" if diverged else ""))
        per_method.append((method, curves))
    return per_method, counts


def sine_curves(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[dict]:
    """One figure per (experiment, omega): median train loss across runs against epochs, per method."""
    items = []
    sine = runs[runs.task == "sine"]
    for (experiment, omega), group in sine.groupby(["experiment", "omega"]):
        fid = figure_id(experiment, omega)
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        per_method, counts = _method_curves(group, metrics)
        for method, curves in per_method:
            if len(curves):
                median_band(ax, curves, "epoch", "train/loss", method_label(method), method_color(method))
        ax.set_yscale("log")
        ax.set_xlabel("epoch (target budget)")
        ax.set_ylabel("train loss (MSE, target task)")
        note = scale_note(group)
        ax.set_title(f"HT Figure {fid.split()[0]}: omega = {omega:g}" + (f"\n({note})" if note else ""), fontsize=10)
        ax.legend()
        ax.grid(alpha=0.3, which="both")
        stem = f"ht_sine_{experiment.rsplit('/', 1)[-1]}_omega{omega:g}"
        files = save(fig, out, stem)
        caption = (
            f"HT Figure {fid}: median train loss across runs (band: interquartile range) against epochs, "
            f"sine regression, omega = {omega:g}; {_settings(group)}. {'; '.join(counts)}."
            + (f" {note[0].upper()}{note[1:]}." if note else "")
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


CLASSIFICATION_FIGURE = {"fashion_mnist": "3a", "cifar10": "3b"}
CLASSIFICATION_CLAIM = {
    "3a": "homotopy about equal to warm start, faster than random initialization",
    "3b": "homotopy reaches a lower train loss in fewer epochs than warm start and random initialization",
}
DATASET_LABEL = {"mnist": "MNIST", "mnist5k": "MNIST (5000-image subset)", "fashion_mnist": "FashionMNIST",
                 "cifar10": "CIFAR-10"}  # fmt: skip


def _is_subset(r) -> bool:
    return r.source == "mnist5k" or not pd.isna(r.max_train_samples)


def _classification_runs(runs: pd.DataFrame) -> pd.DataFrame:
    exp = runs.experiment.fillna("")
    return runs[(runs.module == "classification") & exp.str.startswith("ht/") & runs.source.notna()]


def _classification_settings(group: pd.DataFrame) -> str:
    r = group.iloc[0]
    subset = []
    if r.source == "mnist5k":
        subset.append("the source is the 5000-image MNIST subset")
    if not pd.isna(r.max_train_samples):
        subset.append(f"each task's training set cut to {int(r.max_train_samples)} images")
    return (
        (f"SUBSET RUN ({'; '.join(subset)}); " if subset else "")
        + f"{DATASET_LABEL.get(r.source, r.source)} -> {DATASET_LABEL.get(r.target, r.target)}, "
        f"profile {r.profile}, {r.epochs} target epochs (+{group.source_epochs.max()} source epochs for warm start "
        f"and homotopy, not shown), batch {r.batch_size}, {r.optimizer} lr {r.lr}"
    )


def classification_curves(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[dict]:
    """HT Figure 3: median train loss across runs against epochs per method, and the test accuracy beside it.

    ``train/loss`` is the mean minibatch loss of the epoch on the task being trained (the lambda-mixture during
    the homotopy's steps, as a Keras history records it); ``test/acc`` is on the target's test split.
    """
    items = []
    for experiment, group in _classification_runs(runs).groupby("experiment"):
        fid = CLASSIFICATION_FIGURE.get(group.target.iloc[0], "3")
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
        per_method, counts = _method_curves(group, metrics)
        for method, curves in per_method:
            if len(curves):
                median_band(ax_loss, curves, "epoch", "train/loss", method_label(method), method_color(method))
                if "test/acc" in curves:
                    median_band(ax_acc, curves, "epoch", "test/acc", method_label(method), method_color(method))
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("train loss (cross-entropy)")
        ax_acc.set_ylabel("test accuracy (target task)")
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch (target budget)")
            ax.grid(alpha=0.3, which="both")
            ax.legend()
        subset = " (subset run)" if _is_subset(group.iloc[0]) else ""
        note = scale_note(group)
        fig.suptitle(
            f"HT Figure {fid}: {DATASET_LABEL.get(group.target.iloc[0])}{subset}" + (f" ({note})" if note else "")
        )
        files = save(fig, out, f"ht_{experiment.rsplit('/', 1)[-1]}")
        caption = (
            f"HT Figure {fid}: median train loss across runs (band: interquartile range) against epochs, and median "
            f"test accuracy; {_classification_settings(group)}. {'; '.join(counts)}. "
            f"The paper: {CLASSIFICATION_CLAIM.get(fid, '')}."
        )
        items.append({"files": files, "caption": caption})
    return items


def classification_table(runs: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Median final train loss and test accuracy per (experiment, method), with the number of completed runs."""
    done = _classification_runs(runs)
    done = done[done.status == "completed"]
    if done.empty:
        return pd.DataFrame()
    last = metrics[metrics.run_dir.isin(done.run_dir)].sort_values("epoch").groupby("run_dir").tail(1)
    cols = [c for c in ("train/loss", "test/acc") if c in last]
    table = last.groupby(["experiment", "method"])[cols].median()
    table["runs"] = last.groupby(["experiment", "method"]).size()
    table = table.reset_index()
    subset = {e: _is_subset(g.iloc[0]) for e, g in done.groupby("experiment")}
    table.insert(1, "subset run", table.experiment.map(subset).map({True: "yes", False: "no"}))
    order = {m: i for i, m in enumerate(METHODS)}
    return table.sort_values(["experiment", "method"], key=lambda s: s.map(order) if s.name == "method" else s)
