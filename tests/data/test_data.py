"""The loaders run torchvision's real dataset classes on tiny files written here.

Every image is one flat grey value that identifies it, so a sample can be traced through augmentation
(random crops with padding 4 never move the centre pixel off the image) back to the file it came from.
"""

import gzip
import re
import struct

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler
from torchvision import datasets

from hwnas.errors import ConfigError, DataError, UnknownNameError
from hwnas.data import build_loaders, fashion_mnist
from hwnas.data.cifar import STATS
from hwnas.space import PROFILES, InputProfile

CIFAR_TRAIN = 20
CIFAR_TEST = 5


@pytest.fixture(params=["cifar10", "cifar100"])
def cifar(request, tmp_path, write_cifar):
    """A tiny CIFAR tree: training images 0..19, test images 200..204 (each a flat grey level)."""
    write_cifar(tmp_path, request.param, train_size=CIFAR_TRAIN, test_ids=range(200, 200 + CIFAR_TEST))
    return request.param, tmp_path


def _ids(loader, spec):
    """The grey value of each sample's centre pixel, undoing the normalisation (``spec``: the `Loaders`)."""
    ids, labels = [], []
    for x, y in loader:
        c = x.shape[-1] // 2
        grey = x[:, 0, c, c] * spec.std[0] + spec.mean[0]
        ids += (grey * 255).round().long().tolist()
        labels += y.tolist()
    return ids, labels


def test_cifar_loaders_shapes_and_spec(cifar):
    name, root = cifar
    loaders = build_loaders(name, root, batch_size=4, val_fraction=0.2)
    assert loaders.profile == PROFILES.get(name) and (loaders.mean, loaders.std) == STATS[name]
    assert (len(loaders.train.dataset), len(loaders.val.dataset), len(loaders.test.dataset)) == (16, 4, 5)
    x, y = next(iter(loaders.train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,)


def test_cifar_eval_splits_are_normalised_exactly(cifar):
    name, root = cifar
    loaders = build_loaders(name, root, batch_size=8, val_fraction=0.2)
    spec = loaders
    for x, _ in loaders.test:
        for img in x:
            grey = round(float(img[0, 0, 0] * spec.std[0] + spec.mean[0]) * 255)
            expected = torch.tensor([(grey / 255 - m) / s for m, s in zip(spec.mean, spec.std)])
            torch.testing.assert_close(img, expected[:, None, None].expand_as(img), rtol=0, atol=1e-5)


def test_cifar_val_split_is_held_out_of_train_and_fixed_by_seed(cifar):
    name, root = cifar
    loaders = build_loaders(name, root, batch_size=5, val_fraction=0.25, seed=3)
    train_ids, train_labels = _ids(loaders.train, loaders)  # augmented: crops and flips
    val_ids, val_labels = _ids(loaders.val, loaders)
    assert sorted(train_ids + val_ids) == list(range(20))
    assert len(val_ids) == 5 and not set(train_ids) & set(val_ids)
    assert train_labels == [i % 10 for i in train_ids] and val_labels == [i % 10 for i in val_ids]
    assert _ids(loaders.test, loaders)[0] == [200 + i for i in range(CIFAR_TEST)]

    again = build_loaders(name, root, batch_size=5, val_fraction=0.25, seed=3)
    assert _ids(again.val, again)[0] == val_ids
    other_seeds = [build_loaders(name, root, batch_size=5, seed=s, val_fraction=0.25) for s in range(4)]
    assert len({tuple(_ids(other.val, other)[0]) for other in other_seeds}) > 1


def test_cifar_train_uses_augmentation_unless_disabled(cifar):
    name, root = cifar
    padded = build_loaders(name, root, batch_size=16, val_fraction=0.2, seed=0)
    torch.manual_seed(0)
    x, _ = next(iter(padded.train))
    zero = torch.tensor([-m / s for m, s in zip(padded.mean, padded.std)])
    padding = torch.isclose(x, zero[:, None, None]).all(dim=1).flatten(1)
    assert (padding.any(1) & ~padding.all(1)).any(), "random crops with padding show a border of zeros"
    plain = build_loaders(name, root, batch_size=16, val_fraction=0.2, augment=False)
    x, _ = next(iter(plain.train))
    assert (x == x[..., :1, :1]).all(), "without augmentation every image stays one flat grey"


def test_cifar_resolution_override_resizes(cifar):
    name, root = cifar
    loaders = build_loaders(name, root, batch_size=2, resolution=16, val_fraction=0.2)
    assert loaders.profile.resolution == 16
    assert next(iter(loaders.train))[0].shape == (2, 3, 16, 16)
    assert next(iter(loaders.test))[0].shape == (2, 3, 16, 16)


def test_missing_cifar_names_path_and_flags(tmp_path):
    with pytest.raises(DataError) as err:
        build_loaders("cifar10", tmp_path, batch_size=4)
    message = str(err.value)
    assert str(tmp_path) in message and "cifar-10-batches-py/" in message
    assert "--download" in message and "--data-root" in message and "\n" not in message


def test_corrupted_cifar_is_a_data_error(cifar):
    name, root = cifar
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    (root / cls.base_folder / cls.test_list[0][0]).write_bytes(b"truncated")
    with pytest.raises(DataError, match="could not be loaded.*--download"):
        build_loaders(name, root, batch_size=4)


def test_missing_cifar_defaults_to_the_data_root_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "cache"))):
        build_loaders("cifar100", batch_size=4)


