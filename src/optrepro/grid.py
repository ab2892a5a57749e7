"""The thesis's grid search, in two stages read from disk (TH sections 2.6.2 and 4.5.1).

Stage one runs every point of a sweep file (``configs/sweep/th/grid_<optimizer>.yaml``: the lr in {1e-4, ..., 1},
Step-Tuned SGD's nu in {1, 2, 5}, Adam's beta1 in {0.1, 0.5, 0.9, 0.99}) for the preset's ``grid_epochs`` (10% of
the budget in chapter 4, 15 epochs in chapter 2). This module reads those runs back (``summary.json``,
``metrics.csv`` and Hydra's ``.hydra/overrides.yaml`` in each run directory), builds one table, takes the point with
the lowest train loss at the end of the run ("the minimum training loss after 10% of the total number of epochs"),
and prints the overrides stage two runs with. No value is copied by hand.

Rules: runs that diverged (status ``diverged`` or a non-finite loss) are excluded; a grid point with no finished
run is *missing* and stops the selection (``--allow-missing`` chooses among the rest); a point run with several
seeds counts with its mean loss; among equal losses the first point in the sweep file's order wins (the smaller lr).

``python -m optrepro.grid SWEEP_DIR --sweep th/grid_adam`` prints e.g. ``optimizer=adam schedule=constant
optimizer.betas=[0.9,0.999] optimizer.lr=0.001``; ``--keys optimizer.alpha optimizer.beta`` instead ranks whatever
values the runs under SWEEP_DIR hold (TH Figure 2.3 takes INNA's (alpha, beta) with the smallest mean train loss of
Figure 2.2).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from optrepro.config import ConfigError, config_dir
from optrepro.records import METRICS, SUMMARY, read_rows

LOSS = "train/loss"


class GridIncomplete(ConfigError):
    """Stage one has grid points without a finished run, or nothing usable at all."""


@dataclass
class Sweep:
    """A sweep file's parameters: ``fixed`` (one value: they select the runs and pass on to stage two) and ``grid``
    (several values, in the file's order)."""

    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    fixed_text: dict[str, str] = field(default_factory=dict)


@functools.cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def read_sweep(name: str, root: Path | None = None) -> Sweep:
    """Parse ``configs/sweep/<name>.yaml``'s ``hydra.sweeper.params`` with Hydra's own override grammar."""
    path = (root or config_dir()) / "sweep" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no sweep file {path} (sweep={name})")
    params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params", default=None) or {}
    parser, fixed, grid, text = _parser(), {}, {}, {}
    for key, value in params.items():
        o = parser.parse_override(f"{key}={value}")
        if o.is_sweep_override():
            grid[key] = list(o.sweep_iterator())
        else:
            fixed[key], text[key] = o.value(), o.get_value_element_as_str()
    grid.pop("seed", None)
    return Sweep(fixed, grid, text)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def run_values(run_dir: Path, keys: list[str]) -> dict[str, Any]:
    """The values of ``keys`` a run was made with: its Hydra overrides, else its resolved config (dotted keys)."""
    values: dict[str, Any] = {}
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        parser = _parser()
        for line in OmegaConf.to_container(OmegaConf.load(overrides)):
            o = parser.parse_override(str(line))
            if not o.is_sweep_override():
                values[o.key_or_group] = o.value()
    summary = json.loads((run_dir / SUMMARY).read_text())
    cfg = OmegaConf.create(summary.get("config", {}))
    for key in keys:
        if key not in values and "." in key:
            found = OmegaConf.select(cfg, key, default=None)
            if found is not None:
                values[key] = OmegaConf.to_container(found) if OmegaConf.is_config(found) else found
    return values


def final_loss(run_dir: Path, metric: str = LOSS) -> float:
    """``metric`` in the last row of metrics.csv (the end of the grid-search budget), else in the summary."""
    rows = [r for r in read_rows(run_dir / METRICS) if metric in r]
    if rows:
        return float(rows[-1][metric])
    final = json.loads((run_dir / SUMMARY).read_text()).get("final", {})
    value = final.get(metric)
    return float(value) if value is not None else math.nan


def runs_table(sweep_dir: Path, keys: list[str], fixed: dict[str, Any] | None = None, metric: str = LOSS):
    """One row per run under ``sweep_dir`` whose fixed values match: run_dir, status, seed, each key, loss."""
    rows = []
    for summary in sorted(Path(sweep_dir).rglob(SUMMARY)):
        data = json.loads(summary.read_text())
        if data.get("kind") != "run":
            continue
        run_dir = summary.parent
        values = run_values(run_dir, keys + list(fixed or {}))
        if any(not _same(values.get(k), v) for k, v in (fixed or {}).items()):
            continue
        loss = final_loss(run_dir, metric) if data.get("status") in ("completed", "diverged") else math.nan
        status = data.get("status")
        if status == "completed" and not math.isfinite(loss):
            status = "diverged"
        rows.append({"run_dir": str(run_dir), "status": status, "seed": data.get("seed"), **values, "loss": loss})
    columns = ["run_dir", "status", "seed", *keys, "loss"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


@dataclass
class Selection:
    best: dict[str, Any]
    loss: float
    table: pd.DataFrame  # one row per grid point: the keys, runs, completed, diverged, mean loss
    missing: list[dict[str, Any]]
    diverged: list[dict[str, Any]]

    def overrides(self, fixed_text: dict[str, str] | None = None) -> list[str]:
        """Stage two's command-line overrides: the sweep's fixed values, then the chosen grid values."""
        out = [f"{k}={v}" for k, v in (fixed_text or {}).items()]
        return out + [f"{k}={_text(v)}" for k, v in self.best.items()]


def _text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ",".join(_text(x) for x in v) + "]"
    return repr(v) if isinstance(v, float) else str(v)


def select(
    table: pd.DataFrame,
    grid: dict[str, list[Any]],
    allow_missing: bool = False,
    where: str = "",
    points: list[dict[str, Any]] | None = None,
) -> Selection:
    """The grid point with the lowest mean final loss over its completed runs (see the module docstring).

    The points are the product of the grid's values, in the sweep file's order, unless ``points`` lists them.
    """
    keys = list(grid)
    points = points or [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    summary, missing, diverged = [], [], []
    for point in points:
        mask = pd.Series(True, index=table.index)
        for k, v in point.items():
            mask &= table[k].map(lambda x, v=v: _same(x, v)) if k in table else False
        runs = table[mask]
        done = runs[(runs.status == "completed") & runs.loss.map(math.isfinite)]
        n_div = int((runs.status == "diverged").sum())
        summary.append({**point, "runs": len(runs), "completed": len(done), "diverged": n_div,
                        "loss": done.loss.mean() if len(done) else math.nan})  # fmt: skip
        if len(done) == 0:
            (diverged if n_div else missing).append(point)
    result = pd.DataFrame(summary, columns=[*keys, "runs", "completed", "diverged", "loss"])
    where = f" under {where}" if where else ""
    if missing and not allow_missing:
        listed = "; ".join(", ".join(f"{k}={_text(v)}" for k, v in p.items()) for p in missing)
        raise GridIncomplete(
            f"stage one is incomplete{where}: {len(missing)} of {len(points)} grid points have no finished run "
            f"({listed}). Run stage one again (completed runs are skipped) or pass --allow-missing."
        )
    usable = result[result.loss.map(math.isfinite)]
    if usable.empty:
        raise GridIncomplete(f"no grid point{where} has a finished run with a finite loss ({len(points)} points)")
    i = usable.loss.values.argmin()  # first minimum: the sweep file's order breaks ties
    best = {k: points[usable.index[i]][k] for k in keys}
    return Selection(best, float(usable.loss.iloc[i]), result, missing, diverged)


def observed_points(table: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    """The combinations of ``keys`` the runs were made with, sorted (``--keys`` mode: no product of values, since
    Figure 2.2's four (alpha, beta) pairs are not one)."""
    for k in keys:
        if k not in table or table[k].isna().all():
            raise GridIncomplete(f"no run under the sweep directory records {k}")
    points: list[dict[str, Any]] = []
    for _, row in table.dropna(subset=keys).iterrows():
        point = {k: row[k] for k in keys}
        if not any(all(_same(point[k], p[k]) for k in keys) for p in points):
            points.append(point)
    return sorted(points, key=lambda p: [p[k] for k in keys])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m optrepro.grid", description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", type=Path, help="stage one's sweep directory (searched recursively)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--sweep", help="the stage-one sweep file, e.g. th/grid_adam")
    mode.add_argument("--keys", nargs="+", help="rank the values these keys take in the runs found")
    ap.add_argument("--allow-missing", action="store_true", help="choose among the grid points that finished")
    ap.add_argument("--table", type=Path, help="also write the per-point table (CSV) here")
    ap.add_argument("--metric", default=LOSS, help=f"the metric minimized (default {LOSS})")
    args = ap.parse_args(argv)
    try:
        if not args.sweep_dir.is_dir():
            raise GridIncomplete(f"no stage-one directory {args.sweep_dir}: run stage one first (make th-grid)")
        if args.sweep:
            sweep = read_sweep(args.sweep)
            table = runs_table(args.sweep_dir, list(sweep.grid), sweep.fixed, args.metric)
            grid, fixed_text, points = sweep.grid, sweep.fixed_text, None
        else:
            table = runs_table(args.sweep_dir, args.keys, None, args.metric)
            points = observed_points(table, args.keys)
            grid, fixed_text = {k: [] for k in args.keys}, {}
        where = f"{args.sweep_dir} ({args.sweep or ', '.join(args.keys)})"
        selection = select(table, grid, args.allow_missing, where, points)
    except ConfigError as err:
        print(f"optrepro.grid: error: {err}", file=sys.stderr)
        return 2
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        selection.table.to_csv(args.table, index=False)
    notes = [f"{len(selection.missing)} missing"] if selection.missing else []
    notes += [f"{len(selection.diverged)} diverged everywhere"] if selection.diverged else []
    print(
        f"optrepro.grid: {args.sweep or 'keys'}: lowest {args.metric} {selection.loss:.4g} at "
        + ", ".join(f"{k}={_text(v)}" for k, v in selection.best.items())
        + (f" ({'; '.join(notes)})" if notes else ""),
        file=sys.stderr,
    )
    print(" ".join(selection.overrides(fixed_text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
