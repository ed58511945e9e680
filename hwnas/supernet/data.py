"""Datasets for supernet training and search.

Every dataset yields three loaders: ``train`` and ``val`` are disjoint parts of the official training
split (``val`` is what search and α-updates look at), ``test`` is the official test split and is meant
for final reports only, so that no search decision is ever tuned on it.

Data is fetched from the internet only when ``download=True``; otherwise missing data is a one-line
``DataError`` naming the path that was searched and the CLI flags that fix it.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchvision import datasets
from torchvision import transforms as T

from hwnas.errors import DataError, UnknownNameError, require
from hwnas.registry import Registry

#: Where Debian's ``dataset-fashion-mnist`` package installs the gzipped idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_HINT = "pass --download to fetch it, or --data-root to point at it"


@dataclass(frozen=True)
class DataSpec:
    """The input a dataset feeds a network: what a supernet's stem and head must be built for."""

    name: str
    channels: int
    resolution: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


#: Published per-channel statistics of each training split; ``synthetic`` imitates one of these shapes.
SPECS: dict[str, DataSpec] = {
    "cifar10": DataSpec("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DataSpec("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion-mnist": DataSpec("fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,)),
    "imagenet": DataSpec("imagenet", 3, 224, 1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# Input profiles belong to the search spaces; the names happen to match the datasets they describe.
_INPUT_PROFILES = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "fashion-mnist": "fashion-mnist",
    "imagenet": "imagenet",
}


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
    """A dataset entry's answer: untransformed splits plus the transforms that suit them.

    The splits are left untransformed so that one loaded copy of the training files can serve both
    the augmented train part and the eval-transformed validation part.
    """

    spec: DataSpec
    train: Dataset
    test: Dataset
    train_transform: Callable | None
    eval_transform: Callable | None


DATASETS: Registry[Callable[[DataRequest], OpenedData]] = Registry("dataset")


@dataclass(frozen=True)
class Loaders:
    """``train`` (shuffled, augmented; with ``distributed=True`` its sampler is a DistributedSampler whose
    ``set_epoch`` the training loop calls), ``val`` (held out of the training split), ``test`` (official)."""

    train: DataLoader
    val: DataLoader
    test: DataLoader
    spec: DataSpec


