"""Helpers shared by all papers' reports: saving figures as PNG and PDF, median curves with bands, markdown."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METHOD_STYLE = {
    "random_init": ("Random initialization", "tab:blue"),
    "warm_start": ("Warm start", "tab:orange"),
    "data_homotopy": ("Homotopy", "tab:green"),
}


def percent(fraction: float) -> float:
    """An accuracy in percent: the modules log ``train/acc`` and ``test/acc`` as fractions in [0, 1]."""
    return 100.0 * fraction


def method_label(method: str) -> str:
    return METHOD_STYLE.get(method, (method, None))[0]


def method_color(method: str) -> str | None:
    return METHOD_STYLE.get(method, (method, None))[1]


def save(fig, out_dir: Path, stem: str) -> list[str]:
    """Write ``stem.png`` and ``stem.pdf``; return their names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for ext in ("png", "pdf"):
        fig.savefig(out_dir / f"{stem}.{ext}", dpi=150, bbox_inches="tight")
        names.append(f"{stem}.{ext}")
    plt.close(fig)
    return names


def median_band(ax, curves: pd.DataFrame, x: str, y: str, label: str, color: str | None) -> None:
    """Median across runs of ``y`` at each ``x``, with the interquartile range shaded."""
    g = curves.groupby(x)[y]
    med, q1, q3 = g.median(), g.quantile(0.25), g.quantile(0.75)
    ax.plot(med.index, med.values, label=label, color=color, lw=1.5)
    ax.fill_between(med.index, q1.values, q3.values, color=color, alpha=0.2, lw=0)


def to_markdown(df: pd.DataFrame) -> str:
    """A pipe table without the optional ``tabulate`` dependency; floats in 3 significant digits."""

    def cell(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def figure_lines(caption: str, files: list[str]) -> list[str]:
    """A report's markdown for one figure: the image (its first file) and the caption under it."""
    return [f"![{caption}]({files[0]})", "", f"*{caption}*", ""]
