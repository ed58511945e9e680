"""``fashion-mnist``: 28x28 grey images of 10 kinds of clothing (Zalando Research, MIT licence), and
``fashion-mnist-subset``, a balanced subset of it that ships inside hwnas.

``fashion-mnist`` is the full data set (60 000 training and 10 000 test images), found in ``--data-root``,
else in the default data root and then in Debian's package folder; each may hold torchvision's
``FashionMNIST/raw/`` layout or the gzipped idx files themselves (Debian's layout). Where none of them holds
it and ``--download`` was not asked for, it is the embedded subset instead (and a notice says so): 1000
training and 200 test images of every class, chosen as ``tools/make_fashion_mnist_subset.py`` records, so
that a machine with no network and no data still runs everything. The data a run trained on is recorded
as the dataset it came from, so a run on the subset is evaluated on the subset everywhere.
"""

from __future__ import annotations

import gzip
import logging
import math
from importlib import resources
from pathlib import Path

import torch
from torchvision import datasets

from hwnas.data.base import DATASETS, HINT, DataRequest, OpenedData, collapse, default_data_root, load_failure, \
    profile_at, small_image_transforms
from hwnas.errors import DataError, require

log = logging.getLogger(__name__)

#: Where Debian's ``dataset-fashion-mnist`` package installs the gzipped idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The embedded subset: the four gzipped idx files, its licence and how it was made, as package data.
SUBSET = Path(str(resources.files("hwnas.data") / "fashion_mnist_subset"))
#: the training split's statistics
MEAN, STD = (0.2860,), (0.3530,)

_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _read_idx_gz(path: Path, ndim: int) -> torch.Tensor:
    """A gzipped idx file of unsigned bytes (the MNIST format) as a uint8 tensor."""
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable gzip file ({collapse(err)})") from err
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
def fashion_mnist(req: DataRequest) -> OpenedData:
    """The full data set where it is found (or downloaded, with ``download``); else the embedded subset."""
    folders = [req.root] if req.root is not None else [default_data_root(), DEBIAN_FASHION_MNIST]
    found = next((f for f in folders if _has_torchvision_fashion(f) or _has_gzip_fashion(f)), None)
    if found is None and not req.download:
        if req.root is not None:
            raise DataError(f"dataset 'fashion-mnist' not found under {req.root} (expected FashionMNIST/raw/ or the "
                            f"files {_FASHION_FILES[0]}.gz etc.); {HINT}")
        log.info("Fashion-MNIST was found neither under %s nor in %s (Debian package dataset-fashion-mnist): using "
                 "the embedded subset of 10 000 training and 2 000 test images (--download fetches the full set)",
                 folders[0], DEBIAN_FASHION_MNIST)
        return fashion_mnist_subset(req)
    folder = found if found is not None else folders[0]
    cls = datasets.FashionMNIST if found is None or _has_torchvision_fashion(folder) else _GzipFashionMNIST
    try:
        train = cls(str(folder), train=True, download=found is None)
        test = cls(str(folder), train=False)
    except (RuntimeError, OSError) as err:
        raise load_failure("fashion-mnist", folder, err, downloading=found is None) from err
    return _opened("fashion-mnist", req, train, test)


@DATASETS.register("fashion-mnist-subset")
def fashion_mnist_subset(req: DataRequest) -> OpenedData:
    """The balanced subset that ships with hwnas (see the module docstring); never downloaded."""
    require(_has_gzip_fashion(SUBSET), f"the embedded Fashion-MNIST subset must be installed with hwnas, but "
            f"{SUBSET} lacks its files; reinstall hwnas", DataError)
    return _opened("fashion-mnist-subset", req, _GzipFashionMNIST(str(SUBSET), train=True),
                   _GzipFashionMNIST(str(SUBSET), train=False))


def _opened(name: str, req: DataRequest, train, test) -> OpenedData:
    profile = profile_at("fashion-mnist", req.resolution)
    return OpenedData(name, profile, train, test, *small_image_transforms(profile.resolution, 28, 2, MEAN, STD),
                      MEAN, STD)
