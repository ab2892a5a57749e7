"""What a run leaves on disk: ``metrics.csv`` (one row per epoch) and ``summary.json`` (docs/architecture.md "One run").

Rows are flushed as they are written, so an interrupted run keeps every finished epoch.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
METRICS = "metrics.csv"


class MetricsCSV:
    """Append-only CSV whose columns are fixed by the first row (later rows may leave columns empty)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: dict[str, Any]) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", newline="")
            self._writer = csv.DictWriter(self._file, fieldnames=list(row), extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow({k: _plain(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.csv as dicts of numbers (empty cells dropped); none if the file is missing."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    parse = lambda v: int(v) if v.lstrip("-").isdigit() else float(v)  # noqa: E731
    return [{k: parse(v) for k, v in row.items() if v != ""} for row in rows]


def _plain(v: Any) -> Any:
    return float(v) if hasattr(v, "item") else v


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / SUMMARY
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(_finite(summary), indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(run_dir / SUMMARY)


def _finite(obj: Any) -> Any:
    """JSON has no NaN or inf: write them as strings so that the file stays valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def provenance() -> dict[str, Any]:
    """Git revision and package versions, for the summary."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    versions = {}
    for pkg in ("optrepro", "torch", "lightning", "hydra-core", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"git_revision": rev or "unknown", "versions": versions, "python": platform.python_version()}


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def member_dirs(run_dir: Path, seeds: list[int]) -> list[Path]:
    """Where each member writes: the run directory itself for one seed, ``seed=N/`` inside it for several."""
    return [Path(run_dir)] if len(seeds) == 1 else [Path(run_dir) / f"seed={s}" for s in seeds]


class MemberLog:
    """Per-member metrics files and summaries of a run that trains one or several seeds at once."""

    def __init__(
        self,
        run_dir: Path,
        seeds: list[int],
        directions: dict[str, str] | None = None,
        resume_before_epoch: int | None = None,
    ):
        """``directions``: metric -> ``min`` or ``max``, the metrics whose best value the summary records (the
        task's declared metrics). ``resume_before_epoch``: continue an interrupted run, keeping the rows of earlier
        epochs only."""
        self.seeds = list(seeds)
        self.directions = dict(directions or {})
        self.dirs = member_dirs(run_dir, seeds)
        self.csv = [MetricsCSV(d / METRICS) for d in self.dirs]
        self.rows: list[dict[str, float]] = [{} for _ in seeds]  # last row of each member
        self.best: list[dict[str, float]] = [{} for _ in seeds]
        self.diverged_at: list[int | None] = [None] * len(seeds)
        if resume_before_epoch is not None:
            for i, d in enumerate(self.dirs):
                for row in read_rows(d / METRICS):
                    if row["epoch"] < resume_before_epoch:
                        self.write(i, row)

    def write(self, i: int, row: dict[str, Any]) -> None:
        self.csv[i].write(row)
        self.rows[i] = row
        for k, v in row.items():
            if k in self.directions and isinstance(v, float) and math.isfinite(v):
                better = min if self.directions[k] == "min" else max
                self.best[i][k] = better(self.best[i].get(k, v), v)

    def mark_diverged(self, i: int, epoch: int) -> None:
        if self.diverged_at[i] is None:
            self.diverged_at[i] = epoch

    def finish(self, base: dict[str, Any], failed: bool = False) -> list[dict[str, Any]]:
        """Write every member's summary; ``base`` holds what members share (config hash, wall time, ...)."""
        summaries = []
        for i, seed in enumerate(self.seeds):
            self.csv[i].close()
            if failed:
                status = "failed"
            elif self.diverged_at[i] is not None:
                status = "diverged"
            else:
                status = "completed"
            summary = {
                **base,
                "kind": "run",
                "status": status,
                "seed": seed,
                "member": {"index": i, "of": len(self.seeds)},
                "diverged_at_epoch": self.diverged_at[i],
                "final": {k: v for k, v in self.rows[i].items()},
                "best": self.best[i],
            }
            write_summary(self.dirs[i], summary)
            summaries.append(summary)
        return summaries
