"""The one way long-running library calls report progress: a callable that takes a `Progress`.

The library never draws anything itself; the CLI turns these updates into click progress bars (on a
terminal) or one line per step (in logs). Notices that are not progress (a run resumed, data found in
another place) go to the ``hwnas`` logger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps of ``task`` ("profiling fbnet on cpu", "epoch 3/10", ...), and a short
    ``status`` line about the work so far (loss and accuracy, best candidate, ...)."""

    task: str
    done: int
    total: int
    status: str = ""


ProgressCallback = Callable[[Progress], None]


def report(callback: ProgressCallback | None, task: str, done: int, total: int, status: str = "") -> None:
    """Call ``callback`` (when there is one) with a `Progress`."""
    if callback is not None:
        callback(Progress(task, done, total, status))
