"""Tiny files in the format of each built-in dataset, so that the dataset suite opens them offline."""

import pytest
from PIL import Image


def _image_folder(root):
    """``train/`` and ``val/`` with two classes of small flat-coloured images."""
    for split, count in (("train", 6), ("val", 2)):
        for label, cls in enumerate(("cat", "dog")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 36), (20 * i + label, 0, 255)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def dataset_files(tmp_path, write_cifar, write_fashion_mnist):
    """``dataset_files(name)``: (root, options) that open dataset ``name`` offline, or None when no tiny files
    of its format can be written here."""

    def make(name):
        root = tmp_path / name
        if name == "synthetic":
            return None, {"synthetic_size": 24}
        if name == "fashion-mnist-subset":  # ships with hwnas
            return None, {}
        if name in ("cifar10", "cifar100"):
            return write_cifar(root, name, train_size=25), {}
        if name == "fashion-mnist":
            return write_fashion_mnist(root, 20, 8), {}
        if name == "imagenet":
            return _image_folder(root), {}
        return None

    return make
