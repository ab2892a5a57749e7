"""Hyper-parameter checks shared by the optimizers: one message format naming the value and what is allowed."""

from __future__ import annotations


def require(owner: str, name: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{owner}: {name}={value!r} is not allowed: {name} must be {allowed}")
