"""The ``anchored`` training strategy: uniform single-path sampling whose layers without a residual keep one
feature space.

Why: in a layer that changes stride or width there is no residual, so the layer's output is all the next layer
sees. Its candidate ops compute unrelated features unless they share their weights, and fbnet's do not all
share them (expansion-1 ops have no expansion conv, grouped ops and ``skip`` hold weights of their own). With
uniform sampling every later layer then sees a different input at every step: `bench/supernet_start.py`
measured an fbnet supernet (width 0.25, Fashion-MNIST, 700 steps) at 30.8 % training accuracy, against 85.9 %
when only the residual layers drew random ops.

What it does, in each layer without a residual (stride > 1 or other output channels than input channels):

- the layer's *anchors* are its largest group of ops that share their conv weights and have the same convs
  (`hwnas.supernet.supernet.LayerChoice.weight_groups`; fbnet: the four ungrouped MBConv ops of expansion 3
  and 6);
- for the first ``anchor_epochs`` epochs the path draws its op there among the anchors only (every other
  layer draws among all its ops), so the network learns one feature space first;
- every step, each of the layer's other ops is also trained to reproduce an anchor's output on the layer's
  input (the path's op when it is an anchor, else a random anchor): a mean squared error on the detached
  input and the detached anchor output, summed over those ops and layers, times ``align_weight``, added to the
  path's cross-entropy. It trains only those ops' own weights and BN (blockwise distillation as in DNA, Li et
  al., CVPR 2020, with the supernet's own anchor ops as the teacher); the labels still train the path.

The cost: a step runs, besides its path, every non-anchor op of the shape-changing layers once (fbnet: 5
layers of 9 ops), about 1.3-1.5x a uniform step. Compare at equal compute with fewer steps per epoch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from hwnas.errors import ConfigError
from hwnas.space import SearchSpace
from hwnas.supernet.supernet import LayerChoice
from hwnas.training.strategies import StepResult, Strategy, register

if TYPE_CHECKING:
    from hwnas.data import Loaders
    from hwnas.training.config import RunConfig


@dataclass(frozen=True, kw_only=True)
class AnchoredSettings:
    """Settings of anchored sampling.

    Attributes:
        anchor_epochs: first epochs in which the layers without a residual draw only their anchor ops.
        align_weight: weight of the alignment loss beside the cross-entropy (0: no alignment).
    """

    anchor_epochs: int = 0
    align_weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.anchor_epochs, int) or isinstance(self.anchor_epochs, bool) or self.anchor_epochs < 0:
            raise ConfigError(f"anchor_epochs must be an integer >= 0, but got anchor_epochs={self.anchor_epochs!r}")
        if (not isinstance(self.align_weight, (int, float)) or isinstance(self.align_weight, bool)
                or not self.align_weight >= 0 or self.align_weight == float("inf")):
            raise ConfigError(f"align_weight must be a finite number >= 0, but got align_weight={self.align_weight!r}")


def anchor_groups(space: SearchSpace, weight_sharing: str) -> dict[int, list[str]]:
    """Layer index -> its anchor ops, for every layer without a residual that has ops outside its anchors.
    (The layers it builds to find the groups draw their initial weights inside a forked RNG: torch's global
    RNG is left as it was, so a run's initialisation and data order do not depend on this.)"""
    anchors = {}
    with torch.random.fork_rng(devices=[]):
        for i, layer in enumerate(space.layers):
            if layer.stride == 1 and layer.cin == layer.cout:
                continue
            groups = LayerChoice(layer, weight_sharing).weight_groups()
            if len(groups) > 1:
                anchors[i] = groups[0]
    return anchors


@register("anchored")
class AnchoredSampling(Strategy):
    """Uniform single-path sampling with anchored layers without a residual (see the module docstring)."""

    Settings = AnchoredSettings

    def __init__(self, space: SearchSpace, config: RunConfig, loaders: Loaders):
        super().__init__(space, config, loaders)
        if config.weight_sharing != "entangled":
            raise ConfigError(f"anchored sampling takes its anchors from the ops that share weights, so it needs "
                              f"weight_sharing='entangled', but got {config.weight_sharing!r}")
        self.anchors = anchor_groups(space, config.weight_sharing)
        if not self.anchors:
            raise ConfigError(f"anchored sampling found no layer without a residual whose ops hold weights of "
                              f"different kinds in space {space.name!r}: use --strategy uniform")
        #: per anchored layer, the ops its alignment trains (the same every step)
        self.others = {i: [op for op in space.layers[i].op_names if op not in anchors]
                       for i, anchors in self.anchors.items()}
        self.epoch = 0

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def path(self, rng: random.Random) -> list[str]:
        """One path: uniform ops, the anchored layers' among their anchors during the first ``anchor_epochs``."""
        early = self.epoch < self.settings.anchor_epochs
        return [rng.choice(self.anchors[i] if early and i in self.anchors else layer.op_names)
                for i, layer in enumerate(self.space.layers)]

    def step(self, model, images, labels, *, criterion, optimizer, step):
        rng = self.path_rng(step)
        ops = self.path(rng)
        align = []
        if self.settings.align_weight > 0:
            for i, anchors in self.anchors.items():
                anchor = ops[i] if ops[i] in anchors else rng.choice(anchors)
                align.append((i, anchor, self.others[i]))
        optimizer.zero_grad(set_to_none=True)
        if align:
            logits, aux = model(images, ops, align=align)
        else:
            logits, aux = model(images, ops), None
        loss = criterion(logits, labels)
        total = loss if aux is None else loss + self.settings.align_weight * aux
        total.backward()
        optimizer.step()
        n = len(labels)
        return StepResult(loss.detach() * n, (logits.detach().argmax(1) == labels).sum(), n)
