"""Low-dimensional problems run with plain full-batch or minibatch loops (no Lightning)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def steps(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``iterable`` with a progress bar on stderr: live in a terminal, a line every 30 s in a log file (so a
    ten-minute toy run is never silent)."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    yield from tqdm(
        iterable,
        desc=desc,
        total=total,
        file=sys.stderr,
        mininterval=0.5 if interactive else 30.0,
        dynamic_ncols=interactive,
        leave=interactive,
    )
