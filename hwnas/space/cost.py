"""MACs and parameter counts of blocks and whole architectures.

Convention: MACs are multiply-accumulates (one multiply + one add = 1 MAC), which is what the ProxylessNAS,
FBNet and SPOS papers call "FLOPs". They are counted by `torch.utils.flop_counter.FlopCounterMode`
(which reports 2 FLOPs per MAC for convolutions and matrix products) on meta tensors, so counting even a
224x224 network allocates no memory. Like the papers, only convolutions and linear layers count; BN,
activations, pooling and residual adds are free. Parameters include BN's affine weights.
"""

from __future__ import annotations

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


def arch_costs(space: SearchSpace, arch: Architecture | str) -> list[tuple[str, BlockSpec, Cost]]:
    """Per-block (name, block, cost) rows of an architecture, stem and head included."""
    return [(name, block, block_cost(block.with_(batch=1))) for name, block in space.blocks(arch)]


def arch_cost(space: SearchSpace, arch: Architecture | str) -> Cost:
    total = Cost(0, 0)
    for _, _, cost in arch_costs(space, arch):
        total = total + cost
    return total
