"""Datasets for supernet training and search, one module each, registered by name in `DATASETS`.

``build_loaders(name, root, batch_size=...)`` opens one and returns its `Loaders`: a training part, a
validation part held out of the training split (what search looks at) and the official test split.
"""

from hwnas.data import cifar, fashion_mnist, imagenet, synthetic  # noqa: F401  (registration)
from hwnas.data.base import DATASETS, DataRequest, Loaders, OpenedData, build_loaders, default_data_root, split_indices

__all__ = ["DATASETS", "DataRequest", "Loaders", "OpenedData", "build_loaders", "default_data_root", "split_indices"]
