"""Low-dimensional problems run with plain full-batch or minibatch loops (no Lightning)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def steps(iterable: Iterable[T], desc: str, total: int | None = None, every: float = 30.0) -> Iterator[T]:
    """``iterable`` with its progress on stderr: a live bar in a terminal; in a log file a plain line every
    ``every`` seconds and one at the end (``desc: 120/4096 (31 s)``), so a ten-minute toy run is never silent."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)
        return
    items = list(iterable) if total is None and not hasattr(iterable, "__len__") else iterable
    n = total if total is not None else len(items)
    start = last = time.monotonic()
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= every or i == n:
            print(f"{desc}: {i}/{n} ({now - start:.0f} s)", file=sys.stderr, flush=True)
            last = now
