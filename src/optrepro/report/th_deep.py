"""TH deep-learning figures and tables: Figures 2.2-2.4 (NiN, chapter 2) and 4.4-4.6 (Table 4.1 problems (a)-(f)).

The thesis's layout: per problem, the log train loss and the test accuracy (test loss for the auto-encoder) against
the number of gradient evaluations (chapter 4) or epochs (chapter 2); one colour per optimizer; the solid line is
the mean over the random initializations, the shaded band spans the best and the worst run (ranked by final train
loss, TH Figure 4.4's caption; chapter 2 ranks the accuracy band by accuracy, section 2.6.2). A table gives each
optimizer's final test accuracy per problem with reference accuracies from the literature beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from optrepro.report.figures import figure_lines, percent, save, to_markdown
from optrepro.report.series import scale_note

OPTIMIZERS = {
    "SGD": ("SGD", "tab:blue"),
    "StepTunedSGD": ("Step-Tuned SGD", "tab:red"),
    "INNA": ("INNA", "tab:green"),
    "RMSprop": ("RMSprop", "tab:purple"),
    "Adam": ("Adam", "tab:orange"),
    "Adagrad": ("Adagrad", "tab:brown"),
}

# Reference test accuracies from elsewhere, for sanity (PAPERS.md): (dataset, network) -> text.
REFERENCE = {
    ("cifar10", "ResNet20"): "91.3% (He et al. 2016: 8.75% error, with augmentation and step decay)",
    ("cifar100", "ResNet20"): "about 68-69% (common ResNet-20 reimplementations)",
    ("cifar10", "VGG"): "about 93.5-94% (VGG-16 with BN)",
}

PROBLEMS = {
    "th/f4_4a": "TH Figure 4.4 (a): CIFAR-10, ResNet-20",
    "th/f4_4b": "TH Figure 4.4 (b): CIFAR-100, ResNet-20",
    "th/f4_4c": "TH Figure 4.4 (c): CIFAR-10, NiN (BN, ELU)",
    "th/f4_4d": "TH Figure 4.4 (d): MNIST auto-encoder (SiLU, MSE)",
    "th/f4_6e": "TH Figure 4.6 (e): CIFAR-10, LeNet without BN",
    "th/f4_6f": "TH Figure 4.6 (f): CIFAR-10, LeNet with BN",
    "th/f2_mnist": "TH Figures 2.2-2.4: MNIST (padded to 32x32), NiN",
    "th/f2_cifar10": "TH Figures 2.2-2.4: CIFAR-10, NiN",
    "th/f2_cifar100": "TH Figures 2.2-2.4: CIFAR-100, NiN",
}

# Settings that may vary within one problem's runs and then name the curve (Figures 2.2, 2.4, 4.5).
VARIANTS = [
    ("alpha", "optimizer.alpha", "alpha={}"),
    ("beta", "optimizer.beta", "beta={}"),
    ("q", "schedule.exponent", "k^-{}"),
    ("reuse", "task.reuse_batch", "minibatch x{}"),
]


def is_deep(runs: pd.DataFrame) -> pd.Series:
    """The TH runs that train a network (image tasks), as opposed to the toy loops of report/th.py."""
    return runs.experiment.fillna("").str.startswith("th/") & runs.module.isin(["classification", "autoencoding"])


def _select(cfg: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def run_table(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each run's optimizer label, network, dataset and the settings that name its curve."""
    rows = []
    for run in runs.itertuples():
        cfg = run.config
        opt = str(_select(cfg, "optimizer._target_") or "").rsplit(".", 1)[-1]
        row = {
            "run_dir": run.run_dir,
            "experiment": run.experiment,
            "status": run.status,
            "seed": run.seed,
            "optimizer": OPTIMIZERS.get(opt, (opt, None))[0],
            "color": OPTIMIZERS.get(opt, (opt, None))[1],
            "network": str(_select(cfg, "model._target_") or "").rsplit(".", 1)[-1],
            "dataset": _select(cfg, "task.data") or _select(cfg, "task.name"),
            "lr": _select(cfg, "optimizer.lr"),
        }
        for name, key, _ in VARIANTS:
            row[name] = _select(cfg, key)
        rows.append(row)
    table = pd.DataFrame(rows)
    labels = []
    for _, row in table.iterrows():
        same = table[(table.experiment == row.experiment) & (table.optimizer == row.optimizer)]
        varies = {name for name, _, _ in VARIANTS if same[name].astype(str).nunique() > 1}
        if varies & {"alpha", "beta"}:  # INNA's pair is named together (TH Figure 2.2's legend)
            varies -= {"alpha", "beta"}
            extra = [f"alpha={row.alpha}, beta={row.beta}"]
        else:
            extra = []
        extra += [fmt.format(row[name]) for name, _, fmt in VARIANTS if name in varies]
        labels.append(row.optimizer + (f" ({', '.join(extra)})" if extra else ""))
    table["label"] = labels
    return table


