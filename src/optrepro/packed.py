"""Several jobs of a sweep trained as one ensemble in one process, each job's records as if it had run alone
(``hydra/launcher=packed``; which jobs pack: ``optrepro.packing``; docs/architecture.md "Packed sweeps").

The members of a pack are the members of its jobs, in order. They share the trainer's epochs and differ in:

- the seed, the target function (``task.omega``) and the learning rate (``MemberAdam``), per member;
- the method (random init, warm start, the homotopy), per member: its lambda schedule, its source pre-training
  and the optimizer switch. The pack runs ``S = max source_epochs`` epochs before the target budget; a member
  with ``s`` source epochs starts ``S - s`` epochs late (random init waits the whole pre-training) and walks its
  data by its own epochs. Target epoch 0 comes at the same trainer epoch for every member, so an epoch schedule
  of the learning rate (which counts the target budget) is the same for all.
- Source pre-training is shared: members with the same seed, omega, learning rate and source epochs (warm start
  and the homotopy of one seed) pre-train once. The first of them trains; the others wait, and at target epoch 0
  take its parameters and its optimizer state (then ``homotopy.optimizer_at_switch=fresh`` clears theirs). Their
  records of the source epochs are the trainer's rows, written to each of their folders.

A waiting member takes no step (its loss is masked and ``MemberAdam`` leaves it alone) and writes no row, so each
member's rows are those of the job run alone, to float rounding (tests/test_packed.py). The pack's checkpoint
lives in ``<sweep>/.packed/<pack id>/``; the pack id comes from its jobs, so the same unfinished jobs resume it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from optrepro import train
from optrepro.checkpoints import LAST, LastCheckpoint
from optrepro.config import ConfigError
from optrepro.ensemble.members import build_members
from optrepro.interrupts import RunInterrupted, StopOnSignal, StopRequests
from optrepro.loggers import upload_to_wandb
from optrepro.loop import TrainingLoop, step_columns
from optrepro.methods.base import Method, check_applicable
from optrepro.methods.data_homotopy import DataHomotopy
from optrepro.optim.member_adam import MemberAdam
from optrepro.packing import pack_id
from optrepro.progress import CompactProgress
from optrepro.records import (
    KEEP_OPEN,
    METRICS,
    CorruptRecords,
    MemberLog,
    RunLock,
    Timer,
    member_dirs,
    provenance,
    set_aside,
    write_summary,
)
from optrepro.tasks import make_task
from optrepro.utils import build, config_hash

PACKS = ".packed"


@dataclass
class PackJob:
    """One job of a pack: its config that runs (``optrepro.train.prepare``), its folder and its label."""

    cfg: DictConfig
    run_dir: Path
    label: str

    @property
    def seeds(self) -> list[int]:
        return [self.cfg.seed + i for i in range(self.cfg.ensemble.size)]


def pack_dir(sweep_dir: Path, jobs: list[PackJob]) -> Path:
    return Path(sweep_dir) / PACKS / pack_id([(str(j.run_dir), config_hash(j.cfg)) for j in jobs])


class Layout:
    """Who each member of a pack is: its job, its index there, and when it starts."""

    def __init__(self, jobs: list[PackJob], methods: list[DataHomotopy]):
        self.job: list[int] = []
        self.local: list[int] = []
        self.seeds: list[int] = []
        self.omegas: list[float] = []
        self.lrs: list[float] = []
        self.source: list[int] = []
        for j, job in enumerate(jobs):
            for i, seed in enumerate(job.seeds):
                self.job.append(j)
                self.local.append(i)
                self.seeds.append(seed)
                self.omegas.append(float(job.cfg.task.omega))
                self.lrs.append(float(job.cfg.optimizer.lr))
                self.source.append(methods[j].source_epochs)
        self.size = len(self.seeds)
        self.source_epochs = max(self.source)
        #: epochs each member starts after the trainer's first
        self.shifts = [self.source_epochs - s for s in self.source]
        #: per member, the member whose source pre-training it takes at target epoch 0 (None: its own)
        self.leader: list[int | None] = [None] * self.size
        first: dict[tuple, int] = {}
        for m in range(self.size):
            if self.source[m] == 0:
                continue
            key = (self.seeds[m], self.omegas[m], self.lrs[m], self.source[m])
            if key in first:
                self.leader[m] = first[key]
            else:
                first[key] = m
        self.followers = [m for m in range(self.size) if self.leader[m] is not None]

    def started(self, epoch: int) -> Tensor:
        """``[members]``: the members that train at target epoch ``epoch``."""
        return torch.tensor([epoch >= -s and (self.leader[m] is None or epoch >= 0) for m, s in enumerate(self.source)])


class PackedHomotopy(Method):
    """The data homotopies of a pack's members (``DataHomotopy`` with exact targets), one per job: each member's
    targets are ``(1 - lambda_i) y_source + lambda_i y_target`` (HT eq. 14) at its own lambda."""

    name = "packed"
    parameter_name = None  # each member's lambda is written in its own row (PackedLoop)

    def __init__(self, methods: list[DataHomotopy], layout: Layout):
        for method in methods:
            if method.form != "exact":
                raise ConfigError(f"method.form={method.form} cannot be packed: its targets are not HT eq. 14's")
        self.methods, self.layout = methods, layout
        self.source_epochs = layout.source_epochs
        self._coefficients: Tensor | None = None
        self._on_device: Tensor | None = None

    def requirements(self) -> dict[str, str]:
        return {k: v for m in self.methods for k, v in m.requirements().items()}

    def lambdas(self, epoch: int) -> list[float]:
        """Each member's lambda at target epoch ``epoch`` (0 during its source pre-training)."""
        per_job = [m.parameter(epoch) for m in self.methods]
        return [per_job[j] for j in self.layout.job]

    def parameter(self, epoch: int) -> list[float]:
        lam = self.lambdas(epoch)
        # float32 coefficients made from the doubles, as a scalar lambda's (1 - lam) and lam are: bitwise alike
        self._coefficients = torch.tensor([[1.0 - v for v in lam], lam]).view(2, -1, 1, 1)
        self._on_device = None
        return lam

    def batch(self, batch, lam) -> tuple[Tensor, Tensor]:
        if self._on_device is None or self._on_device.device != batch.y.device:
            self._on_device = self._coefficients.to(batch.y.device)  # once per epoch: no copy, no sync per step
        keep, move = self._on_device
        return batch.x, keep * batch.y_source + move * batch.y


