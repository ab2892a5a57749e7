"""Small helpers shared by the whole package: object construction from configs, seeding, hashing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# Keys that describe a config node for people and reports but are not constructor arguments.
META_KEYS = ("name", "module", "train_metrics")


def build(node: DictConfig | dict, *args: Any, keep: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """Instantiate ``node['_target_']`` with the node's values, ``args`` and ``kwargs``.

    Every object the project makes from a config goes through here, so the policy lives in one place:
    nested configs are instantiated recursively, plain containers arrive as Python ``dict``/``list``
    (never as OmegaConf nodes), and the descriptive keys in ``META_KEYS`` are dropped unless listed in
    ``keep``.
    """
    # Resolve interpolations while the node still sits in its full config, then detach it.
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if "_target_" not in data:
        raise ValueError(f"config node has no _target_: {data}")
    data = {k: v for k, v in data.items() if k not in META_KEYS or k in keep}
    return instantiate(OmegaConf.create(data), *args, _convert_="all", **kwargs)


def member_seed(seed: int, *stream: int) -> int:
    """A 63-bit seed derived from ``seed`` and a stream id (e.g. an epoch), well mixed by SeedSequence."""
    return int(np.random.SeedSequence([int(seed), *map(int, stream)]).generate_state(2, np.uint64)[0] >> 1)


#: config keys that do not change a run's results: where it is written, Hydra's own settings, where it is reported,
#: how often it saves its state (a checkpoint restores the run exactly: tests/test_run_store.py)
NOT_RESULTS = ("paths", "hydra", "logger", "trainer.checkpoint", "trainer.checkpoint_every")


def without_keys(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of a plain (resolved) config without the dotted ``keys`` (those absent are ignored)."""
    out = json.loads(json.dumps(data, default=str))
    for key in keys:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def config_hash(cfg: DictConfig) -> str:
    """A short hash of the resolved config minus the keys that do not change results (``NOT_RESULTS``)."""
    data = without_keys(OmegaConf.to_container(cfg, resolve=True), NOT_RESULTS)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
