"""Read run directories into two tables: one row per run, and one row per (run, logged epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from optrepro.records import METRICS, SUMMARY


def find_runs(paths: list[Path]) -> list[Path]:
    """Every directory under ``paths`` whose summary.json describes one run (ensemble members included)."""
    found = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run directory: {root}")
        for summary in sorted(root.rglob(SUMMARY)):
            try:
                kind = json.loads(summary.read_text()).get("kind")
            except json.JSONDecodeError:
                continue
            if kind == "run":
                found.append(summary.parent)
    return found


def _run_row(run_dir: Path, summary: dict) -> dict:
    cfg = summary.get("config", {})
    task, profile = cfg.get("task", {}), cfg.get("profile", {})
    return {
        "run_dir": str(run_dir),
        "experiment": summary.get("experiment"),
        "method": summary.get("method"),
        "seed": summary.get("seed"),
        "status": summary.get("status"),
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


def load(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, metrics): ``runs`` has one row per run; ``metrics`` the per-epoch rows with the run's keys."""
    rows, curves = [], []
    for run_dir in find_runs(paths):
        summary = json.loads((run_dir / SUMMARY).read_text())
        row = _run_row(run_dir, summary)
        rows.append(row)
        if (run_dir / METRICS).is_file() and (run_dir / METRICS).stat().st_size > 0:
            m = pd.read_csv(run_dir / METRICS)
            for key in ("run_dir", "experiment", "method", "seed", "status", "omega", "data"):
                m[key] = row[key]
            curves.append(m)
    if not rows:
        raise FileNotFoundError(f"no runs (summary.json with kind 'run') under {', '.join(map(str, paths))}")
    runs = pd.DataFrame(rows)
    metrics = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return runs, metrics
