"""``cifar10`` and ``cifar100``: torchvision's CIFAR datasets, 32x32 colour images."""

from __future__ import annotations

from torchvision import datasets

from hwnas.data.base import DATASETS, HINT, DataRequest, OpenedData, default_data_root, load_failure, profile_at, \
    small_image_transforms
from hwnas.errors import DataError

#: published per-channel statistics of each training split
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _open_cifar(req: DataRequest, name: str, cls: type[datasets.CIFAR10]) -> OpenedData:
    root = req.root if req.root is not None else default_data_root()
    if not req.download and not (root / cls.base_folder).is_dir():
        raise DataError(f"dataset {name!r} not found under {root} (expected {cls.base_folder}/); {HINT}")
    try:
        train = cls(str(root), train=True, download=req.download)
        test = cls(str(root), train=False)
    except (RuntimeError, OSError) as err:
        raise load_failure(name, root / cls.base_folder, err, req.download) from err
    profile = profile_at(name, req.resolution)
    mean, std = STATS[name]
    return OpenedData(name, profile, train, test, *small_image_transforms(profile.resolution, 32, 4, mean, std), mean, std)


@DATASETS.register("cifar10")
def cifar10(req: DataRequest) -> OpenedData:
    return _open_cifar(req, "cifar10", datasets.CIFAR10)


@DATASETS.register("cifar100")
def cifar100(req: DataRequest) -> OpenedData:
    return _open_cifar(req, "cifar100", datasets.CIFAR100)
