"""A callback for the cluster tier: each epoch takes at least ``seconds``, so that a job is still training when the
test (or SLURM's time limit) interrupts it, whatever the machine's speed. It sleeps; it changes no result."""

from __future__ import annotations

import time

import lightning as L


class Pace(L.Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        time.sleep(self.seconds)