class PackedLog:
    """The records of a pack: each member's rows and divergence go to its job's ``MemberLog``; the rows of a
    shared source pre-training also go to the members that take it."""

    def __init__(self, logs: list[MemberLog], layout: Layout):
        self.logs, self.layout = logs, layout
        self.epoch = 0  # the target epoch being written (PackedLoop sets it)
        self.takers: dict[int, list[int]] = {}
        for m in layout.followers:
            self.takers.setdefault(layout.leader[m], []).append(m)

    def _targets(self, m: int) -> list[int]:
        return [m, *self.takers.get(m, [])] if self.epoch < 0 else [m]

    def write(self, m: int, row: dict[str, Any]) -> None:
        for k in self._targets(m):
            self.logs[self.layout.job[k]].write(self.layout.local[k], row)

    def mark_diverged(self, m: int, epoch: int) -> None:
        for k in self._targets(m):
            self.logs[self.layout.job[k]].mark_diverged(self.layout.local[k], epoch)


class PackedLoop(TrainingLoop):
    """The one loop (``optrepro.loop.TrainingLoop``) over a pack: members start at their own epochs, take a shared
    source pre-training at target epoch 0, and write rows with their own lambda, step count and learning rate."""

    def __init__(self, *args, layout: Layout, fresh: list[bool], **kwargs):
        super().__init__(*args, **kwargs)
        self.layout, self.fresh = layout, torch.tensor(fresh)

    def training_members(self) -> Tensor:
        started = self.layout.started(self.budget_epoch)
        self._started = started.tolist()
        optimizer = self.trainer.optimizers[0]
        optimizer.active = started
        self._lrs = optimizer.member_lrs()
        if self.log_members is not None:
            self.log_members.epoch = self.budget_epoch
        return self.alive & started.to(self.alive.device)

    def start_target(self) -> None:
        followers = self.layout.followers
        optimizer = self.trainer.optimizers[0]
        if followers:
            leaders = [self.layout.leader[m] for m in followers]
            with torch.no_grad():
                for tensor in [*self.model.parameters(), *self.model.buffers()]:
                    if tensor.dim() and tensor.shape[0] == self.size:
                        tensor[followers] = tensor[leaders]
            optimizer.copy_members(leaders, followers)
            self.alive[followers] = self.alive[leaders]
        if self.fresh.any():
            optimizer.reset(self.fresh)

    def member_columns(self, m: int, common: dict[str, Any]) -> dict[str, Any] | None:
        if not self._started[m]:
            return None
        steps = self.global_step - self.layout.shifts[m] * self.trainer.num_training_batches
        return step_columns(
            self.trainer.optimizers[0], self.budget_epoch, steps, self._lrs[m], "homotopy/lambda", self.lam[m]
        )

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if self.budget_epoch < 0 and self.layout.followers:  # a shared pre-training diverged for all who take it
            leaders = [self.layout.leader[m] for m in self.layout.followers]
            self.alive[self.layout.followers] = self.alive[leaders]
            for m, leader in zip(self.layout.followers, leaders):
                self.diverged_at[m] = self.diverged_at[leader]


