"""``optrepro-report ... --wandb``: a report's figures and tables as one W&B run (job type ``report``).

Every figure (PNG) becomes a W&B image and every CSV table a W&B table, keyed by its path inside the report folder;
the whole folder (report.md, PDFs) is logged as an artifact of type ``report``. Offline unless W&B is configured
(``wandb sync`` uploads it later).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optrepro.extras import require
from optrepro.loggers import wandb_mode


def to_wandb(out: Path, project: str = "optrepro", mode: str | None = None) -> str:
    """Log the report folder ``out``; return the W&B run's id."""
    wandb = require("wandb", "wandb", "optrepro-report --wandb")
    out = Path(out)
    run = wandb.init(project=project, job_type="report", group="reports", name=f"report {out.name}",
                     dir=str(out), mode=wandb_mode(mode), settings=wandb.Settings(silent=True))  # fmt: skip
    try:
        for png in sorted(out.rglob("*.png")):
            run.log({f"figures/{png.relative_to(out).with_suffix('')}": wandb.Image(str(png))})
        for csv in sorted(out.rglob("*.csv")):
            run.log({f"tables/{csv.relative_to(out).with_suffix('')}": wandb.Table(dataframe=pd.read_csv(csv))})
        artifact = wandb.Artifact(f"report-{out.name}".replace("/", "-"), type="report")
        for path in sorted(p for p in out.rglob("*") if p.is_file() and "wandb" not in p.relative_to(out).parts):
            artifact.add_file(str(path), name=str(path.relative_to(out)))
        run.log_artifact(artifact)
        return run.id
    finally:
        run.finish()
