"""`SearchSpace`: input profile, fixed stem, searchable layers (`Layer`) and fixed head (`FixedBlock`)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from torch import nn

from hwnas.errors import ArchitectureError, ConfigError, quoted
from hwnas.space.architecture import Architecture, as_architecture
from hwnas.space.block import BlockSpec
from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile


@dataclass(frozen=True)
class FixedBlock:
    """A block every architecture of a space contains (stem, head)."""

    name: str
    block: BlockSpec


@dataclass(frozen=True)
class Layer:
    """A searchable layer: its geometry and its candidate ops by name, in a fixed order."""

    name: str
    cin: int
    cout: int
    stride: int
    height: int
    width: int
    choices: tuple[tuple[str, OpSpec], ...]

    @cached_property
    def op_names(self) -> list[str]:
        return [name for name, _ in self.choices]

    @cached_property
    def op_index(self) -> dict[str, int]:
        """Each op's position in `op_names`."""
        return {name: i for i, (name, _) in enumerate(self.choices)}

    def block(self, op_name: str, batch: int = 1, dtype: str = "float32") -> BlockSpec:
        return BlockSpec(dict(self.choices)[op_name], self.cin, self.cout, self.stride, self.height, self.width,
                         batch, dtype)


@dataclass(frozen=True)
class SearchSpace:
    """Input profile, fixed stem, searchable layers and fixed head.

    Build one with `hwnas.space.get_space`; the numbers that built it are kept in ``config`` so a
    space can be described in a table header or checkpoint and rebuilt from that description.
    """

    name: str
    profile: InputProfile
    stem: tuple[FixedBlock, ...]
    layers: tuple[Layer, ...]
    head: tuple[FixedBlock, ...]
    config: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def size(self) -> int:
        """Number of distinct architectures."""
        return math.prod(len(layer.choices) for layer in self.layers)

    @property
    def num_ops(self) -> list[int]:
        return [len(layer.choices) for layer in self.layers]

    def describe(self) -> dict:
        """What identifies this space: enough to rebuild it with `get_space(**describe())`."""
        return {"space": self.name, "input": self.profile.to_dict(), **self.config}

    def validate(self, arch: Architecture | str | Sequence[str]) -> Architecture:
        arch = as_architecture(arch)
        if len(arch) != len(self.layers):
            raise ArchitectureError(
                f"an architecture of space {self.name!r} has one op per layer ({len(self.layers)} layers), "
                f"but got {len(arch)} ops in {quoted(str(arch))}")
        for layer, op in zip(self.layers, arch.ops):
            if op not in layer.op_index:
                raise ArchitectureError(
                    f"layer {layer.name} of space {self.name!r} allows ops {', '.join(layer.op_names)}, "
                    f"but got {quoted(op)}")
        return arch

    def sample(self, rng: random.Random) -> Architecture:
        return Architecture(tuple(rng.choice(layer.op_names) for layer in self.layers))

    def indices(self, arch: Architecture) -> list[int]:
        arch = self.validate(arch)
        return [layer.op_index[op] for layer, op in zip(self.layers, arch.ops)]

    def from_indices(self, indices: Iterable[int]) -> Architecture:
        return Architecture(tuple(layer.op_names[i] for layer, i in zip(self.layers, indices, strict=True)))

    def blocks(self, arch: Architecture | str | Sequence[str], batch: int = 1,
               dtype: str = "float32") -> list[tuple[str, BlockSpec]]:
        """(name, block) for every block an architecture runs, stem and head included, in order."""
        arch = self.validate(arch)
        out = [(f.name, f.block.with_(batch=batch, dtype=dtype)) for f in self.stem]
        out += [(layer.name, layer.block(op, batch, dtype)) for layer, op in zip(self.layers, arch.ops)]
        out += [(f.name, f.block.with_(batch=batch, dtype=dtype)) for f in self.head]
        return out

    def all_blocks(self, batch: int = 1, dtype: str = "float32") -> list[BlockSpec]:
        """Every distinct block of the space (what a lookup table must hold), deduplicated by key."""
        seen: dict[str, BlockSpec] = {}
        for f in self.stem + self.head:
            seen.setdefault(f.block.with_(batch=batch, dtype=dtype).key, f.block.with_(batch=batch, dtype=dtype))
        for layer in self.layers:
            for op in layer.op_names:
                block = layer.block(op, batch, dtype)
                seen.setdefault(block.key, block)
        return list(seen.values())

    def check_buildable(self) -> "SearchSpace":
        """This space, when every distinct block can be built (on torch's meta device: no weights are made); a block
        its channel counts do not allow (a width multiplier too small for an op) is one ConfigError naming the
        width and the block, raised before a command writes anything."""
        import torch

        with torch.device("meta"):
            for block in self.all_blocks():
                try:
                    block.op.build(block.cin, block.cout, block.stride)
                except ConfigError as exc:
                    raise ConfigError(f"--width {self.config.get('width', 1.0):g} is too small for space "
                                      f"{self.name!r} (block {block.key}: {exc})") from None
        return self

    def build(self, arch: Architecture | str | Sequence[str]) -> nn.Sequential:
        """A freshly initialised standalone network for one architecture."""
        return nn.Sequential(*(block.build() for _, block in self.blocks(arch)))
