"""How many threads training and evaluation use on the CPU: as many as there are idle cores.

PyTorch starts one intra-op thread per core. When another process keeps a core busy, every parallel region
of a small network then waits for the thread that shares that core, and training slows far more than the
lost core explains: measured here (`bench/busy_core.py`, fbnet width 0.25, 16x16), 2 threads ran 0.35x as
fast beside one busy core of two, one thread 0.88x. So the commands count the idle cores just before they
start (`idle_cores`: the CPU time nobody used over a quarter of a second, from ``/proc/stat``) and use that
many threads (`configure`). Where the operating system does not say, PyTorch's own choice stands.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

STAT = Path("/proc/stat")


def usable_cores() -> int:
    """Cores this process may run on (affinity and container limits included where the OS says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs since boot, or None where /proc/stat is not readable."""
    try:
        fields = STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is counted in user time already


def idle_cores(sample_s: float = 0.25, *, sleep=time.sleep) -> float | None:
    """How many of the machine's cores were idle over the next ``sample_s`` seconds (None if unknown)."""
    before = _cpu_times()
    if before is None:
        return None
    sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return share * (os.cpu_count() or 1)


def choose_threads(idle: float | None, usable: int) -> int:
    """Threads for ``idle`` idle cores out of ``usable``: the idle cores rounded, at least one; all usable
    cores when the idle count is unknown."""
    if idle is None:
        return usable
    return max(1, min(usable, int(idle + 0.5)))


def configure(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads to ``threads``, or (None) to the idle cores; return the number set."""
    import torch

    chosen = threads if threads is not None else choose_threads(idle_cores(), usable_cores())
    if threads is None and chosen < usable_cores():
        # not a notice on stderr: it would come before a command's one-line error on bad input; training's
        # progress line shows the threads instead
        log.debug("%d of %d cores are busy with other work: using %d thread(s)", usable_cores() - chosen,
                  usable_cores(), chosen)
    torch.set_num_threads(chosen)
    return chosen
