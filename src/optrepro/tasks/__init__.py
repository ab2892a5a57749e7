"""The kinds of task the one loop trains (docs/architecture.md "One loop"), chosen by ``task.module``."""

from __future__ import annotations

from typing import Any

from optrepro.tasks.base import Batch, SplitSums, Task
from optrepro.tasks.images import Autoencoding, Classification
from optrepro.tasks.regression import SineRegression, TrajectoryRegression

KINDS: dict[str, type[Task]] = {
    "regression": SineRegression,
    "trajectory": TrajectoryRegression,
    "classification": Classification,
    "autoencoding": Autoencoding,
}


def task_class(kind: str) -> type[Task]:
    """The class of ``task.module=kind`` (its class attributes say what the kind can do)."""
    if kind not in KINDS:
        raise ValueError(f"task.module={kind!r} is not one of {', '.join(KINDS)} (or toy)")
    return KINDS[kind]


def make_task(kind: str, name: str, datamodule: Any) -> Task:
    """The task object of ``task.module=kind`` for the task config ``name`` served by ``datamodule``."""
    cls = task_class(kind)
    if cls is Classification:
        paired = hasattr(datamodule, "source_name")
        return Classification(name, num_classes=getattr(datamodule, "num_classes", None), has_source=paired)
    return cls(name)


__all__ = [
    "KINDS",
    "Autoencoding",
    "Batch",
    "Classification",
    "SineRegression",
    "SplitSums",
    "Task",
    "TrajectoryRegression",
    "make_task",
    "task_class",
]
