"""What a finished (or interrupted) supernet run is used for: its trained SuperNet, its own data split, and
the evaluator that scores architectures with it.

Every consumer of a trained supernet (``hwnas eval``, evolution and random search, a warm-started
differentiable search, export) goes through here, so that the validation images are always the run's own
held-out part of the training split: the dataset, ``val_fraction`` and split seed recorded in its
``config.json``, never a split rebuilt with other settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from hwnas.data import Loaders, build_loaders
from hwnas.errors import CheckpointError, ConfigError, require
from hwnas.readers import require_dir
from hwnas.space import SearchSpace, space_from_description
from hwnas.supernet.evaluate import calibration_batches
from hwnas.supernet.evaluator import SupernetEvaluator
from hwnas.supernet.supernet import SuperNet
from hwnas.training.config import RunConfig
from hwnas.training.distributed import check_device
from hwnas.training.run_dir import one_line, read_log, read_run


def load_supernet(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SuperNet, RunConfig]:
    """The trained SuperNet of a run directory (in eval mode, on ``device``) and its RunConfig.

    Only weights are loaded; the space is rebuilt from ``config.json``'s description, so the result does
    not depend on the current defaults of the space's builder.
    """
    require_dir(run_dir, "a supernet run directory must exist", CheckpointError)
    stored = read_run(run_dir)
    require(stored is not None, f"{run_dir} holds no hwnas run (no config.json)", CheckpointError)
    require(stored.config.arch is None, f"{run_dir} holds a retrained architecture ({stored.config.arch}), "
            "not a supernet", CheckpointError)
    require(stored.checkpoint is not None, f"{run_dir} holds no checkpoint yet; train at least one epoch",
            CheckpointError)
    supernet = SuperNet(space_from_description(stored.space), stored.config.weight_sharing)
    try:
        supernet.load_state_dict(stored.checkpoint["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit its space ({one_line(exc)})") from None
    return supernet.to(device, memory_format=torch.channels_last).eval(), stored.config


def run_loaders(config: RunConfig, *, data_root: str | os.PathLike | None = None, download: bool = False,
                workers: int = 0, batch_size: int | None = None, augment: bool = False) -> Loaders:
    """The loaders of a run's data with the run's own split; only where the data lives, how it is loaded
    and the batch size may differ from the run's."""
    options = config.loader_options()
    options.update(download=download, workers=workers, batch_size=batch_size or config.batch_size)
    if data_root is not None:
        options["root"] = str(data_root)
    return build_loaders(config.dataset, augment=augment, **options)


def check_supernet_space(trained: SearchSpace, space: SearchSpace, source: str) -> None:
    """Refuse a supernet trained on another space (or input, or width), ``trained``, than ``space``."""
    mine, theirs = trained.describe(), space.describe()
    if mine != theirs:
        diffs = [f"{k} {mine.get(k)!r} != {theirs.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                 if mine.get(k) != theirs.get(k)]
        raise CheckpointError(f"the supernet must be trained on the search space, but {source} differs: "
                              f"{'; '.join(diffs[:3])} (supernet != search)")


def open_evaluator(run_dir: str | os.PathLike, *, space: SearchSpace | None = None, dataset: str | None = None,
                   data_root: str | os.PathLike | None = None, download: bool = False, workers: int = 0,
                   bn_batches: int | None = None, val_batches: int | None = None, batch_size: int | None = None,
                   device: str | None = None) -> SupernetEvaluator:
    """The evaluator of a supernet run: its validation split, ``bn_batches`` (default: the run's)
    un-augmented training batches for BN, the first ``val_batches`` validation batches (default: all), in
    batches of ``batch_size`` (default: the run's), on ``device`` (default: cuda when available). With
    ``space``, a supernet trained on another space is refused before any data is loaded; ``dataset``, when
    given, must be the run's."""
    for name, value in (("bn_batches", bn_batches), ("val_batches", val_batches), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, but got {name}={value}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    supernet, config = load_supernet(run_dir, device)
    if space is not None:
        check_supernet_space(supernet.space, space, f"the supernet in {run_dir}")
    if dataset is not None and dataset != config.dataset:
        raise ConfigError(f"candidates must be validated on the dataset the supernet was trained on "
                          f"({config.dataset!r} in {run_dir}), but got dataset {dataset!r}")
    loaders = run_loaders(config, data_root=data_root, download=download, workers=workers, batch_size=batch_size)
    val_loader = loaders.val
    size = batch_size or config.batch_size
    if val_batches is not None:
        shown = range(min(len(val_loader.dataset), val_batches * size))  # type: ignore[arg-type]
        val_loader = DataLoader(Subset(val_loader.dataset, shown), batch_size=size)
    description: dict[str, Any] = {
        "run_dir": str(Path(run_dir).resolve()), "dataset": config.dataset, "epochs_trained": len(read_log(run_dir)),
        "val_fraction": config.val_fraction, "data_seed": config.split_seed if config.split_seed is not None
        else config.seed, "batch_size": size}
    return SupernetEvaluator(supernet, val_loader, calibration_batches(loaders.train, bn_batches or config.bn_batches),
                             description=description)


def data_settings(config: RunConfig) -> dict[str, Any]:
    """The `RunConfig` settings that give another run the same data, split and input shape as ``config``."""
    return dict(dataset=config.dataset, val_fraction=config.val_fraction,
                split_seed=config.seed if config.split_seed is None else config.split_seed,
                resolution=config.resolution, synthetic_size=config.synthetic_size,
                synthetic_like=config.synthetic_like, width=config.width, data_root=config.data_root)


def warm_start(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The `RunConfig` settings of a run that starts from the trained supernet in ``run_dir``: its weights
    (``init_from``), its data and its validation split, so that the new run never validates on an image the
    supernet was trained on."""
    load_supernet(run_dir)  # refuses what is not a trained supernet
    config = read_run(run_dir).config
    return dict(**data_settings(config), weight_sharing=config.weight_sharing, bn_batches=config.bn_batches,
                init_from=str(Path(run_dir).resolve()))
