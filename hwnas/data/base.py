"""What every dataset shares: the registry, the train / validation / test split and the loaders.

Every dataset yields three loaders: ``train`` and ``val`` are disjoint parts of the official training
split (``val`` is what search and architecture updates look at), ``test`` is the official test split and is
meant for final reports only, so that no search decision is ever tuned on it. The split depends on nothing
but (number of training samples, ``val_fraction``, ``seed``), so a run directory that records those two
settings reproduces its split anywhere.

Data is fetched from the internet only when ``download=True``; otherwise missing data is a one-line
``DataError`` naming the path that was searched and the CLI flags that fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchvision import transforms as T

from hwnas.errors import DataError, require
from hwnas.registry import Registry
from hwnas.space.profiles import InputProfile, get_profile

HINT = "pass --download to fetch it, or --data-root to point at it"


@dataclass(frozen=True)
class DataRequest:
    """The arguments of :func:`build_loaders` that a dataset entry needs to open its data."""

    root: Path | None
    download: bool
    resolution: int | None
    seed: int
    synthetic_size: int
    synthetic_like: str


@dataclass(frozen=True)
class OpenedData:
    """A dataset entry's answer: untransformed splits, the transforms that suit them, and the input profile
    of what the transforms yield (channels, resolution, classes, and the stride style a space uses for it).

    The splits are left untransformed so that one loaded copy of the training files can serve both the
    augmented train part and the eval-transformed validation part. ``mean`` / ``std`` are the per-channel
    statistics the transforms normalise with. ``name`` is the registered dataset the data came from, which
    is not the one asked for when an entry falls back to another (``fashion-mnist`` to the embedded
    ``fashion-mnist-subset``).
    """

    name: str
    profile: InputProfile
    train: Dataset
    test: Dataset
    train_transform: Callable | None
    eval_transform: Callable | None
    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASETS: Registry[Callable[[DataRequest], OpenedData]] = Registry("dataset")


@dataclass(frozen=True)
class Loaders:
    """``train`` (shuffled, augmented; with ``distributed=True`` its sampler is a DistributedSampler whose
    ``set_epoch`` the training loop calls), ``val`` (held out of the training split), ``test`` (official).

    ``dataset`` is the registered dataset the data came from (see `OpenedData.name`); ``train_indices`` /
    ``val_indices`` are the positions in its training split that each part holds: disjoint, and the same
    for the same (dataset, ``val_fraction``, ``split_seed``).
    """

    dataset: str
    train: DataLoader
    val: DataLoader
    test: DataLoader
    profile: InputProfile
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_indices: tuple[int, ...]
    val_indices: tuple[int, ...]


def default_data_root() -> Path:
    """``$HWNAS_DATA``, else ``$XDG_CACHE_HOME/hwnas/data``, else ``~/.cache/hwnas/data``."""
    if os.environ.get("HWNAS_DATA"):
        return Path(os.environ["HWNAS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "hwnas" / "data"


def build_loaders(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    batch_size: int,
    val_fraction: float = 0.1,
    seed: int = 0,
    split_seed: int | None = None,
    download: bool = False,
    workers: int = 0,
    augment: bool = True,
    distributed: bool = False,
    synthetic_size: int = 1024,
    synthetic_like: str = "cifar10",
    resolution: int | None = None,
) -> Loaders:
    """Open dataset ``name`` and wrap it in train / val / test loaders.

    ``batch_size`` is per process. ``seed`` fixes the shuffling order (random augmentation draws on torch's
    RNG, which the training code seeds) and, unless ``split_seed`` is given, the validation split (and the
    images of ``synthetic``). ``augment=False`` gives the train part the eval transform. ``resolution``
    overrides the dataset's native input size (images are resized; synthetic tensors are generated at it). ``synthetic_size`` and ``synthetic_like`` (whose
    channels, resolution and classes to imitate) only matter for ``synthetic``. With ``distributed``
    every rank trains on its own shard of the train part; val and test stay whole on every rank.
    """
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}")
    require(0 < val_fraction < 1, f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    require(seed >= 0, f"seed must be non-negative, got {seed}")
    split_seed = seed if split_seed is None else split_seed
    require(split_seed >= 0, f"split_seed must be non-negative, got {split_seed}")
    require(workers >= 0, f"workers must be non-negative, got {workers}")
    require(resolution is None or resolution >= 1, f"resolution must be at least 1, got {resolution}")
    require(synthetic_size >= 2, f"synthetic_size must be at least 2 (train and val), got {synthetic_size}")
    opened = DATASETS.get(name)(
        DataRequest(
            root=None if root is None else Path(root).expanduser(),
            download=download,
            resolution=resolution,
            seed=split_seed,
            synthetic_size=synthetic_size,
            synthetic_like=synthetic_like,
        )
    )
    train_idx, val_idx = split_indices(len(opened.train), val_fraction, split_seed, name)
    train_set = _View(opened.train, train_idx, opened.train_transform if augment else opened.eval_transform)
    val_set = _View(opened.train, val_idx, opened.eval_transform)
    test_set = _View(opened.test, range(len(opened.test)), opened.eval_transform)

    sampler = None
    if distributed:
        require(
            dist.is_available() and dist.is_initialized(),
            "distributed=True needs an initialised torch.distributed process group (launch with torchrun)",
        )
        sampler = DistributedSampler(train_set, shuffle=True, seed=seed)
    per_rank = len(sampler) if sampler is not None else len(train_set)
    common = dict(batch_size=batch_size, num_workers=workers, pin_memory=torch.cuda.is_available())
    train = DataLoader(
        train_set,
        shuffle=sampler is None,
        sampler=sampler,
        # A ragged last batch can hold a single sample, on which BatchNorm fails in training mode;
        # drop it unless it is the only batch there is.
        drop_last=per_rank >= batch_size,
        generator=torch.Generator().manual_seed(seed),
        **common,
    )
    return Loaders(
        dataset=opened.name,
        train=train,
        val=DataLoader(val_set, shuffle=False, **common),
        test=DataLoader(test_set, shuffle=False, **common),
        profile=opened.profile,
        mean=opened.mean,
        std=opened.std,
        train_indices=tuple(train_idx),
        val_indices=tuple(val_idx),
    )


def split_indices(n: int, val_fraction: float, seed: int, name: str = "dataset") -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, validation); it depends on nothing but (n, val_fraction,
    seed), so every rank and every later search run holds out exactly the same samples."""
    n_val = max(1, round(n * val_fraction))
    require(
        n_val < n,
        f"val_fraction {val_fraction} of the {n} training samples of {name!r} leaves no training sample",
    )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


