"""`hwnas.testing.datasets` over every registered dataset, on tiny files written for each (a dataset whose
files cannot be written here is checked on its default data root, and skipped when that holds none)."""

import dataclasses

import pytest

from hwnas.data import DATASETS, build_loaders
from hwnas.errors import DataError
from hwnas.testing.datasets import check_dataset, check_split


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_conforms(name, dataset_files):
    files = dataset_files(name)
    if files is None:
        try:
            build_loaders(name, batch_size=4)
        except DataError as error:
            pytest.skip(f"no tiny files of dataset {name!r} can be written here and it is not installed: {error}")
        files = None, {}
    root, options = files
    check_dataset(name, root, **options)


@pytest.mark.parametrize("like", ["imagenet", "fashion-mnist", "cifar100"])
def test_synthetic_data_conforms_in_every_shape(like):
    check_dataset("synthetic", synthetic_size=24, synthetic_like=like)


def test_overlapping_parts_are_caught():
    loaders = build_loaders("synthetic", batch_size=4, synthetic_size=20)
    broken = dataclasses.replace(loaders, val_indices=loaders.val_indices + loaders.train_indices[:1])
    with pytest.raises(AssertionError, match=r"must be disjoint, but share \[\d+\]"):
        check_split("synthetic", broken, 0.1)
