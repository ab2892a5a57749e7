"""``optrepro-report PATH... [--out DIR]``: any set of run directories -> report.md, CSV tables, figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optrepro.illustrations import FIGURES
from optrepro.report import ht
from optrepro.report.claims import claims_section
from optrepro.report.figures import figure_lines, to_markdown
from optrepro.report.load import load_all
from optrepro.report.series import series_labels, slug


def write_report(paths: list[Path], out: Path) -> Path:
    """Build every table and figure the runs under ``paths`` allow; return the path of report.md.

    Runs whose configs differ in more than the seed (``series.series_labels``) are never aggregated together: each
    series gets its own report in a sub-folder named from the keys that set it apart, linked from ``report.md``.
    """
    loaded = load_all(paths)
    runs, metrics = loaded.runs, loaded.metrics
    runs["series"] = series_labels(runs)
    labels = sorted(set(runs.series) - {""})
    if not labels:
        report = _write(runs, metrics, paths, out)
        report.write_text(report.read_text() + _left_out_lines(loaded.left_out))
        return report
    lines = [
        "",
        "## Series",
        "",
        "These runs differ in more than their seeds, so they are not aggregated together: each series has its own "
        "report.",
        "",
    ]
    for label in labels:
        part = runs[runs.series == label]
        sub = _write(
            part,
            metrics[metrics.run_dir.isin(part.run_dir)] if len(metrics) else metrics,
            paths,
            out / slug(label),
            title=f"series {label}",
        )
        lines.append(
            f"- [{label}]({sub.relative_to(out)}): {len(part)} runs of {', '.join(sorted(set(part.experiment)))}"
        )
    rest = runs[runs.series == ""]
    if len(rest):
        report = _write(rest, metrics[metrics.run_dir.isin(rest.run_dir)] if len(metrics) else metrics, paths, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        report = out / "report.md"
        report.write_text("# optrepro report\n")
    report.write_text(report.read_text() + "\n".join(lines) + "\n" + _left_out_lines(loaded.left_out))
    return report


def _left_out_lines(left_out: list[tuple[str, str]]) -> str:
    """The report's section naming every run that could not be read, and why (empty when none)."""
    if not left_out:
        return ""
    table = "\n".join(f"| {folder} | {why} |" for folder, why in left_out)
    return (
        f"\n## Runs left out\n\n{len(left_out)} run folders could not be read and are in no figure, table or count "
        "above; rerunning their command redoes them.\n\n| folder | why |\n|---|---|\n" + table + "\n"
    )


def _write(runs, metrics, paths: list[Path], out: Path, title: str = "") -> Path:
    """One report over runs that may be aggregated (one series)."""
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    lines = [
        "# optrepro report" + (f": {title}" if title else ""),
        "",
        f"{len(runs)} runs from {', '.join(map(str, paths))}: "
        + ", ".join(f"{n} {s}" for s, n in runs.status.value_counts().items())
        + ". Tables: `runs.csv` (one row per run), `claims.csv` (the claims scoreboard)"
        + (", `final_losses.csv`." if "sine" in set(runs.task) else "."),
        "",
    ]
    if "sine" in set(runs.task):
        table = ht.final_table(runs, metrics)
        table.to_csv(out / "final_losses.csv", index=False)
        lines += [
            "## HT: sine regression",
            "",
            "Median train loss at the end of the target budget (completed runs), and the homotopy's ratio to "
            f"each baseline (below 1: the homotopy is lower). The paper: {ht.PAPER_CLAIM} (ratio down to 0.01).",
            "",
            to_markdown(table),
            "",
        ]
        for item in ht.sine_curves(runs, metrics, out) + ht.final_vs_omega(table, out):
            lines += figure_lines(item["caption"], item["files"])
    if (runs.module == "classification").any():
        table = ht.classification_table(runs, metrics)
        if len(table):
            table.to_csv(out / "ht_classification_final.csv", index=False)
            lines += [
                "## HT: classification (Figure 3)",
                "",
                "Median train loss and target test accuracy at the end of the target budget (completed runs); "
                "`ht_classification_final.csv`. A subset run says so.",
                "",
                to_markdown(table),
                "",
            ]
            for item in ht.classification_curves(runs, metrics, out):
                lines += figure_lines(item["caption"], item["files"])
    th_runs = runs.experiment.fillna("").str.startswith("th/")
    if th_runs.any():
        from optrepro.report import th, th_deep

        deep = th_deep.is_deep(runs)
        if (th_runs & ~deep).any():
            lines += th.th_section(runs[th_runs & ~deep], out)
        if deep.any():
            lines += th_deep.th_deep_section(runs[deep], metrics, out)
    if runs.experiment.fillna("").str.startswith("gc/").any():
        from optrepro.report import gc

        gc_runs = runs[runs.experiment.fillna("").str.startswith("gc/")]
        gc_metrics = metrics[metrics.experiment.fillna("").str.startswith("gc/")] if len(metrics) else metrics
        lines += gc.gc_section(gc_runs, gc_metrics, out)
    if runs.experiment.fillna("").str.startswith("hta/").any():
        from optrepro.report import hta

        lines += hta.hta_section(runs[runs.experiment.fillna("").str.startswith("hta/")], out)
    lines += claims_section(runs, metrics, out)  # claims.csv, claims.md: every claim, most of them `not run`
    diverged = runs[runs.status != "completed"]
    if len(diverged):
        lines += ["## Runs that did not complete", "", to_markdown(diverged[["run_dir", "status"]]), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optrepro-report", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="run or sweep directories (searched recursively)")
    parser.add_argument("--out", type=Path, help="where to write (default: the first path)")
    parser.add_argument(
        "--figure",
        action="append",
        choices=sorted(FIGURES),
        default=[],
        help="also draw a figure that needs no runs (HT Figure 5: ht-f5; HT Figure 6: ht-f6)",
    )
    parser.add_argument("--wandb", action="store_true", help="also log the figures and tables as a W&B run")
    parser.add_argument("--wandb-project", default="optrepro")
    args = parser.parse_args(argv)
    if not args.paths and not args.figure:
        parser.error("give at least one run directory or --figure")
    out = args.out or (args.paths[0] if args.paths else Path("outputs/report"))
    drawn = []
    for name in args.figure:
        for item in FIGURES[name](out):
            drawn += figure_lines(item["caption"], item["files"])
            print(f"wrote {out / item['files'][0]}")
    if args.paths:
        try:
            report = write_report(args.paths, out)
        except FileNotFoundError as err:
            print(f"optrepro-report: error: {err}", file=sys.stderr)
            return 2
        if drawn:  # the pictures drawn from the equations belong in the report too (HT Figures 5, 6)
            report.write_text(report.read_text() + "\n## Figures drawn from the equations\n\n" + "\n".join(drawn))
        print(f"wrote {report}")
    if args.wandb:
        from optrepro.report.publish import to_wandb

        print(f"logged {out} to W&B run {to_wandb(out, args.wandb_project)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
