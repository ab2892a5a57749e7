"""``checkpoints/last.ckpt``: written atomically every few epochs, and found again to resume an interrupted run."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch

LAST = Path("checkpoints") / "last.ckpt"


class LastCheckpoint(L.Callback):
    """Saves the full training state (model, optimizer, loops) every ``every`` epochs and at the last one.

    The file is written beside its final name and renamed into place, so an interruption never leaves a
    half-written checkpoint behind.
    """

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), max(1, int(every))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done % self.every and done != trainer.max_epochs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        trainer.save_checkpoint(tmp)
        os.replace(tmp, self.path)


def resumable_epoch(path: Path) -> int | None:
    """The first epoch still to train from the checkpoint at ``path`` (None if there is none)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["epoch"]) + 1