def train_pack(jobs: list[PackJob], sweep_dir: Path, alone: Callable[[int], Any]) -> list[Any]:
    """Train ``jobs`` as one ensemble; each job's metrics (its summary's), in order. A job that another process
    holds is skipped; a finished one is not trained again. When one job is left, ``alone(index)`` runs it (the
    launcher runs it as the basic launcher would) and its answer is that job's result."""
    locks, owned, results = [], [], [{"monitor": j.cfg.monitor} for j in jobs]
    try:
        for k, job in enumerate(jobs):
            lock = RunLock(job.run_dir)
            if not lock.acquire():
                train._say(job.label, f"in progress in process {lock.holder()}: skipped here")
                continue
            locks.append(lock)
            previous, done = train.earlier_attempt(job.cfg, job.run_dir, job.label)
            if done:
                results[k] = previous.get("metrics", {})
            else:
                owned.append((k, job, previous))
        if len(owned) == 1:
            k = owned[0][0]
            locks.pop().release()  # the job takes its own lock
            results[k] = alone(k)
        elif owned:
            metrics = _train_owned([job for _, job, _ in owned], [p for _, _, p in owned], sweep_dir)
            for (k, _, _), m in zip(owned, metrics):
                results[k] = m
        return results
    finally:
        for lock in locks:
            lock.release()


def _member_logs(jobs: list[PackJob], directions: dict, start: int | None, keep_open: bool, label: str):
    """Every job's ``MemberLog``, continued before target epoch ``start`` when resuming; when one job's records
    cannot be continued, every job starts over (returned start: None)."""
    if start is not None:
        try:
            return [MemberLog(j.run_dir, j.seeds, directions, start, keep_open) for j in jobs], start
        except CorruptRecords as err:
            train._say(label, f"{err}: the pack starts over from epoch 0")
            for job in jobs:
                for d in member_dirs(job.run_dir, job.seeds):
                    if (d / METRICS).is_file():
                        set_aside(d / METRICS)
    return [MemberLog(j.run_dir, j.seeds, directions, keep_open=keep_open) for j in jobs], None


