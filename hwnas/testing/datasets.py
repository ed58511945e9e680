"""Conformance suite of datasets (`hwnas.data.DATASETS`): what `hwnas.data.build_loaders` promises for each.

`check_dataset(name, root)` opens the dataset (small files are enough; nothing is downloaded) and checks:

- every batch of ``train``, ``val`` and ``test`` holds float images shaped as ``loaders.profile`` says
  (channels, resolution) and integer labels in ``[0, profile.num_classes)``; ``mean`` / ``std`` have one
  entry per channel; a ``resolution`` override reaches the profile and the images;
- ``train_indices`` and ``val_indices`` are disjoint, together cover the official training split, and size
  the train and val parts; ``val_fraction`` of it is held out;
- the split depends on ``split_seed`` alone (a different ``seed`` with the same ``split_seed`` holds out
  the same samples), and the same settings give the same first batch of ``val`` and ``test`` and, with
  torch's RNG seeded alike (augmentation draws on it), of ``train``.

A new dataset: register it in ``DATASETS``, then call ``check_dataset("mydata", root)`` with a folder of a
few samples in its format (the project's tests write tiny files for each built-in dataset, and skip a
dataset they cannot open offline).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader

from hwnas.data import Loaders, build_loaders

#: batches of each loader the shape and label checks look at (all of them for tiny files)
MAX_BATCHES = 8


def check_dataset(name: str, root: str | os.PathLike | None = None, *, batch_size: int = 4,
                  val_fraction: float = 0.25, resolution: int = 16, **options: Any) -> None:
    """Every check of this module for dataset ``name`` under ``root``; ``options`` go to `build_loaders`
    (e.g. ``synthetic_size``)."""
    def build(**changes: Any) -> Loaders:
        settings = dict(batch_size=batch_size, val_fraction=val_fraction, seed=0, **options)
        return build_loaders(name, root, **{**settings, **changes})

    loaders = build()
    for part in ("train", "val", "test"):
        check_batches(name, part, getattr(loaders, part), loaders)
    check_split(name, loaders, val_fraction)
    # fresh loaders: iterating the train loader above advanced its shuffling generator
    check_determinism(name, build(), build(), build(seed=1, split_seed=0))
    resized = build(resolution=resolution)
    assert resized.profile.resolution == resolution, \
        f"dataset {name!r} with resolution={resolution} must report it in its profile, but reports " \
        f"{resized.profile.resolution}"
    for part in ("train", "val", "test"):
        check_batches(name, part, getattr(resized, part), resized, max_batches=1)


def check_batches(name: str, part: str, loader: DataLoader, loaders: Loaders, *,
                  max_batches: int = MAX_BATCHES) -> None:
    """Images shaped by the profile, labels within its classes."""
    profile = loaders.profile
    assert len(loaders.mean) == len(loaders.std) == profile.channels, \
        f"dataset {name!r} must give one mean and std per channel ({profile.channels}), but gives " \
        f"{loaders.mean} and {loaders.std}"
    shape = (profile.channels, profile.resolution, profile.resolution)
    batches = 0
    for images, labels in loader:
        assert images.dtype == torch.float32 and tuple(images.shape[1:]) == shape, \
            f"{part} images of dataset {name!r} must be float32 of shape (N, {', '.join(map(str, shape))}) as its " \
            f"profile says, but are {images.dtype} {tuple(images.shape)}"
        assert labels.dtype == torch.int64 and labels.shape == (len(images),), \
            f"{part} labels of dataset {name!r} must be int64, one per image, but are {labels.dtype} " \
            f"{tuple(labels.shape)} for {len(images)} images"
        low, high = int(labels.min()), int(labels.max())
        assert 0 <= low and high < profile.num_classes, \
            f"{part} labels of dataset {name!r} must lie in [0, {profile.num_classes}), but range over [{low}, {high}]"
        batches += 1
        if batches == max_batches:
            break
    assert batches > 0, f"the {part} loader of dataset {name!r} must yield at least one batch, but yielded none"


def check_split(name: str, loaders: Loaders, val_fraction: float) -> None:
    """Train and val are disjoint and cover the official training split."""
    train, val = set(loaders.train_indices), set(loaders.val_indices)
    assert len(train) == len(loaders.train_indices) and len(val) == len(loaders.val_indices), \
        f"dataset {name!r} must list each training sample once per part, but repeats some"
    assert not train & val, \
        f"the train and val parts of dataset {name!r} must be disjoint, but share {sorted(train & val)[:5]}"
    n = len(train) + len(val)
    assert train | val == set(range(n)), \
        f"the train and val parts of dataset {name!r} must cover its {n} training samples, but miss " \
        f"{sorted(set(range(n)) - train - val)[:5]}"
    sizes = len(loaders.train.dataset), len(loaders.val.dataset)  # type: ignore[arg-type]
    assert sizes == (len(train), len(val)), \
        f"the train and val loaders of dataset {name!r} must hold {len(train)} and {len(val)} samples, but hold {sizes}"
    assert len(val) == max(1, round(n * val_fraction)), \
        f"dataset {name!r} must hold out val_fraction={val_fraction} of {n} samples, but holds out {len(val)}"


def _first(loader: DataLoader, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return next(iter(loader))


def check_determinism(name: str, loaders: Loaders, again: Loaders, reseeded: Loaders) -> None:
    """``again`` has the same settings as ``loaders``; ``reseeded`` another seed but the same split seed."""
    assert (again.train_indices, again.val_indices) == (loaders.train_indices, loaders.val_indices), \
        f"dataset {name!r} must split the same way for the same seed, but did not"
    assert (reseeded.train_indices, reseeded.val_indices) == (loaders.train_indices, loaders.val_indices), \
        f"the split of dataset {name!r} must depend on split_seed alone, but seed=1, split_seed=0 held out " \
        f"{list(reseeded.val_indices)[:5]}... instead of {list(loaders.val_indices)[:5]}..."
    for part, seed in (("val", None), ("test", None), ("train", 0)):
        (x, y), (x2, y2) = _first(getattr(loaders, part), seed), _first(getattr(again, part), seed)
        same = "the same settings" + (" and torch seed" if seed is not None else "")
        assert torch.equal(y, y2), f"the first {part} batch of dataset {name!r} must be the same for {same}, but " \
                                   f"its labels {y.tolist()} became {y2.tolist()}"
        assert torch.equal(x, x2), f"the first {part} batch of dataset {name!r} must be the same for {same}, but " \
                                   f"its images differ by up to {float((x - x2).abs().max()):.3g}"
