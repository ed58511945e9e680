"""Path samplers for single-path supernet training.

A path is one op index per searchable layer. The samplers see only the number of candidate ops of each
layer, so they serve every search space, including those whose layers offer different numbers of ops
(ProxylessNAS drops the ``zero`` op where a layer changes shape). All randomness comes from the
``random.Random`` passed in: ranks that seed it alike sample the same paths, and a resumed run that
restores its state continues the same sequence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hwnas.errors import require


def _check(num_ops: Sequence[int]) -> None:
    require(len(num_ops) > 0, "num_ops must list at least one searchable layer, got none")
    bad = [(layer, n) for layer, n in enumerate(num_ops) if n < 1]
    require(not bad, f"every layer needs at least one candidate op, but (layer, ops) = {bad}")


def uniform_path(num_ops: Sequence[int], rng: random.Random) -> list[int]:
    """One path with each layer's op drawn uniformly and independently (SPOS's uniform sampling)."""
    _check(num_ops)
    return [rng.randrange(n) for n in num_ops]


def fair_paths(num_ops: Sequence[int], rng: random.Random) -> list[list[int]]:
    """``max(num_ops)`` paths that together train every op of every layer (FairNAS strict fairness).

    When all layers have m ops, each layer's column is a random permutation, so every op is used
    exactly once per step. A layer with n < m ops cannot be used evenly in m slots: it uses every op
    floor(m/n) times and a random choice of m mod n distinct ops once more, in a shuffled order, so its
    counts within a step differ by at most one. Which ops get the extra slots is drawn afresh each
    step, which keeps the sampler stateless; the price is that the cumulative counts of such a layer
    drift apart like a random walk: their spread grows like sqrt(T) over T steps while the counts grow
    like T (for ProxylessNAS's 6-op layers the spread is about 0.3 % of the count after 10 000 steps).
    """
    _check(num_ops)
    m = max(num_ops)
    columns = []
    for n in num_ops:
        column = list(range(n)) * (m // n) + rng.sample(range(n), m % n)
        rng.shuffle(column)
        columns.append(column)
    return [list(path) for path in zip(*columns)]
