"""Which runs may be aggregated: those whose resolved configs agree on every key but the seed.

Runs of one experiment that differ in any other key (a swept learning rate, a profile, a changed schedule) are
different series: a report never merges them into one curve or one median. Keys that do not change results
(where a run is written, Hydra's settings, the loggers) and keys the reports already draw apart (the method, and
per paper what their figures split by: HT's omega, TH's optimizer settings, HTA's network) are not series keys.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

#: keys (or key prefixes, ending in '.') that never make a different series. ``ensemble.size`` is not one of them:
#: an ensemble member equals the single run of its seed only up to rounding that training amplifies (5.6% of the
#: final loss at profile=quick, docs/ht.md), so members and single runs of one seed are two runs, not one
NOT_SERIES = (
    "seed",
    "paths.",
    "hydra.",
    "logger.",
    "method.",
    "trainer.checkpoint",
    "trainer.checkpoint_every",
)
#: per paper (experiment prefix), keys its report modules split into their own curves, columns or figures
SPLIT_BY_REPORTS = {
    "ht/": ("task.omega",),
    "th/": ("optimizer.", "schedule.", "task.reuse_batch", "trainer.epochs", "grid_epochs"),
    "hta/": ("model.",),
    "gc/": (),
}


#: keys added to the configs after runs were recorded without them, with the value those runs behaved as (the code
#: before the key existed did exactly this): a run that lacks the key is compared as if it had this value
ADDED_KEYS = {"homotopy.optimizer_at_switch": "keep"}


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON strings (comparable and hashable)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value, sort_keys=True) if isinstance(value, list) else value
    return out


def _ignored(key: str, experiment: str) -> bool:
    paper_keys = next((keys for prefix, keys in SPLIT_BY_REPORTS.items() if experiment.startswith(prefix)), ())
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in (*NOT_SERIES, *paper_keys))


def series_labels(runs: pd.DataFrame) -> pd.Series:
    """Per run: the keys (``k=v, ...``) in which its config differs from other runs of its experiment, or '' when
    all runs of the experiment agree on every key but the seed (and the keys in ``NOT_SERIES`` and
    ``SPLIT_BY_REPORTS``)."""
    labels = pd.Series("", index=runs.index, dtype=object)
    for experiment, group in runs.groupby(runs.experiment.fillna("")):
        flat = {i: {**ADDED_KEYS, **flatten(cfg or {})} for i, cfg in group.config.items()}
        keys = sorted({k for f in flat.values() for k in f if not _ignored(k, experiment)})
        differing = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
        for i, f in flat.items():
            labels[i] = ", ".join(f"{k}={f.get(k)}" for k in differing)
    return labels


def slug(label: str) -> str:
    """A folder name for a series label: 'optimizer.lr=0.1, profile.name=quick' -> 'optimizer.lr=0.1_profile...'."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_")[:120] or "series"


def _preset_scale(experiment: str) -> tuple[int, int] | None:
    """(target epochs, seeds per method) of the paper-scale preset ``experiment``; None if there is none."""
    from optrepro.config import compose

    try:
        cfg = compose([f"experiment={experiment}"])
    except Exception:  # noqa: BLE001 - not a preset of this checkout (an old or foreign run)
        return None
    seeds = cfg.ensemble.size if cfg.ensemble.size > 1 else 1
    return int(cfg.trainer.epochs), int(seeds)


def scale_note(group: pd.DataFrame) -> str:
    """'' when the runs of ``group`` (one experiment and series) are at the paper's scale, else what is smaller:
    ``'not paper scale: profile quick, 250 of 2500 epochs, 5 of 100 seeds per method'``."""
    if group.empty or "experiment" not in group:
        return ""
    experiment = str(group.experiment.iloc[0])
    preset = _preset_scale(experiment)
    column = lambda name: group[name].dropna() if name in group else pd.Series(dtype=object)  # noqa: E731
    profile = ", ".join(sorted({str(p) for p in column("profile")}))
    epochs = int(column("epochs").max()) if len(column("epochs")) else None
    seeds = int(group.groupby("method").seed.nunique().min()) if {"method", "seed"} <= set(group) else None
    parts = []
    if profile and profile != "paper":
        parts.append(f"profile {profile}")
    if preset and epochs is not None and epochs < preset[0]:
        parts.append(f"{epochs} of {preset[0]} epochs")
    if preset and seeds is not None and seeds < preset[1]:
        parts.append(f"{seeds} of {preset[1]} seeds per method")
    return "not paper scale: " + ", ".join(parts) if parts else ""
