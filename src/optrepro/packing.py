"""Which jobs of a sweep can train together as one ensemble (``hydra/launcher=packed``, docs/architecture.md
"Packed sweeps").

Jobs pack when their configs (the profile applied) are equal outside the keys that can vary per member:

- ``seed`` and ``ensemble.size``: every member has its own seed;
- ``method`` and ``homotopy``: the data-homotopy family (random init, warm start, the homotopy; HT Algorithm 1
  with its exact targets), each member its own lambda schedule, source pre-training and optimizer switch;
- ``task.omega``: the sine task's target frequency, each member its own target function;
- ``optimizer.lr``: Adam's learning rate, each member its own (``optrepro.optim.member_adam.MemberAdam``).

Only a job that the packed trainer can serve exactly packs: the sine task, a data-homotopy method with exact
targets, Adam with no options beyond lr, betas, eps and weight decay, one process, no extra
Lightning callbacks, and no live TensorBoard curve (one per job). Any other job runs alone, as it would under
Hydra's basic launcher, and the launcher says why; jobs that would pack but differ elsewhere say which keys kept
them apart.

Nothing here imports torch (``utils`` is plain config handling).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from optrepro.utils import without_keys

#: keys whose values may differ between the members of one pack (dotted paths into the resolved config)
PER_MEMBER = ("seed", "ensemble.size", "method", "homotopy", "task.omega", "optimizer.lr")
#: keys that never matter for packing: where a job writes (each job keeps its own folder)
IGNORED = ("paths",)
SINE = "optrepro.data.sine.SineDataModule"
DATA_HOMOTOPY = "optrepro.methods.DataHomotopy"
ADAM = "torch.optim.Adam"
#: Adam's keys that MemberAdam serves (``optrepro.optim.member_adam.ADAM_OPTIONS``, with the target)
ADAM_KEYS = ("_target_", "lr", "betas", "eps", "weight_decay")


@dataclass
class Plan:
    """Groups of job indices that train as one ensemble each, jobs that run alone with the reason, and what kept
    the groups apart."""

    packs: list[list[int]] = field(default_factory=list)
    alone: dict[int, str] = field(default_factory=dict)
    apart: list[str] = field(default_factory=list)  # the keys that differ between packs

    def messages(self, name=lambda i: f"#{i}") -> list[str]:
        """What the launcher logs; ``name(i)``: how job ``i`` is called (the sweep's job number)."""
        out = []
        for pack in self.packs:
            out.append(f"packed: jobs {', '.join(name(i) for i in pack)} train as one ensemble")
        for i, why in sorted(self.alone.items()):
            out.append(f"job {name(i)} runs alone: {why}")
        if self.apart:
            out.append(f"kept apart by {', '.join(self.apart)} (they cannot vary per member)")
        return out


def unpackable(config: dict[str, Any]) -> str | None:
    """Why a job (its resolved config, the profile applied) cannot join a pack, or None when it can."""
    task, method, optimizer, trainer = (config.get(k) or {} for k in ("task", "method", "optimizer", "trainer"))
    if task.get("_target_") != SINE:
        return f"task={task.get('name')} is not the sine task (only its members can differ in data and start)"
    if method.get("_target_") != DATA_HOMOTOPY or method.get("form", "exact") != "exact":
        form = f" with method.form={method.get('form')}" if method.get("form", "exact") != "exact" else ""
        return f"method={method.get('name')}{form} is not a data-homotopy method with exact targets (HT eq. 14)"
    extra = sorted(set(optimizer) - set(ADAM_KEYS))
    if optimizer.get("_target_") != ADAM or extra:
        what = f"optimizer.{', optimizer.'.join(extra)}" if extra else f"optimizer {optimizer.get('_target_')}"
        return f"{what} has no per-member form (the pack trains with a per-member Adam)"
    if "ddp" in str(trainer.get("strategy", "")) or int(trainer.get("num_nodes") or 1) > 1:
        return f"trainer.strategy={trainer.get('strategy')} runs several processes"
    if config.get("callbacks"):
        return f"callbacks={','.join(config['callbacks'])} act on one run's curve (early stopping, lr monitor)"
    if "tensorboard" in (config.get("logger") or {}):
        return "logger=tensorboard draws one live curve per job"
    return None


#: how the source epochs are named when a per-step lr schedule keeps them shared
STEP_SCHEDULE_SOURCE = "method.source_epochs (with an lr schedule per step)"


def shared_part(config: dict[str, Any]) -> dict[str, Any]:
    """What every member of a pack must have in common: the config minus the per-member and ignored keys. With an
    lr schedule stepped per optimizer step (``schedule.interval=step``), members that start at different epochs
    would need different factors, so the source epochs stay shared then."""
    shared = without_keys(config, PER_MEMBER + IGNORED)
    if (config.get("schedule") or {}).get("interval") == "step":
        shared[STEP_SCHEDULE_SOURCE] = (config.get("method") or {}).get("source_epochs", 0)
    return shared


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config."""
    flats = [_flat(c) for c in configs]
    keys = sorted(set().union(*flats))
    return [k for k in keys if len({json.dumps(f.get(k, "<unset>"), sort_keys=True) for f in flats}) > 1]


def plan(configs: list[dict[str, Any]], sizes: list[int], max_members: int | None = None) -> Plan:
    """Group jobs (resolved configs, with their member counts) into packs; ``max_members`` caps a pack's size (a
    job larger than it runs alone)."""
    out = Plan()
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        why = unpackable(config)
        if why is None and max_members is not None and sizes[i] > max_members:
            why = f"its {sizes[i]} members exceed hydra.launcher.max_members={max_members}"
        if why is not None:
            out.alone[i] = why
            continue
        groups.setdefault(json.dumps(shared_part(config), sort_keys=True), []).append(i)
    for members in groups.values():
        chunk: list[int] = []
        for i in members:
            if chunk and max_members is not None and sum(sizes[j] for j in chunk) + sizes[i] > max_members:
                out.packs.append(chunk)
                chunk = []
            chunk.append(i)
        out.packs.append(chunk)
    singles = [p for p in out.packs if len(p) == 1]
    for p in singles:
        out.packs.remove(p)
        out.alone[p[0]] = "no other job of the sweep differs from it only in per-member keys"
    if len(groups) > 1:
        out.apart = differing_keys([shared_part(configs[g[0]]) for g in groups.values()])
    return out


def pack_id(jobs: list[tuple[str, str]]) -> str:
    """A pack's name from its jobs' (folder, config hash): the same jobs make the same pack, whose checkpoint a
    rerun resumes."""
    blob = json.dumps(sorted(jobs)).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
