"""The real evaluator: an architecture's validation accuracy with weights inherited from a trained supernet.

For each architecture, `hwnas.supernet.evaluate.subnet_accuracy` copies its path out of the supernet,
recalibrates the BN statistics on a fixed set of training batches (a supernet's running statistics mix
every path and mislead a single one) and measures top-1 accuracy on the validation split, the part of
the training set the supernet never trained on. The calibration batches are fetched once and kept, so an
accuracy depends on the architecture alone, as the `Evaluator` contract requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from hwnas.errors import CheckpointError, ConfigError
from hwnas.search.evaluator import Evaluator
from hwnas.supernet.space import Architecture, SearchSpace


class SupernetEvaluator(Evaluator):
    """Validation accuracy (%) with supernet-inherited weights after BN recalibration.

    ``val_loader`` yields the validation split; ``calibration`` holds the training images (batches)
    that recalibrate BN; ``description`` identifies supernet and data in a search's config.json.
    """

    def __init__(self, supernet: Any, val_loader: DataLoader, calibration: Sequence[torch.Tensor], *,
                 description: dict | None = None):
        super().__init__()
        if not calibration:
            raise ConfigError("BN recalibration needs at least one training batch, but got none")
        self.supernet, self.val_loader, self.calibration = supernet, val_loader, list(calibration)
        self.description = description or {}

    def _evaluate(self, arch: Architecture) -> float:
        from hwnas.supernet.evaluate import subnet_accuracy

        return 100.0 * subnet_accuracy(self.supernet, arch, self.val_loader, calibration=self.calibration)

    def describe(self) -> dict:
        return {"kind": "supernet", **self.description, "bn_batches": len(self.calibration),
                "val_samples": len(self.val_loader.dataset)}  # type: ignore[arg-type]

    @classmethod
    def from_run(cls, run_dir: str | Path, *, space: SearchSpace | None = None, dataset: str | None = None,
                 data_root: str | Path | None = None, download: bool = False, bn_batches: int | None = None,
                 val_batches: int | None = None, batch_size: int | None = None,
                 device: str | None = None) -> "SupernetEvaluator":
        """The evaluator of a supernet training run: its validation split (the run's split of its dataset),
        ``bn_batches`` (default: the run's) un-augmented training batches for BN, the first ``val_batches``
        validation batches (default: all), batches of ``batch_size`` (default: the run's). With ``space``, a
        supernet trained on another space is refused before any data is loaded."""
        from hwnas.supernet.data import build_loaders
        from hwnas.supernet.evaluate import calibration_batches, load_supernet
        from hwnas.supernet.train import read_log

        for name, value in (("bn_batches", bn_batches), ("val_batches", val_batches), ("batch_size", batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, but got {name}={value}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("evaluation on cuda needs an NVIDIA GPU, but torch finds none; use --eval-device cpu")
        if not Path(run_dir).is_dir():
            raise CheckpointError(f"a supernet run directory must exist, but {run_dir} does not")
        supernet, config = load_supernet(run_dir, device)
        if space is not None:
            check_supernet_space(supernet, space, f"the supernet in {run_dir}")
        if dataset is not None and dataset != config.dataset:
            raise ConfigError(f"candidates must be validated on the dataset the supernet was trained on "
                              f"({config.dataset!r} in {run_dir}), but got dataset {dataset!r}")
        options = config.loader_options()
        options.update(download=download, batch_size=batch_size or config.batch_size)
        if data_root is not None:
            options["root"] = str(data_root)
        loaders = build_loaders(config.dataset, augment=False, **options)
        val_loader = loaders.val
        if val_batches is not None:
            shown = range(min(len(val_loader.dataset), val_batches * options["batch_size"]))  # type: ignore[arg-type]
            val_loader = DataLoader(Subset(val_loader.dataset, shown), batch_size=options["batch_size"])
        calibration = calibration_batches(loaders.train, bn_batches or config.bn_batches)
        description = {"run_dir": str(Path(run_dir).resolve()), "dataset": config.dataset,
                       "epochs_trained": len(read_log(run_dir)), "val_fraction": config.val_fraction,
                       "data_seed": config.seed, "batch_size": options["batch_size"]}
        return cls(supernet, val_loader, calibration, description=description)


def check_supernet_space(supernet: Any, space: SearchSpace, source: str) -> None:
    """Refuse a supernet trained on another space (or input, or width) than the search's."""
    mine, theirs = supernet.space.describe(), space.describe()
    if mine != theirs:
        diffs = [f"{k} {mine.get(k)!r} != {theirs.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                 if mine.get(k) != theirs.get(k)]
        raise CheckpointError(f"the supernet must be trained on the search space, but {source} differs: "
                              f"{'; '.join(diffs[:3])} (supernet != search)")


def evaluator_for_run(run_dir: str | Path, space: SearchSpace, **options: Any) -> tuple[SupernetEvaluator, Any]:
    """(evaluator, supernet) of a run directory, refused unless the supernet was trained on ``space``."""
    evaluator = SupernetEvaluator.from_run(run_dir, space=space, **options)
    return evaluator, evaluator.supernet


def load_run(run_dir: str | Path) -> tuple[Any, Any]:
    """(SuperNet on the CPU, RunConfig) of a supernet training run directory."""
    from hwnas.supernet.evaluate import load_supernet

    if not Path(run_dir).is_dir():
        raise CheckpointError(f"a supernet run directory must exist, but {run_dir} does not")
    return load_supernet(run_dir, "cpu")
