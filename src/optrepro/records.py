"""What a run leaves on disk: ``metrics.csv`` (one row per epoch) and ``summary.json`` (docs/architecture.md "One run").

Rows are flushed as they are written, so an interrupted run keeps every finished epoch.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import math
import os
import platform
import subprocess
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
METRICS = "metrics.csv"
#: where a run that checkpoints keeps its training state (written by ``optrepro.checkpoints``)
CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: every status a summary can hold; ``running`` is a run in progress, or one whose process died (no lock held)
STATUSES = ("running", "completed", "diverged", "interrupted", "failed")
#: the statuses of a run that has nothing left to train (a rerun skips it when its records are sound)
FINISHED = ("completed", "diverged")
#: members whose metrics.csv stay open between rows; a larger ensemble opens each file per row
KEEP_OPEN = 256
#: a test hook: seconds to wait inside a resume's rewrite of metrics.csv (widens the window a kill can hit)
PAUSE_IN_REWRITE = "OPTREPRO_TEST_PAUSE_IN_REWRITE"


class DiskFull(OSError):
    """No space left where a run writes: the run ends with this one message and no partial file."""

    def __init__(self, path: Path):
        super().__init__(errno.ENOSPC, f"no space left on the device that holds {path}: the run stops here")


class CorruptRecords(ValueError):
    """A run's file that cannot be read back as what it should be (the message says which and why)."""


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all: a temp file beside it, flushed to disk, renamed into place. On any error
    the temp file is removed (a full disk raises ``DiskFull``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise DiskFull(path) from err
        raise


class MetricsCSV:
    """Append-only CSV whose columns are fixed by the first row (later rows may leave columns empty).

    ``resume(before_epoch)`` keeps the rows of earlier epochs of an existing file for a resumed run: they are
    written to a temp file that replaces the old one in one rename, so a kill during the rewrite loses nothing.
    """

    def __init__(self, path: Path, keep_open: bool = True):
        """``keep_open``: hold the file open between rows (one file per member; an ensemble of thousands opens
        and closes it per row instead, within the process's limit on open files)."""
        self.path = Path(path)
        self.keep_open = keep_open
        self._file = None
        self._writer: csv.DictWriter | None = None
        self._fieldnames: list[str] | None = None

    def resume(self, before_epoch: int) -> list[dict[str, Any]]:
        """Keep the rows with ``epoch < before_epoch`` (byte for byte) and append after them; returns them parsed."""
        header, raw = _read_raw(self.path)
        if not header:
            return []
        epoch = header.index("epoch")
        kept = [r for r in raw if int(r[epoch]) < before_epoch]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")  # the csv module's default, as DictWriter writes
        writer.writerows([header, *kept])
        pause = float(os.environ.get(PAUSE_IN_REWRITE, 0) or 0)
        if pause:
            _write_slowly(self.path, text.getvalue(), pause)
        else:
            write_atomic(self.path, text.getvalue())
        self._open(header, mode="a")
        if not self.keep_open:
            self.close()
        return [_parse(dict(zip(header, r))) for r in kept]

    def _open(self, fieldnames: list[str], mode: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fieldnames = fieldnames
        self._file = self.path.open(mode, newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fieldnames, extrasaction="ignore", restval="")
        if mode == "w":
            self._writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        try:
            if self._writer is None:
                if self._fieldnames is None:
                    self._open(list(row), mode="w")
                else:  # closed after the last row (keep_open=False)
                    self._open(self._fieldnames, mode="a")
            self._writer.writerow({k: _plain(v) for k, v in row.items()})
            self._file.flush()
            if not self.keep_open:
                self.close()
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DiskFull(self.path) from err
            raise

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # a full disk: the rows already flushed are all there is
                pass
            self._file, self._writer = None, None


def _write_slowly(path: Path, text: str, pause: float) -> None:
    """``write_atomic`` with a pause between writing the temp file and renaming it (the test hook)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, newline="")
    time.sleep(pause)
    os.replace(tmp, path)


def _read_raw(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows as strings); raises ``CorruptRecords`` for a row with more or fewer fields than the header."""
    if not path.is_file():
        return [], []
    try:
        with path.open(newline="") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise CorruptRecords(f"{path}: not a CSV file ({err})") from err
    if not lines:
        return [], []
    header, rows = lines[0], lines[1:]
    if "epoch" not in header:
        raise CorruptRecords(f"{path}: no epoch column in the header")
    for n, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise CorruptRecords(f"{path}: line {n} has {len(row)} fields, the header {len(header)}")
        if not _is_number(row[header.index("epoch")]):
            raise CorruptRecords(f"{path}: line {n} has no epoch number")
    return header, rows


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _parse(row: dict[str, str]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if v == "":
            continue
        out[k] = int(v) if v.lstrip("-").isdigit() else float(v)
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.csv as dicts of numbers (empty cells dropped); none if the file is missing. A file
    that is not a well-formed table of numbers raises ``CorruptRecords``."""
    header, raw = _read_raw(Path(path))
    try:
        return [_parse(dict(zip(header, r))) for r in raw]
    except ValueError as err:
        raise CorruptRecords(f"{path}: a cell is not a number ({err})") from err


def _plain(v: Any) -> Any:
    return float(v) if hasattr(v, "item") else v


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary, or None when there is none or it cannot be read (``summary_problem`` says why)."""
    try:
        return load_summary(run_dir)
    except (FileNotFoundError, CorruptRecords):
        return None


def load_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary; ``FileNotFoundError`` if absent, ``CorruptRecords`` if it is not a summary."""
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptRecords(f"{path}: not valid JSON ({type(err).__name__})") from err
    if not isinstance(summary, dict) or summary.get("status") not in STATUSES:
        raise CorruptRecords(f"{path}: not a run summary (no status)")
    return summary


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a summary."""
    write_atomic(Path(run_dir) / SUMMARY, json.dumps(_finite(summary), indent=2, sort_keys=True, default=str) + "\n")


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
        keep_open: bool | None = None,
    ):
        """``directions``: metric -> ``min`` or ``max``, the metrics whose best value the summary records (the
        task's declared metrics). ``resume_before_epoch``: continue an interrupted run, keeping the rows of earlier
        epochs only. ``keep_open``: hold each member's file open (default: up to ``KEEP_OPEN`` members; thousands
        of open files would exceed the process's limit)."""
        self.seeds = list(seeds)
        self.directions = dict(directions or {})
        self.dirs = member_dirs(run_dir, seeds)
        keep_open = len(self.seeds) <= KEEP_OPEN if keep_open is None else keep_open
        self.csv = [MetricsCSV(d / METRICS, keep_open=keep_open) for d in self.dirs]
        self.rows: list[dict[str, float]] = [{} for _ in seeds]  # last row of each member
        self.best: list[dict[str, float]] = [{} for _ in seeds]
        self.diverged_at: list[int | None] = [None] * len(seeds)
        if resume_before_epoch is not None:
            for i, log in enumerate(self.csv):
                for row in log.resume(resume_before_epoch):
                    self._track(i, row)

    def write(self, i: int, row: dict[str, Any]) -> None:
        self.csv[i].write(row)
        self._track(i, row)

    def _track(self, i: int, row: dict[str, Any]) -> None:
        self.rows[i] = row
        for k, v in row.items():
            if k in self.directions and isinstance(v, float) and math.isfinite(v):
                better = min if self.directions[k] == "min" else max
                self.best[i][k] = better(self.best[i].get(k, v), v)

    def mark_diverged(self, i: int, epoch: int) -> None:
        if self.diverged_at[i] is None:
            self.diverged_at[i] = epoch

    def finish(self, base: dict[str, Any], outcome: str = "completed") -> list[dict[str, Any]]:
        """Write every member's summary; ``base`` holds what members share (config hash, wall time, ...).
        ``outcome``: how training ended for the run (``completed``, ``interrupted`` or ``failed``); a member that
        diverged in a run that completed is ``diverged``."""
        summaries = []
        for i, seed in enumerate(self.seeds):
            self.csv[i].close()
            diverged = self.diverged_at[i] is not None
            status = "diverged" if diverged and outcome == "completed" else outcome
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


def record_problems(run_dir: Path, seeds: list[int], epochs: int) -> list[str]:
    """What is wrong with the records of a run that says it finished (empty when all is sound).

    Every member must have a readable summary that finished, and a metrics.csv of numbers whose epochs follow each
    other and whose last row is the summary's ``final`` (a truncated last row or a deleted file shows here); a
    member that completed must have reached the last epoch of its budget (``epochs - 1``) unless it stopped early.
    """
    problems = []
    for d in member_dirs(run_dir, seeds):
        try:
            summary = load_summary(d)
        except (FileNotFoundError, CorruptRecords) as err:
            problems.append(f"{d / SUMMARY}: {'missing' if isinstance(err, FileNotFoundError) else err}")
            continue
        if summary["status"] not in ("completed", "diverged"):
            problems.append(f"{d / SUMMARY}: status {summary['status']}")
            continue
        try:
            rows = read_rows(d / METRICS)
        except CorruptRecords as err:
            problems.append(str(err))
            continue
        if not rows:
            problems.append(f"{d / METRICS}: missing or empty")
            continue
        epochs_seen = [r["epoch"] for r in rows]
        if epochs_seen != list(range(epochs_seen[0], epochs_seen[0] + len(rows))):
            problems.append(f"{d / METRICS}: epochs do not follow each other")
        elif not same_values(rows[-1], summary.get("final", {})):
            problems.append(f"{d / METRICS}: the last row is not the summary's final values (cut off?)")
        elif (
            summary["status"] == "completed"
            and summary.get("stopped_early_at_epoch") is None
            and rows[-1]["epoch"] != epochs - 1
        ):
            problems.append(f"{d / METRICS}: ends at epoch {rows[-1]['epoch']}, not {epochs - 1}")
    return problems


def finished_problems(run_dir: Path, seeds: list[int], epochs: int, checkpoint: bool) -> list[str]:
    """What is broken in a run that says it finished: its members' records (``record_problems``) and, when it
    checkpoints, its checkpoint. Changes nothing (``optrepro.train`` sets broken files aside; the SLURM launcher
    asks the same question before it submits)."""
    problems = record_problems(run_dir, seeds, epochs)
    if checkpoint:
        packed = (read_summary(run_dir) or {}).get("packed") or {}
        ckpt = Path(run_dir) / (packed.get("checkpoint") or CHECKPOINT)  # a packed job's is its pack's
        problem = checkpoint_problem(ckpt) if ckpt.is_file() else f"{ckpt}: missing"
        if problem:
            problems.append(problem)
    return problems


def same_values(row: dict[str, Any], final: dict[str, Any]) -> bool:
    """Whether a parsed CSV row holds a summary's ``final`` values (JSON, non-finite values as strings): every key
    of ``final`` present with the same number. A last row cut off mid-number differs here."""
    for k, w in final.items():
        if k not in row:
            return False
        try:
            a, b = float(row[k]), float(w)
        except (TypeError, ValueError):
            return False
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            return False
    return True


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be loaded (None when it is whole). A torch checkpoint is a zip archive
    whose members carry CRCs: a truncated or overwritten file fails here without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"{path}: not a readable checkpoint ({type(err).__name__}: {err})"
    return f"{path}: {bad} fails its CRC check" if bad else None


def set_aside(path: Path) -> Path:
    """Rename a broken file out of the way (``name.corrupt``, numbered if taken) and return the new path."""
    target, n = path.with_name(path.name + ".corrupt"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    os.replace(path, target)
    return target


class RunLock:
    """An exclusive lock on a run directory, held while a process trains there (``.lock``, ``fcntl.flock``).

    The kernel releases it when its process dies, so a killed run never blocks its own rerun; the file holds
    ``pid@host`` for the message of a second process that finds it taken.
    """

    NAME = ".lock"

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / self.NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if no live process holds it; False (and nothing changed) when one does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}@{platform.node()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def held_elsewhere(self) -> bool:
        """Whether a live process holds the lock: tries it on a read-only descriptor and lets go at once, writing
        nothing (reports ask this of every run folder they read)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock this probe took
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
