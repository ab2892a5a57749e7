"""Progress reporting: a bar for interactive runs, a compact line per job for sweeps and logs."""

from __future__ import annotations

import sys
import time

import lightning as L


def fmt_seconds(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class CompactProgress(L.Callback):
    """Prints one line per ``every`` fraction of the epochs (and at least every ``min_seconds``).

    ``[tag] epoch 250/2600  10%  train/loss 3.1e-02 (median of 100)  0:42 elapsed, ~6:20 left``

    The modules log an epoch's metrics in their own ``on_train_epoch_end``, which Lightning calls after the
    callbacks' hook, so the line for an epoch is printed when the next one starts (or training ends).
    """

    def __init__(self, tag: str, members: int, every: float = 0.1, min_seconds: float = 60.0, stream=None):
        self.tag, self.members, self.every, self.min_seconds = tag, members, every, min_seconds
        self.stream = stream or sys.stderr
        self._start = self._last_time = 0.0
        self._last_fraction = -1.0
        self._ended: int | None = None  # the epoch (1-based) that ended and is not reported yet

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last_time = time.perf_counter()
        self._last_fraction = 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._ended = trainer.current_epoch + 1

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._report(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._report(trainer)

    def _report(self, trainer) -> None:
        if self._ended is None:
            return
        done, total, self._ended = self._ended, trainer.max_epochs, None
        now = time.perf_counter()
        fraction = done / total
        if fraction - self._last_fraction < self.every and now - self._last_time < self.min_seconds and done < total:
            return
        self._last_fraction, self._last_time = fraction, now
        elapsed = now - self._start
        loss = trainer.callback_metrics.get("train/loss")
        what = f"train/loss {float(loss):.3e}" if loss is not None else ""
        if loss is not None and self.members > 1:
            what += f" (median of {self.members})"
        left = elapsed / fraction - elapsed
        print(
            f"[{self.tag}] epoch {done}/{total} {100 * fraction:3.0f}%  {what}  "
            f"{fmt_seconds(elapsed)} elapsed, ~{fmt_seconds(left)} left",
            file=self.stream,
            flush=True,
        )
