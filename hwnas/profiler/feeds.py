"""Inputs for models timed by a runtime (torch-free: numpy only, so it ships to a target with the runners)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


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
