"""Accuracy of architectures that inherit a trained supernet's weights.

A supernet's BatchNorm statistics are averages over every path it trained, which fit no single path:
an inherited subnet is only judged fairly after its statistics are recalibrated on a few training
batches (SPOS). Evaluation always copies the path out of the supernet (`SuperNet.subnet`), so the
supernet itself is never modified and can serve any number of evaluations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from hwnas.errors import require
from hwnas.space import Architecture
from hwnas.supernet.supernet import SuperNet


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


def accuracy(model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy of ``model`` in eval mode over ``loader`` (a DataLoader, or a list of (images, labels)
    batches), in percent."""
    model.eval()
    device = _device_of(model)
    correct = seen = 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.to(device))
            correct += (logits.argmax(1).cpu() == labels).sum().item()
            seen += len(labels)
    require(seen > 0, "accuracy needs at least one sample, but the loader yielded none")
    return 100.0 * correct / seen


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


def subnet_accuracy(supernet: SuperNet, arch: Architecture | str | Sequence[str],
                    loader: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
                    calibration: Sequence[torch.Tensor] | None = None) -> float:
    """Accuracy (%) of ``arch`` with the supernet's weights; its BN statistics are recalibrated on
    ``calibration`` batches when given, else inherited as they are."""
    subnet = supernet.subnet(arch)
    if calibration is not None:
        recalibrate_bn(subnet, calibration)
    return accuracy(subnet, loader)
