"""`BlockSpec`: one concrete block, the lookup-table key."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from hwnas.errors import ConfigError
from hwnas.space.ops import OpSpec, init_weights

DTYPES = ("float32", "float16", "bfloat16", "int8")


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
