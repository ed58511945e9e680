"""Optimizers and learning-rate schedules of a training run, by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

from hwnas.registry import Registry

if TYPE_CHECKING:
    from hwnas.training.config import RunConfig

OptimizerBuilder = Callable[[Iterable[nn.Parameter], "RunConfig"], Optimizer]
SchedulerBuilder = Callable[[Optimizer, "RunConfig", int], LRScheduler]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
SCHEDULERS: Registry[SchedulerBuilder] = Registry("scheduler")


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    # decay 0.9 and eps 1e-3: the TensorFlow recipe MnasNet and FBNet trained with
    return torch.optim.RMSprop(params, lr=config.lr, alpha=0.9, eps=1e-3, momentum=config.momentum,
                               weight_decay=config.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params: Iterable[nn.Parameter], config: RunConfig) -> Optimizer:
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


# Schedulers step once per training step, so short runs still get a smooth schedule.
@SCHEDULERS.register("cosine")
def cosine(optimizer: Optimizer, config: RunConfig, steps_per_epoch: int) -> LRScheduler:
    return CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)


@SCHEDULERS.register("step")
def step(optimizer: Optimizer, config: RunConfig, steps_per_epoch: int) -> LRScheduler:
    epochs = config.step_size or max(1, config.epochs // 3)
    return StepLR(optimizer, step_size=epochs * steps_per_epoch, gamma=config.gamma)
