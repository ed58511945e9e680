import gzip
import hashlib
import pickle
import random
import struct

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:  # the marker, not a parameter id that reads "cuda"
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op thread: two on a shared 2-core machine can make a tiny training step or forward many
    times slower. Modules with small supernets use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _restore_rng_state_and_threads():
    """Tests may seed freely and commands choose their threads; both are restored afterwards."""
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    threads = torch.get_num_threads()
    yield
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)
    torch.set_num_threads(threads)


def _randomize_bn(net: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net


@pytest.fixture
def randomize_bn():
    """Gives every BN a random scale and shift: zero-initialised residual blocks would otherwise make
    every op of a residual layer compute the identity and hide differences between them."""
    return _randomize_bn


def _idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: magic 0x0800 + ndim (unsigned bytes), big-endian dimensions, then the data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion_mnist(folder, n_train: int, n_test: int, *, gzipped: bool = True):
    """Fashion-MNIST-format idx files in ``folder``: gzipped as Debian installs them, or plain as torchvision's
    ``FashionMNIST/raw/`` holds them. Image i is a flat grey level i (mod 256) of class i % 10, so tests can
    tell which images a loader returned."""
    grey = np.arange(n_train + n_test) % 256
    images = np.repeat(grey[:, None, None], 28, axis=1).repeat(28, axis=2)
    labels = np.arange(n_train + n_test) % 10
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": images[:n_train], "train-labels-idx1-ubyte": labels[:n_train],
              "t10k-images-idx3-ubyte": images[n_train:], "t10k-labels-idx1-ubyte": labels[n_train:]}
    for name, array in arrays.items():
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
        else:
            (folder / name).write_bytes(_idx_bytes(array))
    return folder


@pytest.fixture
def write_fashion_mnist():
    """``write_fashion_mnist(folder, n_train, n_test, gzipped=True)`` writes tiny Fashion-MNIST files."""
    return _write_fashion_mnist


@pytest.fixture
def debian_fashion(tmp_path):
    """The Debian package's layout: the four gzipped idx files directly in one folder."""
    return _write_fashion_mnist(tmp_path / "debian", 30, 10)


def _write_cifar(root, name: str, monkeypatch, *, train_size: int = 20, test_ids=range(200, 205)):
    """A tiny torchvision CIFAR tree under ``root``: ``train_size`` training images spread evenly over the
    training files (image i is a flat grey level i of class i % 10) and ``test_ids`` in the test file.
    The class's md5 table is pointed at these files, so torchvision's own integrity check and pickle
    loading run unchanged."""
    from torchvision import datasets

    from hwnas.space import PROFILES

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    label_key, meta_key = ("labels", "label_names") if name == "cifar10" else ("fine_labels", "fine_label_names")
    folder = root / cls.base_folder
    folder.mkdir(parents=True)

    def write(path, ids):
        rows = np.repeat(np.asarray(ids, dtype=np.uint8)[:, None], 3 * 32 * 32, axis=1)  # N x (C*H*W) bytes
        path.write_bytes(pickle.dumps({"data": rows, label_key: [i % 10 for i in ids]}))

    train_files = [f for f, _ in cls.train_list]
    per_file = train_size // len(train_files)
    for n, f in enumerate(train_files):
        write(folder / f, list(range(n * per_file, (n + 1) * per_file)))
    write(folder / cls.test_list[0][0], list(test_ids))
    classes = [f"class{i}" for i in range(PROFILES.get(name).num_classes)]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({meta_key: classes}))

    def md5(path):
        return hashlib.md5(path.read_bytes()).hexdigest()

    monkeypatch.setattr(cls, "train_list", [[f, md5(folder / f)] for f in train_files])
    monkeypatch.setattr(cls, "test_list", [[f, md5(folder / f)] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    return root


@pytest.fixture
def write_cifar(monkeypatch):
    """``write_cifar(root, name, train_size=20, test_ids=range(200, 205))`` writes a tiny CIFAR-10/100 tree."""
    return lambda root, name, **options: _write_cifar(root, name, monkeypatch, **options)


def _write_image_folder(root, *, train: int = 5, val: int = 2, size=(48, 40)):
    """An ImageFolder tree under ``root``: ``train/`` and ``val/`` with classes ``cat`` and ``dog`` of small
    flat-coloured images (``train`` and ``val`` images of each class)."""
    from PIL import Image

    for split, count in (("train", train), ("val", val)):
        for label, cls in enumerate(("cat", "dog")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", size, (10 * i + label, 0, 255)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def write_image_folder():
    """``write_image_folder(root, train=5, val=2, size=(48, 40))`` writes a tiny ImageNet-style tree."""
    return _write_image_folder
