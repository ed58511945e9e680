"""MACs and parameter counts of blocks and whole architectures.

Convention: MACs are multiply-accumulates (one multiply + one add = 1 MAC), which is what the ProxylessNAS,
FBNet and SPOS papers call "FLOPs". They are counted by `torch.utils.flop_counter.FlopCounterMode`
(which reports 2 FLOPs per MAC for convolutions and matrix products) on meta tensors, so counting even a
224x224 network allocates no memory. Like the papers, only convolutions and linear layers count; BN,
activations, pooling and residual adds are free. Parameters include BN's affine weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwnas.space.architecture import Architecture
from hwnas.space.block import BlockSpec
from hwnas.space.space import SearchSpace


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.params + other.params)


def count_module(module: nn.Module, example: torch.Tensor) -> Cost:
    """MACs of one forward of ``module`` on ``example`` and its parameter count."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(example)
    return Cost(counter.get_total_flops() // 2, sum(p.numel() for p in module.parameters()))


@lru_cache(maxsize=65536)
def block_cost(block: BlockSpec) -> Cost:
    """Cost of one block, counted once per distinct key."""
    with torch.device("meta"):
        module = block.op.build(block.cin, block.cout, block.stride).eval()
        example = torch.empty(block.input_shape)
    return count_module(module, example)


@lru_cache(maxsize=65536)
def conv_macs(block: BlockSpec) -> tuple[int, int]:
    """(dense, depthwise) MACs of one sample through a block: a convolution whose groups equal its input
    channels (more than one) is depthwise, every other convolution and every linear layer is dense. Their sum
    is `block_cost`'s MACs for blocks made of convolutions and linear layers."""
    dense = depthwise = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal dense, depthwise
        if isinstance(module, nn.Conv2d):
            macs = output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
            if module.groups > 1 and module.groups == module.in_channels:
                depthwise += macs
            else:
                dense += macs
        else:
            dense += output.numel() * module.in_features

    with torch.device("meta"):
        module = block.op.build(block.cin, block.cout, block.stride).eval()
        example = torch.empty(block.with_(batch=1).input_shape)
    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for hook in hooks:
            hook.remove()
    return dense, depthwise


def arch_costs(space: SearchSpace, arch: Architecture | str) -> list[tuple[str, BlockSpec, Cost]]:
    """Per-block (name, block, cost) rows of an architecture, stem and head included."""
    return [(name, block, block_cost(block.with_(batch=1))) for name, block in space.blocks(arch)]


def arch_cost(space: SearchSpace, arch: Architecture | str) -> Cost:
    total = Cost(0, 0)
    for _, _, cost in arch_costs(space, arch):
        total = total + cost
    return total
