"""Shared fixtures: compose a config like optrepro-train would, and run it into a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

os.environ.setdefault("WANDB_SILENT", "true")

from optrepro.config import compose  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA device: without one they are skipped, saying so (``make gpu-check`` runs
    them on a GPU machine)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check runs the cuda-marked tests on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def tiny(*overrides: str) -> list[str]:
    """A sine run of a few seconds: small data, two homotopy steps of one epoch, a few batches."""
    return [
        "experiment=ht/sine_f1",
        "profile=paper",
        "ensemble.size=1",
        "task.n_samples=200",
        "task.batch_size=32",
        "model.hidden=16",
        "model.depth=2",
        "homotopy.gamma=2",
        "homotopy.k=1",
        "homotopy.source_epochs=1",
        "trainer.epochs=3",
        *overrides,
    ]


@pytest.fixture
def make_cfg(tmp_path: Path):
    def _make(*overrides: str, run_dir: Path | None = None):
        return compose([*tiny(*overrides), f"paths.run_dir={run_dir or tmp_path / 'run'}"])

    return _make


def read_metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / "metrics.csv")


@pytest.fixture
def one_thread():
    """Tiny tensors: a second intra-op thread only adds synchronization (a conv step 50x slower on a busy 2-core
    host). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def keep_figures(monkeypatch, module) -> dict:
    """Figures that report ``module`` saves from now on, by file stem (its ``save`` still writes them)."""
    drawn = {}
    original = module.save

    def keep(fig, out, stem):
        drawn[stem] = fig
        return original(fig, out, stem)

    monkeypatch.setattr(module, "save", keep)
    return drawn


def under_hydra(overrides: list[str], output_dir: Path):
    """The job config of ``optrepro-train overrides`` with Hydra's run context set as for a job writing into
    ``output_dir`` (so that ``run`` saves ``.hydra/config.yaml`` there, as under the command line)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    full = compose([*overrides, f"hydra.run.dir={output_dir}"], hydra_config=True)
    with open_dict(full):
        full.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(full)
    job = full.copy()
    with open_dict(job):
        del job["hydra"]
    (output_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(job, output_dir / ".hydra" / "config.yaml")  # what Hydra's run_job saves before the task runs
    return job


def wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (``run-<id>.wandb``), parsed with W&B's own protobuf ``Record``.

    wandb 0.31 ships no Python reader of its transaction log, so the framing is read here: a 7-byte header
    (``:W&B``, magic, version), then LevelDB-log blocks of 32 KiB whose records carry a 7-byte header (checksum,
    little-endian length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def wandb_history(path: Path) -> tuple[dict, list[dict]]:
    """(the run record's fields, the logged history rows) of an offline W&B run file."""
    import json

    run, rows = {}, []
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run = {"id": r.run_id, "name": r.display_name, "group": r.run_group, "job_type": r.job_type}
        elif kind == "history":
            row = {(i.key or ".".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
            rows.append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "metric" and record.metric.name:
            run.setdefault("metrics", {})[record.metric.name] = record.metric.step_metric
        elif kind == "metric" and record.metric.glob_name:
            run.setdefault("metrics", {})[record.metric.glob_name] = record.metric.step_metric
    return run, rows
