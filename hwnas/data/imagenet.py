"""``imagenet``: an ImageFolder root with ``train/`` and ``val/`` (any number of classes)."""

from __future__ import annotations

from pathlib import Path

from torchvision import datasets
from torchvision import transforms as T

from hwnas.data.base import DATASETS, DataRequest, OpenedData, collapse, default_data_root, profile_at
from hwnas.errors import DataError, require

#: the ImageNet training split's per-channel statistics
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _image_folder(folder: Path) -> datasets.ImageFolder:
    try:
        return datasets.ImageFolder(str(folder))
    except FileNotFoundError as err:
        raise DataError(f"dataset 'imagenet' under {folder} is unusable: {collapse(err)}") from err


@DATASETS.register("imagenet")
def imagenet(req: DataRequest) -> OpenedData:
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
    profile = profile_at("imagenet", req.resolution, num_classes=len(train.classes))
    r = profile.resolution
    normalise = [T.ToTensor(), T.Normalize(MEAN, STD)]
    train_tf = T.Compose([T.RandomResizedCrop(r), T.RandomHorizontalFlip()] + normalise)
    eval_tf = T.Compose([T.Resize(round(r * 256 / 224)), T.CenterCrop(r)] + normalise)
    return OpenedData("imagenet", profile, train, test, train_tf, eval_tf, MEAN, STD)
