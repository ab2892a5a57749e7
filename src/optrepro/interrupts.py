"""Stopping a run on a signal without losing it (docs/architecture.md "The run store").

SIGTERM (what a scheduler sends before it kills or requeues a job), SIGUSR1 and SIGINT (Ctrl-C) ask the run to
stop: the request is noted, and training stops at a boundary with ``RunInterrupted``, so no file is left
half-written. A second signal stops at once. ``run`` then writes the summaries with status ``interrupted`` and the
same command resumes.

A run that checkpoints finishes the epoch in progress first and checkpoints it (``checkpoints.LastCheckpoint``),
so a signal loses no finished epoch; one that does not stops at the next batch. Lightning's own SIGTERM handler
is replaced during training (``StopOnSignal``) and its SLURM requeue handler stays off (``optrepro.trainer``): on
a cluster, submitit owns requeueing.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

import lightning as L

#: the signals that ask a run to stop, and the exit status of a process stopped by each (128 + the number)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class RunInterrupted(BaseException):
    """Training stopped on a signal (a BaseException, like KeyboardInterrupt: no ``except Exception`` eats it)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


#: a second signal within this many seconds of the first is taken as the same request (SLURM and srun can both
#: deliver one SIGTERM); a later one stops at once
REPEAT_S = 2.0
_active: StopRequests | None = None


def request_stop(signum: int) -> bool:
    """Ask the run training in this process to stop as if ``signum`` had arrived (the SLURM launcher hands
    submitit's requeue signal here); False when no run is training."""
    if _active is None:
        return False
    _active._handle(signum, None)
    return True


class StopRequests:
    """While active (a context manager), the stop signals are noted instead of killing the process; the previous
    handlers come back on exit. Outside the main thread (where Python cannot set handlers) it does nothing.
    ``immediate``: raise ``RunInterrupted`` from the first signal (loops that write nothing until they end)."""

    def __init__(self, immediate: bool = False):
        self.signum: int | None = None
        self.immediate = immediate
        self._previous: dict[int, Any] = {}
        self._first = 0.0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.immediate:
            raise RunInterrupted(signum)
        if self.signum is None:
            self.signum, self._first = signum, time.monotonic()
        elif time.monotonic() - self._first > REPEAT_S:  # asked again: stop now, wherever the run is
            raise RunInterrupted(signum)

    def check(self) -> None:
        """Raise ``RunInterrupted`` if a stop was asked for."""
        if self.signum is not None:
            raise RunInterrupted(self.signum)

    def __enter__(self) -> StopRequests:
        global _active
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        _active = None


class StopOnSignal(L.Callback):
    """Makes the stop signals the run's during training, and stops at a batch boundary.

    Lightning installs its own SIGTERM handler when ``fit`` starts (it would stop at the next batch end, losing the
    epoch in progress); ``on_train_start`` puts ours back in its place (Lightning restores the handlers it found
    when ``fit`` ends). ``finish_epoch``: a stop waits for the epoch in progress to end (``LastCheckpoint`` then
    checkpoints it and stops), else the next batch raises ``RunInterrupted``.
    """

    def __init__(self, requests: StopRequests, finish_epoch: bool = False):
        self.requests, self.finish_epoch = requests, finish_epoch

    def on_train_start(self, *args: Any) -> None:
        if self.requests._previous and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.requests._handle)

    def on_train_batch_start(self, *args: Any) -> None:
        if not self.finish_epoch:
            self.requests.check()
