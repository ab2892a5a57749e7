"""Weights & Biases runs made from a run's records: one W&B run per seed, ensemble members included.

Why from the records, after training, rather than a live logger: a vmapped ensemble trains up to hundreds of seeds
in one process, and one live W&B run per member would mean that many concurrent runs; a live logger could only
send the ensemble's median. Uploading each member's ``metrics.csv`` when the job ends gives W&B exactly the rows
the reports read, one run per seed, and a resumed or rerun job writes into the same W&B run (its id is a pure
function of the member's folder). Every column of ``metrics.csv`` is logged, with the target-budget ``epoch`` (and
``grad_evals``) declared as x-axes; the summary carries the status, the final and best values and the run folder.

Naming (docs/architecture.md "W&B"): ``group`` = the experiment, ``name`` = the sweep overrides and the seed,
``job_type`` = the stage (``train``, ``grid`` for a grid search's stage one, ``source`` for a method's own source
pre-training: its negative epochs go to a W&B run of their own, named ``... source``, so that the training runs of
every method start at the budget's epoch 0); ``config`` is the config that ran, with the member's own seed.
Nothing W&B does may fail a run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from optrepro.extras import require
from optrepro.records import METRICS, read_rows

log = logging.getLogger(__name__)

#: the x-axes of the papers' figures
STEP_METRICS = ("epoch", "grad_evals")


def run_id(member_dir: Path) -> str:
    """The W&B run id of a member: the same folder (a rerun, a resume, a requeue) gives the same run."""
    return hashlib.sha256(str(Path(member_dir).resolve()).encode()).hexdigest()[:16]


def run_name(overrides: str, seed: int) -> str:
    return f"{overrides} seed={seed}".strip() if overrides else f"seed={seed}"


def job_type(config: dict[str, Any], requested: str | None) -> str:
    """``requested`` if set; ``grid`` for a TH grid search's stage one (its epochs are ``grid_epochs``), else
    ``train``."""
    if requested:
        return requested
    grid = config.get("grid_epochs")
    return "grid" if grid is not None and config.get("trainer", {}).get("epochs") == grid else "train"


def upload(
    members: list[tuple[Path, dict[str, Any]]],
    options: dict[str, Any],
    mode: str,
    overrides: str = "",
    tables: dict[str, Any] | None = None,
) -> list[str]:
    """One W&B run per ``(member folder, member summary)``; returns the W&B run ids written.

    ``tables``: DataFrames to log as W&B tables (a toy experiment's CSV tables).
    """
    wandb = require("wandb", "wandb", "logger=wandb")
    ids = []
    for member_dir, summary in members:
        config = dict(summary.get("config") or {})
        seed = summary.get("seed", config.get("seed"))
        config["seed"] = seed
        rows = read_rows(Path(member_dir) / METRICS)
        source = [r for r in rows if r["epoch"] < 0]
        common = dict(wandb=wandb, options=options, mode=mode, member_dir=member_dir, summary=summary, config=config)
        if source:  # a method's own source pre-training is a stage of its own (job_type source)
            name = run_name(overrides, seed) + " source"
            run = _one_run(**common, rows=source, job="source", name=name, run_key=Path(member_dir) / "source")
            ids += [run] if run else []
        target = [r for r in rows if r["epoch"] >= 0]
        job = job_type(config, options.get("job_type"))
        run = _one_run(
            **common, rows=target, job=job, name=run_name(overrides, seed), run_key=member_dir, tables=tables
        )
        ids += [run] if run else []
    return ids


def _one_run(wandb, options, mode, member_dir, summary, config, rows, job, name, run_key, tables=None) -> str | None:
    """One W&B run of ``rows``; its id is a function of ``run_key`` (a folder). None if W&B could not start."""
    try:
        run = wandb.init(
            project=options.get("project", "optrepro"),
            entity=options.get("entity"),
            group=summary.get("experiment"),
            job_type=job,
            name=name,
            id=run_id(run_key),
            resume="allow",
            dir=str(member_dir),
            mode=mode,
            config=config,
            tags=[str(t) for t in config.get("tags", [])],
            settings=wandb.Settings(init_timeout=float(options.get("init_timeout", 10)), silent=True),
            reinit="finish_previous",
        )
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B could not start for %s (%s); its records are on disk", member_dir, err)
        return None
    try:
        for key in STEP_METRICS:
            run.define_metric(key)
        run.define_metric("*", step_metric="epoch")
        for row in rows:
            run.log(row)
        for table, frame in (tables or {}).items():
            run.log({f"tables/{table}": wandb.Table(dataframe=frame)})
        run.summary.update(_summary(member_dir, summary))
        return run.id
    finally:
        run.finish(exit_code=0 if summary.get("status") in ("completed", "diverged") else 1)


def _summary(member_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": summary.get("status"), "run_dir": str(member_dir)}
    for section in ("final", "best"):
        for key, value in (summary.get(section) or {}).items():
            if isinstance(value, int | float):
                out[f"{section}/{key}"] = value
    if summary.get("diverged_at_epoch") is not None:
        out["diverged_at_epoch"] = summary["diverged_at_epoch"]
    return out
