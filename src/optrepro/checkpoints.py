"""``checkpoints/last.ckpt``: written atomically every few epochs, and found again to resume an interrupted run."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from optrepro.interrupts import StopRequests
from optrepro.records import CHECKPOINT, DiskFull

LAST = CHECKPOINT


class LastCheckpoint(Checkpoint):
    """Saves the full training state (model, optimizer, loops, the method's own state, torch's random generators)
    every ``every`` epochs, at the last one and when training stops early (divergence).

    A ``Checkpoint`` callback runs its epoch-end hook after the LightningModule's, so the checkpoint of an epoch
    holds what the module did at that epoch's end (its metrics row written, a divergence marked): a run interrupted
    before then resumes at that epoch and writes its row again. The file is written beside its final name and
    renamed into place, so an interruption never leaves a half-written checkpoint behind.

    ``stop``: the run's stop requests (``optrepro.interrupts``): when one is pending at an epoch's end, that
    epoch is checkpointed whatever ``every`` says and the run stops there, so a signal loses no finished epoch.

    Torch's generators are saved because methods draw from them (GC's noise); data order and augmentation come
    from generators seeded per epoch and need nothing. Under DDP the file holds rank 0's generators.
    """

    def __init__(self, path: Path, every: int, stop: StopRequests | None = None):
        self.path, self.every, self.stop = Path(path), max(1, int(every)), stop

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "torch" in state_dict:
            torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        stopping = self.stop is not None and self.stop.signum is not None
        if done % self.every == 0 or done == trainer.max_epochs or trainer.should_stop or stopping:
            self.save(trainer)
        if stopping:
            self.stop.check()

    def save(self, trainer: L.Trainer) -> None:
        """Write beside the final name, then rename; nothing partial stays behind (a full disk: ``DiskFull``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        try:
            trainer.save_checkpoint(tmp)
            if trainer.is_global_zero:
                os.replace(tmp, self.path)
        except BaseException as err:
            if trainer.is_global_zero:
                tmp.unlink(missing_ok=True)
            if isinstance(err, OSError | RuntimeError) and _no_space(err):
                raise DiskFull(self.path) from err
            raise


def _no_space(err: BaseException) -> bool:
    """torch.save reports a full disk as an OSError, or as a RuntimeError from its zip writer."""
    return getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err) or "file write failed" in str(err)


def resumable_epoch(path: Path) -> int | None:
    """The first epoch still to train from the checkpoint at ``path`` (None if there is none)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["epoch"]) + 1
