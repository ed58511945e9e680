"""The ``sandwich`` training strategy: the sandwich rule with in-place distillation (BigNAS, Yu et al. 2020;
Once-for-All, Cai et al. 2020), for a supernet of discrete op choices.

Every step trains the largest path (each layer's op of most MACs) on the labels, then the smallest path
(each layer's op of fewest MACs) and ``random_paths`` uniformly sampled paths on the largest path's soft
predictions (in-place distillation: the teacher is the supernet itself, in the same step), gradients
accumulated over the paths, one optimizer update. The smallest and largest paths bound the space, so every
step trains both ends of what a search will compare; the soft targets carry what the largest path learned
to the paths that share its weights, which is what makes the ranking of subnets more faithful than training
each sampled path on the labels alone.

As in strict fairness (`hwnas.training.strategies.mean_over_users`), each parameter's gradient is the mean
over the paths that used it, not their sum: with entangled weights (one layer's ops share their kernels,
`hwnas.supernet.supernet.LayerChoice`) a sum would give the shared kernels up to ``2 + random_paths`` times
the step of a single path.

A step costs ``2 + random_paths`` forward and backward passes, the largest of them the most expensive path
of the space: compare it with uniform sampling at equal compute (`path_macs` gives each path's MACs).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from hwnas.errors import ConfigError
from hwnas.space import SearchSpace
from hwnas.space.cost import block_cost
from hwnas.training.sampling import uniform_path
from hwnas.training.strategies import StepResult, Strategy, mean_over_users, register

if TYPE_CHECKING:
    from hwnas.data import Loaders
    from hwnas.training.config import RunConfig


@dataclass(frozen=True, kw_only=True)
class SandwichSettings:
    """Settings of the sandwich rule.

    Attributes:
        random_paths: uniformly sampled paths per step besides the largest and the smallest (BigNAS: 2).
        distill: train the smallest and the random paths on the largest path's soft predictions (in-place
            distillation); without it every path trains on the labels.
    """

    random_paths: int = 2
    distill: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.random_paths, int) or isinstance(self.random_paths, bool) or self.random_paths < 0:
            raise ConfigError(f"random_paths must be an integer >= 0, but got random_paths={self.random_paths!r}")
        if not isinstance(self.distill, bool):
            raise ConfigError(f"distill must be true or false, but got distill={self.distill!r}")


def op_costs(space: SearchSpace) -> list[list[tuple[int, int]]]:
    """(MACs, params) of every op of every searchable layer, in the layers' op order."""
    return [[(block_cost(layer.block(op)).macs, block_cost(layer.block(op)).params) for op in layer.op_names]
            for layer in space.layers]


def extreme_paths(space: SearchSpace) -> tuple[list[int], list[int]]:
    """The largest path (each layer's op of most MACs, then most params, then the first such) and the smallest
    (fewest MACs, then fewest params, then the first)."""
    costs = op_costs(space)
    largest = [max(range(len(c)), key=lambda i, c=c: (c[i][0], c[i][1], -i)) for c in costs]
    smallest = [min(range(len(c)), key=lambda i, c=c: (c[i][0], c[i][1], i)) for c in costs]
    return largest, smallest


def path_macs(space: SearchSpace, path: list[int]) -> int:
    """MACs of the searchable layers of ``path`` (op indices), stem and head excluded."""
    return sum(c[i][0] for c, i in zip(op_costs(space), path))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy of ``logits`` against the probabilities ``targets`` (mean over the batch)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@register("sandwich")
class Sandwich(Strategy):
    """The sandwich rule with in-place distillation (see the module docstring)."""

    Settings = SandwichSettings

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        super().__init__(space, config, loaders)
        self.largest, self.smallest = extreme_paths(space)

    def paths(self, step: int) -> list[list[int]]:
        """The paths of ``step``: largest, smallest, then the random ones (drawn from `path_rng`)."""
        rng = self.path_rng(step)
        return [self.largest, self.smallest,
                *(uniform_path(self.space.num_ops, rng) for _ in range(self.settings.random_paths))]

    def step(self, model, images, labels, *, criterion, optimizer, step):
        paths = self.paths(step)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=images.device)
        correct = torch.zeros((), dtype=torch.long, device=images.device)
        teacher = None
        with mean_over_users(model.parameters()):
            for i, path in enumerate(paths):
                last = i == len(paths) - 1
                sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not last else nullcontext()
                with sync:
                    logits = model(images, self.space.from_indices(path))
                    if i == 0 or not self.settings.distill:
                        loss = criterion(logits, labels)
                    else:
                        loss = soft_cross_entropy(logits, teacher)
                    loss.backward()
                if i == 0:
                    teacher = F.softmax(logits.detach(), dim=1)
                loss_sum = loss_sum + loss.detach() * len(labels)
                correct = correct + (logits.detach().argmax(1) == labels).sum()
        optimizer.step()
        return StepResult(loss_sum, correct, len(labels) * len(paths))

