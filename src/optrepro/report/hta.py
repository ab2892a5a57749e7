"""HTA tables and figures beside the paper's numbers: Table 1 (the test function of eq. 33-34), Table 2 (VGG test
error, HTA vs plain SGD), Table 3 (5 repeats of HTA on VGG11 and VGG13), Figure 2 (VGG13 test error against epochs)
and Figure 3 (the homotopy on the conv part only, VGG11 and VGG13)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from optrepro.records import METRICS
from optrepro.report.figures import figure_lines, percent, save, to_markdown
from optrepro.report.series import scale_note

#: HTA Table 2: final-epoch test error (%) of plain SGD and of HTA per VGG depth.
PAPER_T2 = {11: (7.83, 7.02), 13: (5.82, 5.14), 16: (6.14, 5.71), 19: (6.35, 5.88)}
#: HTA Table 3: test accuracy (%) of HTA over 5 repeats: mean, std, max.
PAPER_T3 = {11: (91.53, 0.09, 91.66), 13: (92.76, 0.22, 93.09)}
#: HTA Figure 3: final test accuracy (%) with the homotopy on the conv part only, and of plain SGD.
PAPER_F3 = {11: (91.61, 91.01), 13: (93.09, 92.29)}
BASELINE = "plain"


def vgg_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The completed VGG runs, one row each: experiment, method, variant, depth, seed, final test accuracy (%)."""
    rows = []
    for run in runs[runs.experiment.fillna("").str.startswith("hta/vgg") & (runs.status == "completed")].itertuples():
        run_dir = Path(run.run_dir)
        cfg = run.config
        if not (run_dir / METRICS).is_file():
            continue
        curve = pd.read_csv(run_dir / METRICS)
        if "test/acc" not in curve or curve["test/acc"].dropna().empty:
            continue
        acc = float(curve["test/acc"].dropna().iloc[-1])
        rows.append(
            {
                "run_dir": str(run_dir),
                "experiment": run.experiment,
                "method": run.method,
                "variant": cfg.get("method", {}).get("variant", "-"),
                "depth": int(cfg.get("model", {}).get("depth", 0)),
                "seed": run.seed,
                "epochs": int(curve["epoch"].max()) + 1,
                "test_acc_pct": percent(acc),
            }
        )
    return pd.DataFrame(rows)


def table_2(vgg: pd.DataFrame) -> pd.DataFrame:
    """Mean final test error (%) per depth, plain SGD and each HTA method, beside HTA Table 2."""
    t2 = vgg[vgg.experiment == "hta/vgg_t2"]
    rows = []
    for depth, group in t2.groupby("depth"):
        plain = group[group.method == BASELINE]
        paper = PAPER_T2.get(depth, (float("nan"), float("nan")))
        for method, runs in group[group.method != BASELINE].groupby("method"):
            ours_plain = 100 - plain.test_acc_pct.mean() if len(plain) else float("nan")
            ours_hta = 100 - runs.test_acc_pct.mean()
            rows.append(
                {
                    "model": f"VGG{depth}",
                    "method": method,
                    "runs (plain, HTA)": f"{len(plain)}, {len(runs)}",
                    "epochs": int(runs.epochs.max()),
                    "plain error %": round(ours_plain, 2),
                    "HTA error %": round(ours_hta, 2),
                    "improvement %": round(100 * (ours_plain - ours_hta) / ours_plain, 2),
                    "paper plain %": paper[0],
                    "paper HTA %": paper[1],
                    "paper improvement %": round(100 * (paper[0] - paper[1]) / paper[0], 2),
                }
            )
    return pd.DataFrame(rows)