# --- Fashion-MNIST -------------------------------------------------------------------------------------


def _write_idx_gz(path, array):
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_reads_the_debian_layout(debian_fashion):
    loaders = build_loaders("fashion-mnist", debian_fashion, batch_size=4, val_fraction=0.2)
    assert loaders.profile == PROFILES.get("fashion-mnist") and loaders.mean == fashion_mnist.MEAN
    assert (len(loaders.train.dataset), len(loaders.val.dataset), len(loaders.test.dataset)) == (24, 6, 10)
    x, _ = next(iter(loaders.train))
    assert x.shape == (4, 1, 28, 28)
    train_ids, train_labels = _ids(loaders.train, loaders)
    val_ids, _ = _ids(loaders.val, loaders)
    assert sorted(train_ids + val_ids) == list(range(30))
    assert train_labels == [i % 10 for i in train_ids]
    assert _ids(loaders.test, loaders)[0] == list(range(30, 40))
    x, _ = next(iter(loaders.test))
    torch.testing.assert_close(x[0], torch.full((1, 28, 28), (30 / 255 - 0.2860) / 0.3530))


def test_fashion_mnist_without_root_falls_back_to_the_debian_folder(debian_fashion, tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", debian_fashion)
    loaders = build_loaders("fashion-mnist", batch_size=4)
    assert len(loaders.test.dataset) == 10


def test_fashion_mnist_prefers_the_default_root_in_torchvision_layout(debian_fashion, tmp_path, monkeypatch,
                                                                     write_fashion_mnist):
    cache = tmp_path / "cache"
    write_fashion_mnist(cache / "FashionMNIST" / "raw", 20, 4, gzipped=False)
    monkeypatch.setenv("HWNAS_DATA", str(cache))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", debian_fashion)
    loaders = build_loaders("fashion-mnist", batch_size=4)
    assert len(loaders.test.dataset) == 4 and len(loaders.train.dataset) + len(loaders.val.dataset) == 20
    assert type(loaders.test.dataset.base) is datasets.FashionMNIST


def test_missing_fashion_mnist_falls_back_to_the_embedded_subset_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("HWNAS_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with caplog.at_level("INFO", logger="hwnas"):
        loaders = build_loaders("fashion-mnist", batch_size=4)
    [notice] = [r.getMessage() for r in caplog.records]
    assert str(tmp_path / "cache") in notice and str(tmp_path / "nowhere") in notice
    assert "using the embedded subset of 10 000 training and 2 000 test images" in notice and "--download" in notice
    assert loaders.dataset == "fashion-mnist-subset" and loaders.profile == PROFILES.get("fashion-mnist")
    subset = build_loaders("fashion-mnist-subset", batch_size=4)
    assert subset.val_indices == loaders.val_indices, "the same data, the same split"


def test_the_embedded_subset_is_balanced_real_fashion_mnist():
    import json

    loaders = build_loaders("fashion-mnist-subset", batch_size=500, val_fraction=0.1)
    train = loaders.train.dataset.base
    assert len(train) == 10000 and len(loaders.test.dataset) == 2000
    assert torch.bincount(train.targets, minlength=10).tolist() == [1000] * 10
    assert torch.bincount(loaders.test.dataset.base.targets, minlength=10).tolist() == [200] * 10
    record = json.loads((fashion_mnist.SUBSET / "subset.json").read_text())
    assert len(record["indices"]["train"]) == 10000 and len(record["indices"]["test"]) == 2000
    assert "Copyright © 2017 Zalando SE" in (fashion_mnist.SUBSET / "LICENSE").read_text()
    assert sum(p.stat().st_size for p in fashion_mnist.SUBSET.iterdir()) < 6e6
    x, _ = next(iter(loaders.test))
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2, "Fashion-MNIST's statistics normalise it"


@pytest.mark.skipif(not fashion_mnist.DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_the_embedded_subset_is_the_official_images_its_record_names():
    import json

    record = json.loads((fashion_mnist.SUBSET / "subset.json").read_text())
    full = build_loaders("fashion-mnist", fashion_mnist.DEBIAN_FASHION_MNIST, batch_size=4)
    subset = build_loaders("fashion-mnist-subset", batch_size=4)
    for split, mine, theirs in (("train", subset.train.dataset.base, full.train.dataset.base),
                                ("test", subset.test.dataset.base, full.test.dataset.base)):
        chosen = torch.tensor(record["indices"][split])
        assert torch.equal(mine.data, theirs.data[chosen]) and torch.equal(mine.targets, theirs.targets[chosen])


def test_an_explicit_data_root_that_lacks_fashion_mnist_is_an_error(tmp_path):
    with pytest.raises(DataError) as err:
        build_loaders("fashion-mnist", tmp_path / "nowhere", batch_size=4)
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message and "FashionMNIST/raw/" in message and "--download" in message


def test_malformed_idx_file_is_a_data_error(debian_fashion):
    _write_idx_gz(debian_fashion / "t10k-labels-idx1-ubyte.gz", np.zeros((3, 2)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is not an idx file of bytes with 1 dim"):
        build_loaders("fashion-mnist", debian_fashion, batch_size=4)


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist.DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_debian_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_DATA", str(tmp_path))
    loaders = build_loaders("fashion-mnist", batch_size=256)
    assert len(loaders.train.dataset) + len(loaders.val.dataset) == 60000
    assert len(loaders.val.dataset) == 6000 and len(loaders.test.dataset) == 10000
    x, y = next(iter(loaders.test))
    assert x.shape == (256, 1, 28, 28) and y.max() < 10
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2, "published statistics normalise it"


# --- ImageNet (ImageFolder) ----------------------------------------------------------------------------


@pytest.fixture
def image_tree(tmp_path, write_image_folder):
    return write_image_folder(tmp_path / "imagenet")


def test_image_folder_loaders(image_tree):
    loaders = build_loaders("imagenet", image_tree, batch_size=2, val_fraction=0.2)
    assert loaders.profile.num_classes == 2 and loaders.profile.resolution == 224
    assert (len(loaders.train.dataset), len(loaders.val.dataset), len(loaders.test.dataset)) == (8, 2, 4)
    assert next(iter(loaders.train))[0].shape == (2, 3, 224, 224)
    x, y = next(iter(loaders.test))
    assert x.shape == (2, 3, 224, 224) and y.tolist() == [0, 0]
    blue = (1 - 0.406) / 0.225
    torch.testing.assert_close(x[:, 2], torch.full((2, 224, 224), blue))


def test_image_folder_resolution_override(image_tree):
    loaders = build_loaders("imagenet", image_tree, batch_size=4, resolution=32)
    assert next(iter(loaders.val))[0].shape[1:] == (3, 32, 32)
    assert next(iter(loaders.train))[0].shape[1:] == (3, 32, 32)


def test_missing_image_folder_names_path(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"not found under {tmp_path} (expected train/ and val/")):
        build_loaders("imagenet", tmp_path, batch_size=4)


def test_image_folder_class_mismatch(image_tree):
    (image_tree / "val" / "dog").rename(image_tree / "val" / "wolf")
    with pytest.raises(DataError, match="same class folders"):
        build_loaders("imagenet", image_tree, batch_size=4)


# --- synthetic, arguments, profiles --------------------------------------------------------------------


def _batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_synthetic_is_deterministic_from_the_seed():
    def build(seed):
        return build_loaders(
            "synthetic", batch_size=8, synthetic_size=40, seed=seed, synthetic_like="fashion-mnist"
        )

    a, b, c = build(0), build(0), build(1)
    for part in ("train", "val", "test"):
        first, second = _batches(getattr(a, part)), _batches(getattr(b, part))
        assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(first, second))
    assert not torch.equal(next(iter(a.test))[0], next(iter(c.test))[0])
    assert a.profile == PROFILES.get("fashion-mnist") and (a.mean, a.std) == ((0.0,), (1.0,))
    assert next(iter(a.train))[0].shape == (8, 1, 28, 28)
    assert (len(a.train.dataset), len(a.val.dataset), len(a.test.dataset)) == (36, 4, 8)


def test_synthetic_classes_are_separable():
    loaders = build_loaders("synthetic", batch_size=64, synthetic_size=400, resolution=8)
    xs, ys = zip(*_batches(loaders.train))
    x, y = torch.cat(xs).flatten(1), torch.cat(ys)
    centroids = torch.stack([x[y == k].mean(0) for k in range(10)])
    tx, ty = next(iter(loaders.test))
    predicted = torch.cdist(tx.flatten(1), centroids).argmin(1)
    assert (predicted == ty).float().mean() > 0.8


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"batch_size": 4, "val_fraction": 0.0}, "val_fraction must lie strictly between 0 and 1, got 0.0"),
        ({"batch_size": 4, "val_fraction": 1}, "got 1"),
        ({"batch_size": 4, "workers": -1}, "workers"),
        ({"batch_size": 4, "synthetic_size": 1}, "synthetic_size"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build_loaders("synthetic", **kwargs)


def test_unknown_dataset_lists_known_ones():
    known = "known datasets: cifar10, cifar100, fashion-mnist, fashion-mnist-subset, imagenet, synthetic"
    with pytest.raises(UnknownNameError, match=known):
        build_loaders("mnist", batch_size=4)


def test_loaders_carry_the_input_profile_a_space_is_built_for():
    assert build_loaders("synthetic", batch_size=4, synthetic_size=20).profile == PROFILES.get("cifar10")
    imitated = build_loaders("synthetic", batch_size=4, synthetic_size=20, synthetic_like="imagenet", resolution=8)
    assert imitated.profile == InputProfile("imagenet", 3, 8, 1000, "imagenet")
    with pytest.raises(UnknownNameError, match="synthetic data profile"):
        build_loaders("synthetic", batch_size=4, synthetic_like="svhn")


def test_the_split_is_disjoint_complete_and_depends_on_the_split_seed_alone():
    a = build_loaders("synthetic", batch_size=4, synthetic_size=50, seed=1, split_seed=7)
    b = build_loaders("synthetic", batch_size=4, synthetic_size=50, seed=2, split_seed=7)
    assert not set(a.train_indices) & set(a.val_indices)
    assert sorted(a.train_indices + a.val_indices) == list(range(50))
    assert (a.train_indices, a.val_indices) == (b.train_indices, b.val_indices)
    assert build_loaders("synthetic", batch_size=4, synthetic_size=50, seed=7).val_indices == a.val_indices


def test_distributed_needs_a_process_group():
    with pytest.raises(ConfigError, match="torchrun"):
        build_loaders("synthetic", batch_size=4, distributed=True, synthetic_size=20)


def test_distributed_train_loader_shards_with_a_distributed_sampler():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        loaders = build_loaders("synthetic", batch_size=4, distributed=True, synthetic_size=20, seed=5)
    finally:
        dist.destroy_process_group()
    sampler = loaders.train.sampler
    assert isinstance(sampler, DistributedSampler) and sampler.seed == 5
    sampler.set_epoch(1)
    assert sorted(sampler) == list(range(18))
