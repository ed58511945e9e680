"""Training strategies: how one step picks what it trains (`UniformSampling`, `StrictFairness`,
`StandaloneTraining`; `hwnas.training.differentiable` adds architecture parameters), registered by name.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from hwnas.errors import CheckpointError, require
from hwnas.registry import Registry, typed
from hwnas.space import Architecture, SearchSpace
from hwnas.supernet.evaluate import accuracy, subnet_accuracy
from hwnas.training.sampling import fair_paths, uniform_path

if TYPE_CHECKING:
    from hwnas.data import Loaders
    from hwnas.training.config import RunConfig


class StepResult(NamedTuple):
    """One training step: summed loss and correct predictions over ``seen`` (sample, path) pairs."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int


@dataclass(frozen=True)
class NoSettings:
    """The settings of a strategy that takes none."""


class Strategy(ABC):
    """How one training step picks what it trains, and how a finished epoch is validated.

    A strategy's own settings are the fields of its ``Settings`` dataclass: `RunConfig.strategy_settings`
    holds them by name (as config.json stores them), and the strategy gets them typed as ``self.settings``
    (`hwnas.registry.typed`: an unknown name or a value of the wrong type is refused in one line).

    A step must draw its randomness only from `path_rng(step)`: every rank then trains the same paths
    without communicating, and a resumed run repeats the paths of the run it continues. Strategies get
    the run's loaders so that one that learns architecture parameters can draw its own batches from
    the validation split; whatever state such a strategy keeps goes through `state_dict`, which the
    checkpoint stores (tensors and plain values only).
    """

    name: ClassVar[str]
    #: the strategy's own settings (a dataclass; `NoSettings` for none)
    Settings: ClassVar[type] = NoSettings
    #: names of the figures `metrics` reports after each epoch (extra columns of log.csv)
    metric_names: tuple[str, ...] = ()

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        self.space, self.seed = space, config.seed
        self.settings = self.settings_of(config.strategy_settings)
        rng = random.Random(f"validation:{config.seed}")
        self.validation_archs = [space.sample(rng) for _ in range(config.eval_paths)]

    @classmethod
    def settings_of(cls, settings: dict[str, Any]) -> Any:
        """``RunConfig.strategy_settings`` as this strategy's typed `Settings`; unknown names and values of the
        wrong type are refused in one line."""
        return typed(cls.Settings, settings, f"training strategy {cls.name!r}")

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """Refuse ``RunConfig.strategy_settings`` this strategy does not take."""
        cls.settings_of(settings)

    @property
    def needs_calibration(self) -> bool:
        """Whether `validate` recalibrates BN (the loop then keeps training batches for it)."""
        return bool(self.validation_archs)

    def path_rng(self, step: int) -> random.Random:
        return random.Random(f"path:{self.seed}:{step}")

    def begin_epoch(self, epoch: int) -> None:
        """Called before the first step of every epoch (0-based), resumed runs included."""

    def metrics(self) -> dict[str, float]:
        """Figures of the strategy's own state after an epoch, by `metric_names` (logged with the epoch)."""
        return {}

    @abstractmethod
    def step(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, criterion: nn.Module,
             optimizer: Optimizer, step: int) -> StepResult:
        """One optimizer update on one batch. ``model`` may be wrapped in DistributedDataParallel."""

    def validate(self, model: nn.Module, val_loader: DataLoader, calibration: Sequence[torch.Tensor]) -> float | None:
        """Mean validation accuracy (%) of the fixed validation paths, each with recalibrated BN statistics."""
        if not self.validation_archs:
            return None
        accs = [subnet_accuracy(model, arch, val_loader, calibration=calibration) for arch in self.validation_archs]
        return sum(accs) / len(accs)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        require(not state, f"strategy {type(self).__name__} keeps no state, but the checkpoint holds "
                f"{', '.join(state)}", CheckpointError)


STRATEGIES: Registry[type[Strategy]] = Registry("training strategy", "training strategies")


def register(name: str):
    """Class decorator: ``@register("uniform")`` registers the strategy and sets its ``name``."""

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES.add(name, cls)
        return cls

    return decorator


