"""``synthetic``: learnable random images shaped like another dataset's (for tests and speed only)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hwnas.data.base import DATASETS, DataRequest, OpenedData, profile_at
from hwnas.errors import UnknownNameError
from hwnas.space.profiles import InputProfile

#: the datasets whose shape synthetic data can imitate (their input profiles)
IMITABLE = ("cifar10", "cifar100", "fashion-mnist", "imagenet")


class _SyntheticImages(Dataset):
    """Gaussian noise around one coarse random pattern per class, already standardised.

    The class patterns make the data learnable, so a few training steps measurably lower the loss;
    each item is generated from (seed, split, index) alone, so any worker count or order gives the
    same tensors, and nothing of image size is held in memory.
    """

    def __init__(self, spec: InputProfile, size: int, seed: int, split: int):
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
def synthetic(req: DataRequest) -> OpenedData:
    """Shaped like ``req.synthetic_like`` (whose input profile it takes); the test split is a fifth of the
    train size. The images are already standardised: mean 0, std 1."""
    if req.synthetic_like not in IMITABLE:
        raise UnknownNameError("synthetic data profile", req.synthetic_like, IMITABLE)
    profile = profile_at(req.synthetic_like, req.resolution)
    train = _SyntheticImages(profile, req.synthetic_size, req.seed, split=0)
    test = _SyntheticImages(profile, max(1, req.synthetic_size // 5), req.seed, split=1)
    return OpenedData("synthetic", profile, train, test, None, None, (0.0,) * profile.channels, (1.0,) * profile.channels)