def default_data_root() -> Path:
    """``$HWNAS_DATA``, else ``$XDG_CACHE_HOME/hwnas/data``, else ``~/.cache/hwnas/data``."""
    if os.environ.get("HWNAS_DATA"):
        return Path(os.environ["HWNAS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "hwnas" / "data"


def input_profile_for(dataset_name: str, synthetic_like: str = "cifar10") -> str:
    """The search-space input profile whose stem, resolution and classes fit this dataset."""
    DATASETS.get(dataset_name)
    name = _imitated(synthetic_like).name if dataset_name == "synthetic" else dataset_name
    require(name in _INPUT_PROFILES, f"dataset {dataset_name!r} has no search-space input profile")
    return _INPUT_PROFILES[name]


def build_loaders(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    batch_size: int,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    workers: int = 0,
    augment: bool = True,
    distributed: bool = False,
    synthetic_size: int = 1024,
    synthetic_like: str = "cifar10",
    resolution: int | None = None,
) -> Loaders:
    """Open dataset ``name`` and wrap it in train / val / test loaders.

    ``batch_size`` is per process. ``seed`` fixes the validation split and the shuffling order (random
    augmentation draws on torch's RNG, which the training code seeds). ``augment=False`` gives the train
    part the eval transform. ``resolution`` overrides the dataset's native input size (images are
    resized; synthetic tensors are generated at it). ``synthetic_size`` and ``synthetic_like`` (whose
    channels, resolution and classes to imitate) only matter for ``synthetic``. With ``distributed``
    every rank trains on its own shard of the train part; val and test stay whole on every rank.
    """
    require(batch_size >= 1, f"batch_size must be at least 1, got {batch_size}")
    require(0 < val_fraction < 1, f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    require(seed >= 0, f"seed must be non-negative, got {seed}")
    require(workers >= 0, f"workers must be non-negative, got {workers}")
    require(resolution is None or resolution >= 1, f"resolution must be at least 1, got {resolution}")
    require(synthetic_size >= 2, f"synthetic_size must be at least 2 (train and val), got {synthetic_size}")
    opened = DATASETS.get(name)(
        DataRequest(
            root=None if root is None else Path(root).expanduser(),
            download=download,
            resolution=resolution,
            seed=seed,
            synthetic_size=synthetic_size,
            synthetic_like=synthetic_like,
        )
    )
    train_idx, val_idx = _split(len(opened.train), val_fraction, seed, name)
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
        train=train,
        val=DataLoader(val_set, shuffle=False, **common),
        test=DataLoader(test_set, shuffle=False, **common),
        spec=opened.spec,
    )


def _split(n: int, val_fraction: float, seed: int, name: str) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)``; it depends on nothing but (n, val_fraction, seed), so every rank and
    every later search run holds out exactly the same samples."""
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


def _at_resolution(spec: DataSpec, resolution: int | None) -> DataSpec:
    return spec if resolution is None else replace(spec, resolution=resolution)


def _collapse(err: BaseException) -> str:
    return " ".join(str(err).split())


def _load_failure(name: str, where: Path, err: BaseException, downloading: bool) -> DataError:
    if downloading:
        return DataError(
            f"dataset {name!r} could not be downloaded into {where} ({_collapse(err)}); "
            "check the network, or pass --data-root to point at a copy"
        )
    return DataError(
        f"dataset {name!r} under {where} could not be loaded ({_collapse(err)}); "
        "pass --download to fetch it again"
    )


def _small_image_transforms(spec: DataSpec, native: int, pad: int) -> tuple[Callable, Callable]:
    """Pad-and-crop + flip for small images; the padding scales with a resolution override."""
    r = spec.resolution
    resize = [] if r == native else [T.Resize(r)]
    normalise = [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    crop = T.RandomCrop(r, padding=max(1, round(pad * r / native)))
    train = T.Compose(resize + [crop, T.RandomHorizontalFlip()] + normalise)
    return train, T.Compose(resize + normalise)


def _open_cifar(req: DataRequest, name: str, cls: type[datasets.CIFAR10]) -> OpenedData:
    root = req.root if req.root is not None else default_data_root()
    if not req.download and not (root / cls.base_folder).is_dir():
        raise DataError(f"dataset {name!r} not found under {root} (expected {cls.base_folder}/); {_HINT}")
    try:
        train = cls(str(root), train=True, download=req.download)
        test = cls(str(root), train=False)
    except (RuntimeError, OSError) as err:
        raise _load_failure(name, root / cls.base_folder, err, req.download) from err
    spec = _at_resolution(SPECS[name], req.resolution)
    return OpenedData(spec, train, test, *_small_image_transforms(spec, native=32, pad=4))


@DATASETS.register("cifar10")
def _cifar10(req: DataRequest) -> OpenedData:
    return _open_cifar(req, "cifar10", datasets.CIFAR10)


@DATASETS.register("cifar100")
def _cifar100(req: DataRequest) -> OpenedData:
    return _open_cifar(req, "cifar100", datasets.CIFAR100)


def _read_idx_gz(path: Path, ndim: int) -> torch.Tensor:
    """A gzipped idx file of unsigned bytes (the MNIST format) as a uint8 tensor."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable gzip file ({_collapse(err)})") from err
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    require(
        magic == 0x0800 + ndim and len(data) == header + math.prod(dims),
        f"{path} is not an idx file of bytes with {ndim} dimensions (magic {magic:#x}, shape {dims}, "
        f"{len(data)} bytes)",
        DataError,
    )
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(*dims)


class _GzipFashionMNIST(datasets.FashionMNIST):
    """torchvision's FashionMNIST over a folder that holds the gzipped idx files themselves.

    That is the layout Debian installs. torchvision only reads decompressed files under
    ``ROOT/FashionMNIST/raw/``; decompressing in memory instead (about 0.5 s) needs no writable copy of a
    system folder and no cache to keep in step with it, while item access, class names and the PIL
    conversion stay torchvision's.
    """

    @property
    def raw_folder(self) -> str:
        return str(self.root)

    def _check_exists(self) -> bool:
        return _has_gzip_fashion(Path(self.root))

    def _load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "train" if self.train else "t10k"
        images = _read_idx_gz(Path(self.root, f"{prefix}-images-idx3-ubyte.gz"), ndim=3)
        labels = _read_idx_gz(Path(self.root, f"{prefix}-labels-idx1-ubyte.gz"), ndim=1)
        require(
            len(images) == len(labels),
            f"{self.root} holds {len(images)} {prefix} images but {len(labels)} labels",
            DataError,
        )
        return images, labels.long()


def _has_torchvision_fashion(folder: Path) -> bool:
    return all((folder / "FashionMNIST" / "raw" / f).is_file() for f in _FASHION_FILES)


def _has_gzip_fashion(folder: Path) -> bool:
    return all((folder / f"{f}.gz").is_file() for f in _FASHION_FILES)