def _train_owned(jobs: list[PackJob], previous: list, sweep_dir: Path) -> list[dict[str, Any]]:
    cfg = jobs[0].cfg  # what the jobs share is the same in every one of them (optrepro.packing)
    folder = pack_dir(sweep_dir, jobs)
    ckpt = folder / LAST
    label = f"pack of {len(jobs)} jobs"
    resume_at = train._resume_point(cfg, ckpt, all(p is not None for p in previous), label)
    train.quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    methods = [build(j.cfg.method, keep=("name",)) for j in jobs]
    layout = Layout(jobs, methods)
    tag = f"{cfg.name} {label} ({layout.size} members)"
    datamodule = build(
        cfg.task,
        seeds=layout.seeds,
        omega=layout.omegas,
        epoch_shifts=layout.shifts,
        limit_batches=cfg.trainer.limit_batches,
    )
    task = make_task(cfg.task.module, cfg.task.name, datamodule)
    for method in methods:
        check_applicable(method, task, layout.size)
    method = PackedHomotopy(methods, layout)
    lr_schedule = build(cfg.schedule, total=cfg.trainer.epochs)
    if getattr(lr_schedule, "interval", "epoch") != "epoch" and len(set(layout.shifts)) > 1:  # packing.shared_part
        raise ConfigError("an lr schedule per step cannot serve members that start at different epochs")
    start = None if resume_at is None else resume_at - layout.source_epochs
    logs, start = _member_logs(jobs, task.metrics(), start, layout.size <= KEEP_OPEN, label)
    if start is None:
        resume_at = None
    adam = OmegaConf.to_container(cfg.optimizer, resolve=True)

    def optimizer(params):
        return MemberAdam(
            params,
            layout.lrs,
            tuple(adam.get("betas", (0.9, 0.999))),
            adam.get("eps", 1e-8),
            adam.get("weight_decay", 0.0),
        )

    members = build_members(lambda: build(cfg.model), layout.seeds, compile=cfg.trainer.compile)
    fresh = [methods[layout.job[m]].fresh_optimizer for m in range(layout.size)]
    module = PackedLoop(
        members,
        task,
        method,
        optimizer=optimizer,
        lr_schedule=lr_schedule,
        log=PackedLog(logs, layout),
        weight_decay=cfg.weight_decay,
        train_metrics=cfg.train_metrics,
        layout=layout,
        fresh=fresh,
    )
    callbacks: list = [CompactProgress(tag, layout.size)]
    stop = StopRequests()
    callbacks.append(StopOnSignal(stop, finish_epoch=bool(cfg.trainer.checkpoint)))
    if cfg.trainer.checkpoint:
        callbacks.append(LastCheckpoint(ckpt, cfg.trainer.checkpoint_every, stop))
    max_epochs = layout.source_epochs + cfg.trainer.epochs
    folder.mkdir(parents=True, exist_ok=True)
    trainer = train.build_trainer(cfg, folder, max_epochs, [], callbacks, False)

    bases = []
    for job, method_j in zip(jobs, methods):
        resolved = OmegaConf.to_container(job.cfg, resolve=True)
        base = {"experiment": job.cfg.name, "method": method_j.name, "config_hash": config_hash(job.cfg)}
        base.update(config=resolved, **provenance(), torch_threads=torch.get_num_threads())
        where = os.path.relpath(ckpt, job.run_dir)  # relative: the sweep folder may move
        base["packed"] = {"pack": folder.name, "jobs": len(jobs), "members": layout.size, "checkpoint": where}
        kind = "ensemble" if len(job.seeds) > 1 else "run"
        write_summary(job.run_dir, {**base, "kind": kind, "status": "running"})
        bases.append(base)
    timer, outcome, stopped_by = Timer(), "completed", None
    try:
        with stop:
            if resume_at is not None:
                train._say(tag, f"resuming from {ckpt} at epoch {resume_at - layout.source_epochs}")
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt if resume_at is not None else None)
            if trainer.interrupted:
                raise RunInterrupted(stop.signum or signal.SIGINT)
    except (RunInterrupted, KeyboardInterrupt, SystemExit) as err:
        outcome, stopped_by = "interrupted", err
    except Exception as err:
        outcome, stopped_by = "failed", err
    resume = f"the same command resumes from {ckpt}" if cfg.trainer.checkpoint else "the same command starts over"
    results = []
    for job, log, base in zip(jobs, logs, bases):
        base["wall_time_s"] = timer.seconds
        if outcome == "failed":
            base["error"] = f"{type(stopped_by).__name__}: {stopped_by}"
        top, summaries = train.finish_records(job.run_dir, log, base, outcome, job.cfg.monitor, resume)
        if outcome == "completed":
            upload_to_wandb(job.cfg.logger, list(zip(log.dirs, summaries)), job.label)
        results.append(top["metrics"])
    if outcome == "interrupted":
        train._say(tag, f"interrupted ({stopped_by}): every job's summary says interrupted; {resume}")
        code = stopped_by.exit_code if isinstance(stopped_by, RunInterrupted) else 1
        raise SystemExit(code) from stopped_by
    if outcome == "failed":
        raise stopped_by
    return results