def _curves(metrics: pd.DataFrame, runs: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """One column per run of ``y`` indexed by ``x`` (runs logged at the same x values share rows)."""
    m = metrics[metrics.run_dir.isin(runs.run_dir)]
    return m.pivot_table(index=x, columns="run_dir", values=y, aggfunc="last").sort_index()


def problem_figure(experiment: str, table: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> dict:
    """Log train loss and test accuracy (or test loss) against gradient evaluations, one colour per curve label."""
    runs = table[(table.experiment == experiment) & (table.status == "completed")]
    m = metrics[metrics.run_dir.isin(runs.run_dir)]
    # chapter 4 plots against gradient evaluations, chapter 2 against epochs
    has_evals = "grad_evals" in m and m.grad_evals.notna().any()
    chapter2 = experiment.startswith("th/f2_")
    x = "grad_evals" if has_evals and not chapter2 else "epoch"
    right = "test/acc" if "test/acc" in m and m["test/acc"].notna().any() else "test/loss"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    palette = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    n_seeds = []
    for label, group in runs.groupby("label", sort=True):
        loss = _curves(m, group, x, "train/loss")
        if loss.empty:
            continue
        final = loss.ffill().iloc[-1]
        best, worst = final.idxmin(), final.idxmax()  # the band's runs, ranked by train loss (TH Figure 4.4)
        one_curve = runs[runs.optimizer == group.optimizer.iloc[0]].label.nunique() == 1
        color = (group.color.iloc[0] if one_curve else None) or next(palette)
        n_seeds.append(len(group))
        for ax, y in zip(axes, ("train/loss", right)):
            c = loss if y == "train/loss" else _curves(m, group, x, y)
            lo, hi = best, worst
            if y != "train/loss" and chapter2:  # chapter 2 ranks the accuracy band by accuracy (TH section 2.6.2)
                lo, hi = c.ffill().iloc[-1].idxmin(), c.ffill().iloc[-1].idxmax()
            ax.plot(c.index, c.mean(axis=1), color=color, lw=1.4, label=f"{label} ({len(group)})")
            ax.fill_between(c.index, c[lo], c[hi], color=color, alpha=0.2, lw=0)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("train loss (log)")
    axes[1].set_ylabel("test accuracy" if right == "test/acc" else "test loss")
    if right == "test/loss":
        axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("gradient evaluations" if x == "grad_evals" else "epoch")
    axes[0].legend(fontsize=7)
    stem, title = "th_" + experiment.split("/", 1)[1], PROBLEMS.get(experiment, experiment)
    if (runs.reuse.fillna(1) > 1).any():  # TH Figure 4.5: the same problem, every minibatch used twice
        stem, title = stem + "_reuse", title.replace("Figure 4.4", "Figure 4.5") + ", every minibatch used twice"
    note = scale_note(runs) if len(runs) else ""
    fig.suptitle(title + (f" ({note})" if note else ""), fontsize=9)
    files = save(fig, out, stem)
    seeds = f"{min(n_seeds)}-{max(n_seeds)}" if n_seeds and min(n_seeds) != max(n_seeds) else max(n_seeds, default=0)
    caption = (
        f"{title}: train loss and "
        + ("test accuracy" if right == "test/acc" else "test loss")
        + f" against {'gradient evaluations' if x == 'grad_evals' else 'epochs'}; lines: mean over "
        + f"{seeds} runs; band: best and worst run (by final train loss"
        + ("; by final test accuracy on the right)." if chapter2 and right == "test/acc" else ").")
        + (f" {note[0].upper()}{note[1:]}." if note else "")
    )
    return {"files": files, "caption": caption}


def accuracy_table(table: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per problem and curve label: runs, final train loss (mean), final test accuracy (mean, min, max), reference."""
    rows = []
    done = table[table.status == "completed"]
    reused = (table.reuse.fillna(1) > 1).groupby(table.experiment).any().to_dict()
    for (experiment, label), group in done.groupby(["experiment", "label"], sort=True):
        last = metrics[metrics.run_dir.isin(group.run_dir)].groupby("run_dir").last()
        acc = last["test/acc"].dropna() if "test/acc" in last else pd.Series(dtype=float)
        row = group.iloc[0]
        rows.append(
            {
                "problem": PROBLEMS.get(experiment, experiment)
                + (", minibatches used twice (Figure 4.5)" if reused.get(experiment) else ""),
                "optimizer": label,
                "runs": len(group),
                "diverged": int(
                    ((table.experiment == experiment) & (table.label == label) & (table.status == "diverged")).sum()
                ),  # fmt: skip
                "final train loss": last["train/loss"].mean() if "train/loss" in last else math.nan,
                "final test acc %": percent(acc.mean()) if len(acc) else math.nan,
                "min %": percent(acc.min()) if len(acc) else math.nan,
                "max %": percent(acc.max()) if len(acc) else math.nan,
                "final test loss": last["test/loss"].mean() if "test/loss" in last else math.nan,
                "reference": REFERENCE.get((row.dataset, row.network), ""),
            }
        )
    return pd.DataFrame(rows)


def th_deep_section(runs: pd.DataFrame, metrics: pd.DataFrame, out: Path) -> list[str]:
    """The report.md section for TH deep-learning runs, with ``th_deep_accuracy.csv`` and one figure per problem."""

    table = run_table(runs)
    acc = accuracy_table(table, metrics)
    acc.to_csv(out / "th_deep_accuracy.csv", index=False)
    shown = acc.copy()
    for col in ("final test acc %", "min %", "max %"):
        shown[col] = shown[col].map(lambda v: "" if v != v else f"{v:.2f}")
    for col in ("final train loss", "final test loss"):
        shown[col] = shown[col].map(lambda v: "" if v != v else f"{v:.4g}")
    lines = [
        "## TH: deep-learning benchmarks",
        "",
        "Final test accuracy per optimizer and problem (mean, min and max over completed runs; table "
        "`th_deep_accuracy.csv`), with reference accuracies from the literature beside them. The thesis reports "
        "curves, not final numbers, for these figures.",
        "",
        to_markdown(shown),
        "",
    ]
    for experiment in sorted(set(table.experiment)):
        item = problem_figure(experiment, table, metrics, out)
        lines += figure_lines(item["caption"], item["files"])
    return lines
