"""Read run directories into two tables: one row per run, and one row per (run, logged epoch).

A run whose files cannot be read back (a summary that is not JSON, a metrics.csv with broken rows, a last row that
is not the summary's final values) is left out of both tables and named, with the reason, in ``left_out``: every
figure, table and caption counts the same runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from optrepro.records import METRICS, SUMMARY, CorruptRecords, RunLock, load_summary, read_rows, same_values


@dataclass
class Loaded:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)


def find_runs(paths: list[Path], left_out: list[tuple[str, str]] | None = None) -> list[Path]:
    """Every directory under ``paths`` whose summary.json describes one run (ensemble members included); a summary
    that cannot be read is added to ``left_out`` with the reason."""
    found = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run directory: {root}")
        for summary in sorted(root.rglob(SUMMARY)):
            try:
                kind = load_summary(summary.parent).get("kind")
            except CorruptRecords as err:
                if left_out is not None:
                    left_out.append((str(summary.parent), str(err).replace(str(summary) + ": ", "summary.json: ")))
                continue
            if kind == "run":
                found.append(summary.parent)
    return found


def _curve_problem(run_dir: Path, summary: dict) -> str | None:
    """Why the run's metrics.csv cannot be used (None when it can)."""
    try:
        rows = read_rows(run_dir / METRICS)
    except CorruptRecords as err:
        return str(err).replace(str(run_dir / METRICS) + ": ", "metrics.csv: ")
    final = summary.get("final")
    if rows and summary.get("status") in ("completed", "diverged") and final and not same_values(rows[-1], final):
        return "metrics.csv: the last row is not the summary's final values (cut off?)"
    return None


def _status(run_dir: Path, summary: dict) -> str:
    """The recorded status, except that a ``running`` run whose process is gone (no one holds its lock) is
    ``interrupted``."""
    recorded = summary.get("status")
    if recorded != "running":
        return recorded
    owner = run_dir if (run_dir / RunLock.NAME).exists() else run_dir.parent
    return "running" if RunLock(owner).held_elsewhere() else "interrupted"


def _run_row(run_dir: Path, summary: dict) -> dict:
    cfg = summary.get("config", {})
    task, profile = cfg.get("task", {}), cfg.get("profile", {})
    return {
        "run_dir": str(run_dir),
        "experiment": summary.get("experiment"),
        "method": summary.get("method"),
        "seed": summary.get("seed"),
        "status": _status(run_dir, summary),
        "task": task.get("name"),
        "data": task.get("data"),  # image tasks: the dataset (mnist5k is a subset)
        "omega": task.get("omega"),
        "noise_std": task.get("noise_std"),
        "n_samples": task.get("n_samples"),
        "batch_size": task.get("batch_size"),
        "epochs": cfg.get("trainer", {}).get("epochs"),
        "module": task.get("module"),
        "source": task.get("source"),  # HT classification: the paired datasets, and a subset cap if any
        "target": task.get("target"),
        "max_train_samples": task.get("max_train_samples"),
        "source_epochs": cfg.get("method", {}).get("source_epochs"),
        "optimizer": cfg.get("optimizer", {}).get("_target_", "").rsplit(".", 1)[-1],
        "lr": cfg.get("optimizer", {}).get("lr"),
        "schedule": cfg.get("schedule", {}).get("_target_", "").rsplit(".", 1)[-1],
        "profile": profile.get("name"),
        "ensemble_size": cfg.get("ensemble", {}).get("size"),
        "wall_time_s": summary.get("wall_time_s"),
        "git_revision": summary.get("git_revision"),
        "config": cfg,  # the resolved config, for reports that need more than the columns above
    }


def load_all(paths: list[Path]) -> Loaded:
    """The runs under ``paths``, their per-epoch rows, and the runs left out because they cannot be read."""
    rows, curves, left_out = [], [], []
    for run_dir in find_runs(paths, left_out):
        summary = load_summary(run_dir)
        problem = _curve_problem(run_dir, summary)
        if problem:
            left_out.append((str(run_dir), problem))
            continue
        row = _run_row(run_dir, summary)
        rows.append(row)
        if (run_dir / METRICS).is_file() and (run_dir / METRICS).stat().st_size > 0:
            m = pd.read_csv(run_dir / METRICS)
            for key in ("run_dir", "experiment", "method", "seed", "status", "omega", "data"):
                m[key] = row[key]
            curves.append(m)
    if not rows:
        why = f" ({len(left_out)} unreadable: {left_out[0][0]}: {left_out[0][1]}, ...)" if left_out else ""
        raise FileNotFoundError(f"no runs (summary.json with kind 'run') under {', '.join(map(str, paths))}{why}")
    metrics = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return Loaded(pd.DataFrame(rows), metrics, left_out)


def load(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, metrics): ``runs`` has one row per readable run; ``metrics`` the per-epoch rows with the run's keys."""
    loaded = load_all(paths)
    return loaded.runs, loaded.metrics
