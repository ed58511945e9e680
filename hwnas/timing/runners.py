"""What the runtimes' runners share (torch-free: numpy only, so it ships to a target with them): the timed loop
over copies of a model, the inputs they are fed, and the installed version of a runtime."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.timing.protocol import Runner


class CycleRunner(Runner):
    """Times ``calls`` (one zero-argument call per copy of a model), cycling through them: a block runs
    ``max(number // 100, 2)`` untimed calls first, as ``torch.utils.benchmark`` does, then ``number`` calls between
    two ``time.perf_counter`` readings. Subclasses prepare the calls and keep what they point into."""

    def __init__(self, calls: Sequence[Callable[[], object]]):
        self._calls = itertools.cycle(calls)

    def time_block(self, number: int) -> float:
        calls = self._calls
        for _ in range(max(number // 100, 2)):
            next(calls)()
        start = time.perf_counter()
        for _ in range(number):
            next(calls)()
        return (time.perf_counter() - start) / number

    def close(self) -> None:
        self._calls = iter(())


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def random_feeds(inputs: Sequence[dict[str, Any]], copies: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``copies`` independent feeds for inputs described as ``{"name", "shape", "dtype"}``: standard-normal
    floats, zeros for integer inputs. Latency does not depend on the values."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(copies):
        feed = {}
        for spec in inputs:
            dtype = np.dtype(spec["dtype"])
            shape = tuple(spec["shape"])
            feed[spec["name"]] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                                  else np.zeros(shape, dtype=dtype))
        feeds.append(feed)
    return feeds
