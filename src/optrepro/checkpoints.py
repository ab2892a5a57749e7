"""``checkpoints/last.ckpt``: written atomically every few epochs, and found again to resume an interrupted run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

LAST = Path("checkpoints") / "last.ckpt"


class LastCheckpoint(Checkpoint):
    """Saves the full training state (model, optimizer, loops, the method's own state, torch's random generators)
    every ``every`` epochs, at the last one and when training stops early (divergence).

    A ``Checkpoint`` callback runs its epoch-end hook after the LightningModule's, so the checkpoint of an epoch
    holds what the module did at that epoch's end (its metrics row written, a divergence marked): a run interrupted
    before then resumes at that epoch and writes its row again. The file is written beside its final name and
    renamed into place, so an interruption never leaves a half-written checkpoint behind.

    Torch's generators are saved because methods draw from them (GC's noise); data order and augmentation come
    from generators seeded per epoch and need nothing. Under DDP the file holds rank 0's generators.
    """

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), max(1, int(every))

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
        if done % self.every and done != trainer.max_epochs and not trainer.should_stop:
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