@DATASETS.register("fashion-mnist")
def _fashion_mnist(req: DataRequest) -> OpenedData:
    """Looks in ``root`` or, without one, in the default root and then the Debian folder; each folder may
    hold torchvision's ``FashionMNIST/raw/`` layout or the gzipped idx files directly."""
    folders = [req.root] if req.root is not None else [default_data_root(), DEBIAN_FASHION_MNIST]
    found = next((f for f in folders if _has_torchvision_fashion(f) or _has_gzip_fashion(f)), None)
    if found is None and not req.download:
        if req.root is None:
            where = (
                f"under {folders[0]} (expected FashionMNIST/raw/) nor in {DEBIAN_FASHION_MNIST} "
                "(Debian package dataset-fashion-mnist)"
            )
        else:
            where = f"under {req.root} (expected FashionMNIST/raw/ or the files {_FASHION_FILES[0]}.gz etc.)"
        raise DataError(f"dataset 'fashion-mnist' not found {where}; {_HINT}")
    folder = found if found is not None else folders[0]
    cls = datasets.FashionMNIST if found is None or _has_torchvision_fashion(folder) else _GzipFashionMNIST
    try:
        train = cls(str(folder), train=True, download=found is None)
        test = cls(str(folder), train=False)
    except (RuntimeError, OSError) as err:
        raise _load_failure("fashion-mnist", folder, err, downloading=found is None) from err
    spec = _at_resolution(SPECS["fashion-mnist"], req.resolution)
    return OpenedData(spec, train, test, *_small_image_transforms(spec, native=28, pad=2))


def _image_folder(folder: Path) -> datasets.ImageFolder:
    try:
        return datasets.ImageFolder(str(folder))
    except FileNotFoundError as err:
        raise DataError(f"dataset 'imagenet' under {folder} is unusable: {_collapse(err)}") from err


@DATASETS.register("imagenet")
def _imagenet(req: DataRequest) -> OpenedData:
    """``ROOT/train`` and ``ROOT/val`` class folders; the labelled ``val`` split serves as the test split,
    as is usual since ImageNet's own test labels are not public. Subsets (fewer classes) work too."""
    root = req.root if req.root is not None else default_data_root() / "imagenet"
    if not ((root / "train").is_dir() and (root / "val").is_dir()):
        raise DataError(
            f"dataset 'imagenet' not found under {root} "
            "(expected train/ and val/ with one folder per class); it cannot be downloaded automatically, pass --data-root to point at it"
        )
    train, test = _image_folder(root / "train"), _image_folder(root / "val")
    require(
        train.classes == test.classes,
        f"dataset 'imagenet' under {root}: train/ has {len(train.classes)} classes and val/ "
        f"{len(test.classes)}, or they are named differently; both need the same class folders",
        DataError,
    )
    spec = replace(_at_resolution(SPECS["imagenet"], req.resolution), num_classes=len(train.classes))
    r = spec.resolution
    normalise = [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    train_tf = T.Compose([T.RandomResizedCrop(r), T.RandomHorizontalFlip()] + normalise)
    eval_tf = T.Compose([T.Resize(round(r * 256 / 224)), T.CenterCrop(r)] + normalise)
    return OpenedData(spec, train, test, train_tf, eval_tf)


def _imitated(synthetic_like: str) -> DataSpec:
    if synthetic_like not in SPECS:
        raise UnknownNameError("synthetic data profile", synthetic_like, SPECS)
    return SPECS[synthetic_like]


class _SyntheticImages(Dataset):
    """Gaussian noise around one coarse random pattern per class, already standardised.

    The class patterns make the data learnable, so a few training steps measurably lower the loss;
    each item is generated from (seed, split, index) alone, so any worker count or order gives the
    same tensors, and nothing of image size is held in memory.
    """

    def __init__(self, spec: DataSpec, size: int, seed: int, split: int):
        self.resolution, self.seed, self.split = spec.resolution, seed, split
        shape = (spec.num_classes, spec.channels, 4, 4)
        patterns = np.random.default_rng([seed]).standard_normal(shape, dtype=np.float32)
        self.patterns = torch.from_numpy(patterns)
        self.labels = np.random.default_rng([seed, split]).integers(spec.num_classes, size=size).tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.labels[index]
        pattern = F.interpolate(self.patterns[label][None], size=(self.resolution,) * 2, mode="nearest")[0]
        noise = np.random.default_rng([self.seed, self.split, int(index)]).standard_normal(
            pattern.shape, dtype=np.float32
        )
        return pattern + torch.from_numpy(noise), label


@DATASETS.register("synthetic")
def _synthetic(req: DataRequest) -> OpenedData:
    """Shaped like ``req.synthetic_like``; the test split is a fifth of the train size."""
    like = _at_resolution(_imitated(req.synthetic_like), req.resolution)
    spec = replace(like, name="synthetic", mean=(0.0,) * like.channels, std=(1.0,) * like.channels)
    train = _SyntheticImages(spec, req.synthetic_size, req.seed, split=0)
    test = _SyntheticImages(spec, max(1, req.synthetic_size // 5), req.seed, split=1)
    return OpenedData(spec, train, test, None, None)
