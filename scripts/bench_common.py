"""What the benchmarks and the GPU check share: Lightning callbacks that time the framework's epochs and count the
operations its training steps dispatch, and the framework's sine run as the benchmarks call it.

The callbacks are ordinary Lightning callbacks, added to a run through the ``callbacks`` config node
(``+callbacks.epoch_timer._target_=bench_common.EpochTimer``), so what is timed is ``optrepro.train.run`` itself,
nothing rebuilt beside it. They write what they measured to a JSON file (``path``), which also works when the run
is in another process. This module must be importable (``scripts/`` on ``sys.path``, as it is for a script run from
there).
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: operations that copy a value to the host: each one waits for the device (a host sync)
SYNC_OPS = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.equal")


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class EpochTimer(L.Callback):
    """Per epoch: ``train_s``, from the epoch's start to the end of its last training step (callbacks' epoch-end
    hooks run before the module's, so the end-of-epoch evaluation is left out), and ``epoch_s``, from the epoch's
    start to the next one's (evaluation, logging and records included). The device is synchronized at each of
    these points only (one sync per epoch boundary)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.epochs: list[dict[str, float]] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _sync()
        now = time.perf_counter()
        if self._start is not None:
            self.epochs[-1]["epoch_s"] = now - self._start
        self._start = now
        self.epochs.append({"epoch": trainer.current_epoch})

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _sync()
        self.epochs[-1]["train_s"] = time.perf_counter() - self._start

    def on_train_end(self, trainer, pl_module) -> None:
        _sync()
        if self._start is not None and "epoch_s" not in self.epochs[-1]:
            self.epochs[-1]["epoch_s"] = time.perf_counter() - self._start
        self.path.write_text(json.dumps({"epochs": self.epochs}))


class OpCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched while it is active (forward, backward and optimizer alike: autograd's
    threads inherit the mode). On a GPU each operation that is not a view is about one kernel launch, so the count
    is a deterministic stand-in for launches that a CPU can measure."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func] += 1
        return func(*args, **(kwargs or {}))

    def summary(self) -> dict[str, Any]:
        total = sum(self.ops.values())
        views = sum(n for op, n in self.ops.items() if getattr(op, "is_view", False))
        names = Counter()
        for op, n in self.ops.items():
            names[str(op.overloadpacket)] += n
        syncs = sum(n for name, n in names.items() if name in SYNC_OPS)
        return {"ops": total, "non_view_ops": total - views, "host_syncs": syncs, "by_name": dict(names)}


class DispatchCounter(L.Callback):
    """Counts the operations of ``steps`` whole training steps of the first epoch: each window runs from the end of
    one step (``on_train_batch_end``) to the end of the next, so it holds everything Lightning and the loop do for
    one step (fetching a batch, the step's hooks, forward, backward, the optimizer, the loop's bookkeeping). The
    first step (optimizer state created) is left out."""

    def __init__(self, path: str, steps: int = 3):
        self.path, self.steps = Path(path), int(steps)
        self.windows: list[dict[str, Any]] = []
        self._mode: OpCounter | None = None

    def _close(self, keep: bool) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            if keep:
                self.windows.append(self._mode.summary())
            self._mode = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch != 0:
            return
        self._close(keep=True)
        if len(self.windows) < self.steps:
            self._mode = OpCounter()
            self._mode.__enter__()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close(keep=False)  # a window cut short by the epoch's end

    def on_train_end(self, trainer, pl_module) -> None:
        self._close(keep=False)
        self.path.write_text(json.dumps({"windows": self.windows}))


def count_hand_written(model, steps: int = 3) -> list[dict[str, Any]]:
    """The same windows for ``sine_baseline.HandWrittenSine``: fetching a batch, the step, the epoch's running
    loss; the first step is left out."""
    batches = model.batches()
    total = torch.zeros((), device=model.device)
    x, y = next(batches)
    total += model.step(x, y)
    windows = []
    for _ in range(steps):
        with OpCounter() as counter:
            x, y = next(batches)
            total += model.step(x, y)
        windows.append(counter.summary())
    return windows


def callback_overrides(name: str, target: str, **arguments: Any) -> list[str]:
    """The command-line overrides that add one callback to a run's ``callbacks`` node."""
    out = [f"+callbacks.{name}._target_={target}"]
    out += [
        f"+callbacks.{name}.{k}='{v}'" if isinstance(v, str | Path) else f"+callbacks.{name}.{k}={v}"
        for k, v in arguments.items()
    ]
    return out


def sine_overrides(
    members: int, epochs: int, gpu: bool, limit: int | None = None, n_samples: int | None = None
) -> list[str]:
    """The HT sine preset (1-100x6-1, Adam, batch 64) as one ensemble of ``members`` seeds with random
    initialization (lambda = 1 from the start: no source pre-training), no checkpoints."""
    return [
        "experiment=ht/sine_f1",
        "profile=paper",
        "method=random_init",
        f"ensemble.size={members}",
        f"trainer={'gpu' if gpu else 'cpu'}",
        f"trainer.epochs={epochs}",
        "trainer.checkpoint=false",
        *([] if limit is None else [f"trainer.limit_batches={limit}"]),
        *([] if n_samples is None else [f"task.n_samples={n_samples}"]),
    ]


def framework_run(overrides: Iterable[str], run_dir: Path, *, timer: bool = True, count_steps: int = 0) -> dict:
    """``optrepro.train.run`` on ``overrides`` into ``run_dir``, with an ``EpochTimer`` (and a ``DispatchCounter``
    when ``count_steps``). Returns ``{"epochs": [...], "windows": [...], "metrics": ...}``."""
    from optrepro.config import compose
    from optrepro.train import run

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = []
    if timer:
        extra += callback_overrides("epoch_timer", "bench_common.EpochTimer", path=str(run_dir / "epoch_times.json"))
    if count_steps:
        extra += callback_overrides(
            "dispatch_counter", "bench_common.DispatchCounter", path=str(run_dir / "dispatch.json"), steps=count_steps
        )
    metrics = run(compose([*overrides, *extra, f"paths.run_dir={run_dir}"]))
    out: dict[str, Any] = {"metrics": metrics}
    if timer:
        out["epochs"] = json.loads((run_dir / "epoch_times.json").read_text())["epochs"]
    if count_steps:
        out["windows"] = json.loads((run_dir / "dispatch.json").read_text())["windows"]
    return out


def steady(epochs: list[dict[str, float]], key: str, skip: int = 1) -> float:
    """The median of ``key`` over the epochs after the first ``skip`` (warm-up: allocation, autotuning, compiling)."""
    values = [e[key] for e in epochs[skip:] if key in e] or [e[key] for e in epochs if key in e]
    return statistics.median(values)


def hand_written_epochs(model, epochs: int, limit: int | None = None, skip: int = 1) -> dict[str, float]:
    """Median ``train_s`` (the steps) and ``epoch_s`` (steps, evaluation of both splits, one host sync) of
    ``sine_baseline.HandWrittenSine`` over ``epochs`` epochs after ``skip`` warm-up epochs."""
    times = []
    for _ in range(skip + epochs):
        _sync()
        start = time.perf_counter()
        objective = model.train_epoch(limit)
        _sync()
        trained = time.perf_counter()
        for value in [*model.evaluate().values(), objective]:
            value.cpu()  # the epoch's one copy to the host, as the framework makes it
        times.append({"train_s": trained - start, "epoch_s": time.perf_counter() - start})
    return {key: steady(times, key, skip) for key in ("train_s", "epoch_s")}