def table_3(vgg: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (n - 1) and max final test accuracy (%) of the HTA repeats per depth, beside HTA Table 3."""
    t3 = vgg[(vgg.experiment == "hta/vgg_t3") & (vgg.method != BASELINE)]
    rows = []
    for (depth, method), g in t3.groupby(["depth", "method"]):
        paper = PAPER_T3.get(depth, (float("nan"),) * 3)
        rows.append(
            {
                "model": f"VGG{depth}",
                "method": method,
                "runs": len(g),
                "mean %": round(g.test_acc_pct.mean(), 2),
                "std %": round(g.test_acc_pct.std(), 2) if len(g) > 1 else float("nan"),
                "max %": round(g.test_acc_pct.max(), 2),
                "paper mean %": paper[0],
                "paper std %": paper[1],
                "paper max %": paper[2],
            }
        )
    return pd.DataFrame(rows)


def _curves(vgg: pd.DataFrame, experiment: str, depth: int, column: str, out: Path, stem: str, title: str) -> list:
    runs = vgg[(vgg.experiment == experiment) & (vgg.depth == depth)]
    if runs.empty:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, group in runs.groupby("method"):
        curves = pd.concat([pd.read_csv(Path(d) / METRICS) for d in group.run_dir])
        curves = curves[curves.epoch >= 0].dropna(subset=["test/acc"])
        mean = curves.groupby("epoch")["test/acc"].mean()
        scale = 100 if mean.max() <= 1 else 1
        values = 100 - scale * mean if column == "error" else scale * mean
        ax.plot(values.index, values.values, lw=1.2, label=f"{method} ({len(group)} runs)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)" if column == "error" else "test accuracy (%)")
    note = scale_note(runs)
    ax.set_title(title + (f"\n({note})" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, out, stem)


def hta_section(runs: pd.DataFrame, out: Path) -> list[str]:
    """The HTA part of report.md (tables as CSV beside it, figures as PNG and PDF)."""
    lines = ["## HTA: homotopy training algorithm", ""]
    t1_runs = runs[(runs.experiment == "hta/function_t1") & (runs.status == "completed")]
    tables = []
    for run in t1_runs.itertuples():
        table = pd.read_csv(Path(run.run_dir) / "table.csv")
        table["paper_share"] = table.paper / table.paper_starts  # comparable with ours on a subsample
        tables.append(table.assign(run_dir=run.run_dir))
        lines += [
            "HTA Table 1: starts from which BFGS (scipy) reaches the global minimum of eq. 33-34, alone (`plain`) "
            "and along the homotopy of eq. 35 (each setting a row), beside the paper's counts (`paper` of "
            f"`paper_starts`; ours of `starts`, drawn from the grid when fewer). Run: `{run.run_dir}`.",
            "",
            to_markdown(table),
            "",
        ]
    if tables:
        pd.concat(tables, ignore_index=True).to_csv(out / "hta_t1_function.csv", index=False)
    vgg = vgg_runs(runs)
    if vgg.empty:
        return lines
    vgg.to_csv(out / "hta_vgg_runs.csv", index=False)
    t2, t3 = table_2(vgg), table_3(vgg)
    if len(t2):
        t2.to_csv(out / "hta_t2_vgg.csv", index=False)
        lines += [
            "HTA Table 2: final-epoch test error on CIFAR-10 (mean over runs), HTA against plain SGD, beside the "
            "paper's. Improvement = (plain - HTA) / plain.",
            "",
            to_markdown(t2),
            "",
        ]
    if len(t3):
        t3.to_csv(out / "hta_t3_vgg_repeats.csv", index=False)
        lines += [
            "HTA Table 3: final-epoch test accuracy of HTA over repeats, beside the paper's.",
            "",
            to_markdown(t3),
        ]
        lines += [""]
    figures = [
        ("hta/vgg_t2", 13, "error", "hta_f2_vgg13", "HTA Figure 2: VGG13, test error"),
        ("hta/vgg_f3", 11, "acc", "hta_f3_vgg11", "HTA Figure 3 (left): VGG11, homotopy on the conv part"),
        ("hta/vgg_f3", 13, "acc", "hta_f3_vgg13", "HTA Figure 3 (right): VGG13, homotopy on the conv part"),
    ]
    for experiment, depth, column, stem, title in figures:
        files = _curves(vgg, experiment, depth, column, out, stem, title)
        if files:
            paper = ""
            if experiment == "hta/vgg_f3":
                paper = f" Paper: {PAPER_F3[depth][0]}% with the homotopy vs {PAPER_F3[depth][1]}% without."
            elif depth in PAPER_T2:
                paper = f" Paper: {PAPER_T2[depth][1]}% error with HTA vs {PAPER_T2[depth][0]}% without."
            caption = f"{title} against epochs (mean over runs), CIFAR-10.{paper}"
            lines += figure_lines(caption, files)
    return lines
