"""Tiny files in the format of each built-in dataset, so that the dataset suite opens them offline."""

import pytest


@pytest.fixture
def dataset_files(tmp_path, write_cifar, write_fashion_mnist, write_image_folder):
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
            return write_image_folder(root, train=6, size=(40, 36)), {}
        return None

    return make