def train_path(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, criterion: nn.Module,
                arch: Architecture | None, synchronise: bool) -> StepResult:
    """Forward and backward of one path; gradients accumulate. Under DistributedDataParallel only the
    last backward of a step synchronises, so accumulating several paths costs one all-reduce."""
    local = model.no_sync() if isinstance(model, DistributedDataParallel) and not synchronise else nullcontext()
    with local:
        logits = model(images) if arch is None else model(images, arch)
        loss = criterion(logits, labels)
        loss.backward()
    n = len(labels)
    return StepResult(loss.detach() * n, (logits.detach().argmax(1) == labels).sum(), n)


@register("uniform")
class UniformSampling(Strategy):
    """One path per step, each layer's op drawn uniformly (SPOS)."""

    def step(self, model, images, labels, *, criterion, optimizer, step):
        arch = self.space.from_indices(uniform_path(self.space.num_ops, self.path_rng(step)))
        optimizer.zero_grad(set_to_none=True)
        result = train_path(model, images, labels, criterion, arch, synchronise=True)
        optimizer.step()
        return result


@contextmanager
def mean_over_users(parameters: Iterable[nn.Parameter]) -> Iterator[dict[nn.Parameter, int]]:
    """Inside the block, count the backward passes that accumulate a gradient into each parameter; on
    leaving it, divide each gradient by its count, so that a parameter's gradient is the mean over the
    passes that used it rather than their sum. Yields the counts (filled as the passes run).

    Under DistributedDataParallel the division happens after the all-reduce of the last pass; every rank
    trains the same paths, so every rank divides by the same counts.
    """
    counts: dict[nn.Parameter, int] = {}

    def count(parameter: nn.Parameter) -> None:
        counts[parameter] = counts.get(parameter, 0) + 1

    handles = [p.register_post_accumulate_grad_hook(count) for p in parameters if p.requires_grad]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for parameter, n in counts.items():
            if n > 1 and parameter.grad is not None:
                parameter.grad.div_(n)


@register("fairness")
class StrictFairness(Strategy):
    """FairNAS strict fairness: m paths per step (m = ops per layer) that use every op of every layer
    exactly once, gradients accumulated, one optimizer update.

    Each parameter's gradient is the mean over the paths that used it (`mean_over_users`). With
    independent weights per op this is what FairNAS's summed gradients give every candidate op (the
    gradient of exactly one path, as large as a single-path step gives it), while the stem and head, which
    all m paths use, get the mean of their m gradients instead of FairNAS's sum. With entangled weights
    (the default), where one layer's ops share their convolution kernels, a sum would give those kernels
    up to m times a single-path step: on Fashion-MNIST (fbnet, width 0.25, 16 px, lr 0.1, 150 steps,
    `bench/fairness_gradients.py`) the median random subnet reached 18 % summed, 33 % with the mean.
    Spaces whose layers offer fewer ops than others are balanced as `hwnas.training.sampling.fair_paths`
    documents.
    """

    def step(self, model, images, labels, *, criterion, optimizer, step):
        paths = fair_paths(self.space.num_ops, self.path_rng(step))
        optimizer.zero_grad(set_to_none=True)
        with mean_over_users(model.parameters()):
            results = [train_path(model, images, labels, criterion, self.space.from_indices(path),
                                   synchronise=i == len(paths) - 1) for i, path in enumerate(paths)]
        optimizer.step()
        return StepResult(sum(r.loss_sum for r in results), sum(r.correct for r in results),
                          sum(r.seen for r in results))


class StandaloneTraining(Strategy):
    """Trains one fixed architecture built as a standalone network (``hwnas retrain``)."""

    name = "standalone"

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        super().__init__(space, config, loaders)
        self.validation_archs = []  # the network itself is validated

    def step(self, model, images, labels, *, criterion, optimizer, step):
        optimizer.zero_grad(set_to_none=True)
        result = train_path(model, images, labels, criterion, None, synchronise=True)
        optimizer.step()
        return result

    def validate(self, model, val_loader, calibration):
        return accuracy(model, val_loader)
