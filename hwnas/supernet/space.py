"""Core types: `BlockSpec` (the lookup-table key), `Architecture` and `SearchSpace`."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from hwnas.errors import ArchitectureError, ConfigError
from hwnas.supernet.ops import OpSpec, init_weights
from hwnas.supernet.profiles import InputProfile

DTYPES = ("float32", "float16", "bfloat16", "int8")

#: op names accepted in architecture strings as another name of a canonical op
OP_ALIASES = {"zero": "skip"}


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded odd-kernel conv: ceil(size / stride)."""
    return -(-size // stride)


@dataclass(frozen=True)
class BlockSpec:
    """One concrete block: op + channels + stride + input size + batch + dtype.

    It is the lookup-table key: two spaces that contain the same block share its entry.
    """

    op: OpSpec
    cin: int
    cout: int
    stride: int
    height: int
    width: int
    batch: int = 1
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigError(f"batch size must be >= 1, but got batch={self.batch}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, but got {self.dtype!r}")

    @property
    def key(self) -> str:
        return (f"{self.op} {self.cin}>{self.cout} s{self.stride} {self.height}x{self.width} "
                f"b{self.batch} {self.dtype}")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.cin, self.height, self.width)

    @property
    def out_hw(self) -> tuple[int, int]:
        return conv_out(self.height, self.stride), conv_out(self.width, self.stride)

    def build(self) -> nn.Module:
        module = self.op.build(self.cin, self.cout, self.stride)
        init_weights(module)
        return module

    def with_(self, **changes: Any) -> "BlockSpec":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {"op": self.op.family, "params": dict(self.op.params), "cin": self.cin, "cout": self.cout,
                "stride": self.stride, "height": self.height, "width": self.width, "batch": self.batch,
                "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict) -> "BlockSpec":
        return cls(OpSpec.of(data["op"], **data["params"]), data["cin"], data["cout"], data["stride"],
                   data["height"], data["width"], data.get("batch", 1), data.get("dtype", "float32"))


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

    @property
    def op_names(self) -> list[str]:
        return [name for name, _ in self.choices]

    def block(self, op_name: str, batch: int = 1, dtype: str = "float32") -> BlockSpec:
        return BlockSpec(dict(self.choices)[op_name], self.cin, self.cout, self.stride, self.height, self.width,
                         batch, dtype)


@dataclass(frozen=True)
class Architecture:
    """One op choice per searchable layer. String form: op names joined by '-', e.g. ``k3_e6-skip-k5_e3``."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(OP_ALIASES.get(op, op) for op in self.ops))

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        text = text.strip()
        if not text or any(not part for part in text.split("-")):
            raise ArchitectureError(f"an architecture string is op names joined by '-', but got {text!r}")
        return cls(tuple(text.split("-")))

    def __str__(self) -> str:
        return "-".join(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def to_json(self, space: "SearchSpace | None" = None) -> str:
        data: dict[str, Any] = {"arch": str(self), "ops": list(self.ops)}
        if space is not None:
            data["space"] = space.describe()
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            data = json.loads(text)
            return cls(tuple(data["ops"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchitectureError(f"architecture JSON must hold an 'ops' list, but could not read it: {exc}") from None


@dataclass(frozen=True)
class SearchSpace:
    """Input profile, fixed stem, searchable layers and fixed head.

    Build one with `hwnas.supernet.get_space`; the numbers that built it are kept in ``config`` so a
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
                f"but got {len(arch)} ops in {str(arch)!r}")
        for layer, op in zip(self.layers, arch.ops):
            if op not in layer.op_names:
                raise ArchitectureError(
                    f"layer {layer.name} of space {self.name!r} allows ops {', '.join(layer.op_names)}, "
                    f"but got {op!r}")
        return arch

    def sample(self, rng: random.Random) -> Architecture:
        return Architecture(tuple(rng.choice(layer.op_names) for layer in self.layers))

    def indices(self, arch: Architecture) -> list[int]:
        arch = self.validate(arch)
        return [layer.op_names.index(op) for layer, op in zip(self.layers, arch.ops)]

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

    def build(self, arch: Architecture | str | Sequence[str]) -> nn.Sequential:
        """A freshly initialised standalone network for one architecture."""
        return nn.Sequential(*(block.build() for _, block in self.blocks(arch)))


def as_architecture(arch: Architecture | str | Sequence[str]) -> Architecture:
    if isinstance(arch, Architecture):
        return arch
    if isinstance(arch, str):
        return Architecture.parse(arch)
    return Architecture(tuple(arch))
