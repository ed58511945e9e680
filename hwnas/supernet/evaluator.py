"""Scoring architectures: the `Evaluator` interface with its per-architecture cache, and the one real
evaluator, `SupernetEvaluator`: validation accuracy with weights inherited from a trained supernet.

Accuracies are percentages everywhere in hwnas. `SupernetEvaluator` copies each architecture's path out of
the supernet, recalibrates its BN statistics on a fixed set of training batches (a supernet's running
statistics mix every path and mislead a single one) unless asked not to, and measures top-1 accuracy on
the validation split, the part of the training set the supernet never trained on. The calibration
batches are fetched once and kept, so an accuracy depends on the architecture alone. Build one for a
run directory with `hwnas.training.trained.open_evaluator`, which takes the run's own split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from hwnas.errors import ConfigError
from hwnas.space import Architecture, SearchSpace, as_architecture
from hwnas.supernet.evaluate import subnet_accuracy
from hwnas.supernet.supernet import SuperNet

#: validation images kept in memory by `SupernetEvaluator` up to this many bytes (else read from the loader)
CACHE_BYTES = 1 << 30


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
        arch = as_architecture(arch)
        key = str(arch)
        if key not in self.cache:
            self.cache[key] = float(self._evaluate(arch))
            self.evaluations += 1
        return self.cache[key]

    def many(self, archs: Sequence[Architecture | str | Sequence[str]]) -> list[float]:
        """The accuracies of ``archs`` in order (an evaluator that scores a batch at once overrides this)."""
        return [self(arch) for arch in archs]

    def preload(self, accuracies: Mapping[str, float]) -> None:
        """Fill the cache with known accuracies (from a saved search)."""
        self.cache.update({str(as_architecture(k)): float(v) for k, v in accuracies.items()})

    @abstractmethod
    def _evaluate(self, arch: Architecture) -> float:
        """Validation accuracy of ``arch`` in percent."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What identifies the scores: kind, supernet, data, batches."""


class SupernetEvaluator(Evaluator):
    """Validation accuracy (%) with supernet-inherited weights, after BN recalibration (``evaluator(arch)``,
    what a search ranks by) or with the inherited BN statistics (``accuracy(arch, recalibrate=False)``);
    both cached per architecture.

    ``val_loader`` yields the validation split; ``calibration`` holds the training images (batches)
    that recalibrate BN; ``description`` identifies supernet and data in a search's config.json.
    """

    def __init__(self, supernet: SuperNet, val_loader: DataLoader, calibration: Sequence[torch.Tensor], *,
                 description: dict | None = None):
        super().__init__()
        if not calibration:
            raise ConfigError("BN recalibration needs at least one training batch, but got none")
        self.supernet, self.val_loader, self.calibration = supernet, val_loader, list(calibration)
        self.description = description or {}
        self._inherited: dict[str, float] = {}
        self._cached: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def space(self) -> SearchSpace:
        return self.supernet.space

    def accuracy(self, arch: Architecture | str | Sequence[str], *, recalibrate: bool = True) -> float:
        """Validation accuracy (%) of ``arch``, with BN recalibrated (the default) or as inherited."""
        arch = self.space.validate(as_architecture(arch))
        if recalibrate:
            return self(arch)
        key = str(arch)
        if key not in self._inherited:
            self._inherited[key] = subnet_accuracy(self.supernet, arch, self._validation())
        return self._inherited[key]

    def _evaluate(self, arch: Architecture) -> float:
        return subnet_accuracy(self.supernet, self.space.validate(arch), self._validation(),
                               calibration=self.calibration)

    def _validation(self) -> DataLoader | list[tuple[torch.Tensor, torch.Tensor]]:
        """The validation batches, decoded and transformed once and then kept in memory when they fit in
        `CACHE_BYTES` (every candidate of a search is scored on the same images, and decoding them again took
        about a third of a candidate's time); the loader itself otherwise."""
        if self._cached is None:
            dataset = self.val_loader.dataset
            first = dataset[0][0] if len(dataset) else None  # type: ignore[arg-type,index]
            fits = isinstance(first, torch.Tensor) and first.numel() * first.element_size() * len(dataset) <= CACHE_BYTES  # type: ignore[arg-type]
            self._cached = [(x, y) for x, y in self.val_loader] if fits else []
        return self._cached or self.val_loader

    def describe(self) -> dict:
        return {"kind": "supernet", **self.description, "bn_batches": len(self.calibration),
                "val_samples": len(self.val_loader.dataset)}  # type: ignore[arg-type]
