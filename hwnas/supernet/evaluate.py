"""Accuracy of architectures that inherit a trained supernet's weights.

A supernet's BatchNorm statistics are averages over every path it trained, which fit no single path:
an inherited subnet is only judged fairly after its statistics are recalibrated on a few training
batches (SPOS). Evaluation always copies the path out of the supernet (`SuperNet.subnet`), so the
supernet itself is never modified and can serve any number of evaluations.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import DataLoader

from hwnas.errors import CheckpointError, require
from hwnas.supernet.space import Architecture, SearchSpace, as_architecture
from hwnas.supernet.spaces import space_from_description
from hwnas.supernet.supernet import SuperNet

if TYPE_CHECKING:
    from hwnas.supernet.train import RunConfig


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Reset every BatchNorm's running statistics and re-estimate them from ``batches`` (images only).

    The statistics become the plain average over all batches (momentum None), not an exponential one
    dominated by the last batches. Only BatchNorm runs in training mode, so dropout stays off.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    device = _device_of(model)
    with torch.no_grad():
        for images in batches:
            model(images.to(device))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    return model.eval()


def accuracy(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy of ``model`` in eval mode over ``loader``."""
    model.eval()
    device = _device_of(model)
    correct = seen = 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.to(device))
            correct += (logits.argmax(1).cpu() == labels).sum().item()
            seen += len(labels)
    require(seen > 0, "accuracy needs at least one sample, but the loader yielded none")
    return correct / seen


def calibration_batches(loader: DataLoader, count: int) -> list[torch.Tensor]:
    """The images of the first ``count`` batches of ``loader`` (fewer if it has fewer), kept in memory so
    that every architecture is recalibrated on the same images."""
    require(count >= 1, f"BN recalibration needs >= 1 batch, but got count={count}")
    batches = []
    for images, _ in loader:
        batches.append(images)
        if len(batches) == count:
            break
    return batches


def subnet_accuracy(supernet: SuperNet, arch: Architecture | str | Sequence[str], loader: DataLoader, *,
                    calibration: Sequence[torch.Tensor] | None = None) -> float:
    """Accuracy of ``arch`` with the supernet's weights; its BN statistics are recalibrated on
    ``calibration`` batches when given, else inherited as they are."""
    subnet = supernet.subnet(arch)
    if calibration is not None:
        recalibrate_bn(subnet, calibration)
    return accuracy(subnet, loader)


def load_supernet(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SuperNet, RunConfig]:
    """The trained SuperNet of a run directory (in eval mode, on ``device``) and its RunConfig.

    Only weights are loaded; the space is rebuilt from ``config.json``'s description, so the result does
    not depend on the current defaults of the space's builder.
    """
    from hwnas.supernet.train import read_run

    stored = read_run(run_dir)
    require(stored is not None, f"{run_dir} holds no hwnas run (no config.json)", CheckpointError)
    require(stored.config.arch is None, f"{run_dir} holds a retrained architecture ({stored.config.arch}), "
            "not a supernet", CheckpointError)
    require(stored.checkpoint is not None, f"{run_dir} holds no checkpoint yet; train at least one epoch",
            CheckpointError)
    supernet = SuperNet(space_from_description(stored.space), stored.config.weight_sharing)
    try:
        supernet.load_state_dict(stored.checkpoint["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit its space "
                              f"({' '.join(str(exc).split())[:200]})") from None
    return supernet.to(device, memory_format=torch.channels_last).eval(), stored.config


class SubnetEvaluator:
    """Validation accuracy of many architectures of one trained supernet.

    The calibration batches are fetched once, and results are memoised per (architecture,
    recalibrated), so a search may ask for the same candidate again at no cost.
    """

    def __init__(self, supernet: SuperNet, val_loader: DataLoader, calibration: Sequence[torch.Tensor]):
        self.supernet, self.val_loader, self.calibration = supernet, val_loader, list(calibration)
        self._cache: dict[tuple[Architecture, bool], float] = {}

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, *, bn_batches: int | None = None, device: str = "cpu",
                 data_root: str | None = None, download: bool = False, workers: int = 0) -> "SubnetEvaluator":
        """Evaluate on the run's own validation split (the part of the training split it never trained
        on), recalibrating on ``bn_batches`` (default: the run's) un-augmented training batches."""
        from hwnas.supernet.data import build_loaders

        supernet, config = load_supernet(run_dir, device)
        options = config.loader_options()
        options.update(root=data_root if data_root is not None else config.data_root, download=download,
                       workers=workers)
        loaders = build_loaders(config.dataset, augment=False, **options)
        return cls(supernet, loaders.val, calibration_batches(loaders.train, bn_batches or config.bn_batches))

    @property
    def space(self) -> SearchSpace:
        return self.supernet.space

    def accuracy(self, arch: Architecture | str | Sequence[str], *, recalibrate: bool = True) -> float:
        arch = self.space.validate(as_architecture(arch))
        key = (arch, recalibrate)
        if key not in self._cache:
            self._cache[key] = subnet_accuracy(self.supernet, arch, self.val_loader,
                                               calibration=self.calibration if recalibrate else None)
        return self._cache[key]
