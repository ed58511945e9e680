"""Which architectures to train stand-alone: a uniformly random sample of the space, a sample spread over an
estimator's accuracy range, the architectures in a latency band (where a search under that target decides), or
those of searches and rankings.

Every choice is a pure function of its seed: the same seed, the same architectures, in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from hwnas.errors import ConfigError
from hwnas.space import Architecture, SearchSpace
from hwnas.tables import LookupTable

#: how `hwnas rank` chooses its architectures
SAMPLES = ("random", "spread", "target")
#: architectures drawn at once when looking for those in a latency band, and the most drawn in all
BATCH, MOST_DRAWS = 4096, 4_000_000


def _check_k(k: int) -> None:
    if k < 2:
        raise ConfigError(f"ranking needs at least 2 architectures, but got archs={k}")


def random_sample(space: SearchSpace, k: int, seed: int = 0, *, exclude: Iterable[str] = ()) -> list[Architecture]:
    """The first ``k`` distinct architectures (not in ``exclude``) drawn uniformly with ``random.Random(seed)``."""
    skip, out = set(exclude), []
    rng = random.Random(seed)
    draws = 0
    while len(out) < k:
        arch = space.sample(rng)
        draws += 1
        if str(arch) not in skip:
            skip.add(str(arch))
            out.append(arch)
        elif draws > 100 * k + 10_000:
            raise ConfigError(f"space {space.name!r} holds fewer than {k} distinct architectures to choose from, but "
                              f"archs={k}")
    return out


def stratified(score: Callable[[Architecture], float], space: SearchSpace, k: int, *, pool: int | None = None,
               seed: int = 0) -> list[Architecture]:
    """``k`` distinct architectures spread evenly over ``score``'s range on a sample of ``pool`` (default
    ``max(8k, 64)``) random ones: every ``1/(k-1)``-th quantile, both ends included."""
    _check_k(k)
    rng = random.Random(seed)
    sample = list(dict.fromkeys(space.sample(rng) for _ in range(pool or max(8 * k, 64))))
    if len(sample) < k:
        raise ConfigError(f"space {space.name!r} holds {len(sample)} distinct architectures, fewer than archs={k}")
    ordered = sorted(sample, key=lambda arch: (score(arch), str(arch)))
    positions = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [ordered[p] for p in positions]


def spread(archs: Sequence[Architecture], accuracies: Sequence[float], k: int) -> list[Architecture]:
    """``k`` of ``archs`` (from searches or rankings) spread evenly over their accuracy range."""
    _check_k(k)
    unique = list(dict.fromkeys(zip(map(str, archs), accuracies)))
    if len(unique) < k:
        raise ConfigError(f"--archs-from holds {len(unique)} distinct architectures, fewer than archs={k}")
    ordered = sorted(unique, key=lambda pair: (pair[1], pair[0]))
    positions = sorted({round(i * (len(ordered) - 1) / (k - 1)) for i in range(k)})
    return [Architecture.parse(ordered[p][0]) for p in positions]


def random_subset(archs: Sequence[Architecture], k: int, seed: int = 0) -> list[Architecture]:
    """``k`` of the distinct ``archs`` chosen uniformly at random (all of them, in order, when there are ``k``)."""
    _check_k(k)
    unique = list(dict.fromkeys(map(str, archs)))
    if len(unique) < k:
        raise ConfigError(f"--archs-from holds {len(unique)} distinct architectures, fewer than archs={k}")
    chosen = unique if len(unique) == k else random.Random(seed).sample(unique, k)
    return [Architecture.parse(a) for a in chosen]


def in_band(space: SearchSpace, table: LookupTable, low_ms: float, high_ms: float, k: int, seed: int = 0, *,
            exclude: Iterable[str] = ()) -> list[Architecture]:
    """The first ``k`` distinct architectures (not in ``exclude``), drawn uniformly, whose latency on ``table``
    lies in [``low_ms``, ``high_ms``]: random architectures of equal latency. Fewer than ``k`` in
    `MOST_DRAWS` draws is a ConfigError that says how many were found."""
    table.check_built_for(space)
    generator = np.random.default_rng(seed)
    skip, out, draws = set(exclude), [], 0
    while len(out) < k and draws < MOST_DRAWS:
        rows = np.stack([generator.integers(0, n, BATCH) for n in space.num_ops], axis=1)
        draws += BATCH
        latency = table.predict_indices(rows)
        for position in np.flatnonzero((latency >= low_ms) & (latency <= high_ms)):
            arch = space.from_indices(rows[position].tolist())
            if str(arch) in skip:
                continue
            skip.add(str(arch))
            out.append(arch)
            if len(out) == k:
                break
    if len(out) < k:
        raise ConfigError(f"random architectures of space {space.name!r} must be found with a latency in "
                          f"[{low_ms:.4g}, {high_ms:.4g}] ms on {table.device_name}, but {draws} draws gave only "
                          f"{len(out)} of the {k} asked for; widen the band or choose another latency")
    return out