class _View(Dataset):
    """Selected items of a dataset passed through a transform.

    torch's Subset cannot change the transform, and torchvision datasets carry a single one; a view lets
    the train and validation parts share one loaded dataset while using different transforms.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Callable | None):
        self.base, self.indices, self.transform = base, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        x, y = self.base[self.indices[i]]
        return (x if self.transform is None else self.transform(x)), y


def collapse(err: BaseException) -> str:
    return " ".join(str(err).split())


def load_failure(name: str, where: Path, err: BaseException, downloading: bool) -> DataError:
    if downloading:
        return DataError(
            f"dataset {name!r} could not be downloaded into {where} ({collapse(err)}); "
            "check the network, or pass --data-root to point at a copy"
        )
    return DataError(
        f"dataset {name!r} under {where} could not be loaded ({collapse(err)}); "
        "pass --download to fetch it again"
    )


def small_image_transforms(resolution: int, native: int, pad: int, mean: Sequence[float],
                           std: Sequence[float]) -> tuple[Callable, Callable]:
    """Pad-and-crop + flip for small images; the padding scales with a resolution override."""
    r = resolution
    resize = [] if r == native else [T.Resize(r)]
    normalise = [T.ToTensor(), T.Normalize(mean, std)]
    crop = T.RandomCrop(r, padding=max(1, round(pad * r / native)))
    train = T.Compose(resize + [crop, T.RandomHorizontalFlip()] + normalise)
    return train, T.Compose(resize + normalise)


def profile_at(name: str, resolution: int | None, **overrides: int) -> InputProfile:
    """The registered input profile ``name`` at ``resolution`` (when given) and with other numbers overridden."""
    return get_profile(name, resolution=resolution, **overrides)
