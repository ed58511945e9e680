"""Scoring architectures: the `Evaluator` interface with its per-architecture cache.

`SupernetEvaluator` (in `hwnas.search.supernet_evaluator`) is the real one: supernet-inherited weights,
BN recalibration, validation accuracy. Anything else that maps an architecture to an accuracy (a
proxy, an accuracy predictor, a lookup in a benchmark's results) plugs in the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from hwnas.supernet.space import Architecture, as_architecture


class Evaluator(ABC):
    """Maps an architecture to its validation accuracy in percent.

    Contract: `_evaluate` is deterministic: an architecture gets the same accuracy whatever was
    evaluated before it, so that the cache (by architecture string) changes nothing but the time a
    search takes, and a resumed search that fills the cache from saved candidates ends as an
    uninterrupted one would. `describe` returns a JSON-serialisable description that identifies the
    scores (a resumed search refuses an evaluator described differently).
    """

    def __init__(self) -> None:
        self.cache: dict[str, float] = {}
        self.evaluations = 0  # calls of _evaluate, i.e. cache misses

    def __call__(self, arch: Architecture | str | Sequence[str]) -> float:
        key = str(as_architecture(arch))
        if key not in self.cache:
            self.cache[key] = float(self._evaluate(as_architecture(arch)))
            self.evaluations += 1
        return self.cache[key]

    def preload(self, accuracies: Mapping[str, float]) -> None:
        """Fill the cache with known accuracies (from a saved search)."""
        self.cache.update({str(as_architecture(k)): float(v) for k, v in accuracies.items()})

    @abstractmethod
    def _evaluate(self, arch: Architecture) -> float:
        """Validation accuracy of ``arch`` in percent."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What identifies the scores: kind, supernet, data, batches."""
