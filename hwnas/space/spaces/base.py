"""Shared machinery of the search spaces: the space registry and a stage-based space builder."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hwnas.errors import ConfigError
from hwnas.registry import Registry
from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile, get_profile
from hwnas.space.block import BlockSpec, conv_out
from hwnas.space.space import FixedBlock, Layer, SearchSpace

SpaceBuilder = Callable[..., SearchSpace]
SPACES: Registry[SpaceBuilder] = Registry("search space")

#: (cin, cout, stride) -> the candidate ops of a layer, by name, in order
ChoiceFn = Callable[[int, int, int], list[tuple[str, OpSpec]]]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10 % (MobileNet convention)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Stage:
    """``n`` searchable layers producing ``cout`` channels; the first of them has stride ``stride``."""

    n: int
    cout: int
    stride: int


def get_space(name: str, input: str | InputProfile = "imagenet", *, width: float = 1.0,
              channels: int | None = None, resolution: int | None = None, num_classes: int | None = None,
              **overrides) -> SearchSpace:
    """Build a registered search space for an input profile.

    ``width`` multiplies every channel count (stem, layers, head), rounded to multiples of 8, for small
    fast supernets. ``channels`` / ``resolution`` / ``num_classes`` override the profile's numbers;
    ``overrides`` go to the space builder (e.g. ``stage_channels`` for reference networks whose widths
    differ from the space's defaults).
    """
    if not (width > 0 and math.isfinite(width)):
        raise ConfigError(f"width multiplier must be finite and > 0, but got width={width}")
    if isinstance(input, dict):  # a profile as written by SearchSpace.describe()
        input = InputProfile.from_dict(input)
    profile = get_profile(input, channels=channels, resolution=resolution, num_classes=num_classes)
    builder = SPACES.get(name)
    known = [p for p in inspect.signature(builder).parameters if p not in ("profile", "width")]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(f"space {name!r} takes settings {', '.join(known)}, but got {', '.join(unknown)}")
    return builder(profile, width=width, **overrides)


def space_from_description(description: dict) -> SearchSpace:
    """Rebuild a space from `SearchSpace.describe()` (as stored in tables and checkpoints)."""
    data = dict(description)
    return get_space(data.pop("space"), data.pop("input"), **data)


def build_stage_space(
    name: str,
    profile: InputProfile,
    *,
    width: float,
    stem: Sequence[tuple[str, OpSpec, int, int]],
    stages: Sequence[Stage],
    choices: ChoiceFn,
    head: OpSpec,
    config: dict,
    tail: Sequence[tuple[str, OpSpec, int]] = (),
) -> SearchSpace:
    """Lay out a space from its stem blocks ``(name, op, cout, imagenet stride)``, stages, fixed stride-1
    ``tail`` blocks ``(name, op, cout)`` after the searchable layers, and head.

    cifar-style profiles run the stem and the first stride-2 stage at stride 1, as the seed
    implementations do for 32x32 inputs; everything else is identical to the imagenet layout.
    """
    cifar = profile.style == "cifar"
    scale = (lambda c: make_divisible(c * width)) if width != 1.0 else (lambda c: c)
    cin, size = profile.channels, profile.resolution
    stem_blocks = []
    for block_name, op, cout, stride in stem:
        if cifar and stride > 1:
            stride = 1
        block = BlockSpec(op, cin, scale(cout), stride, size, size)
        stem_blocks.append(FixedBlock(block_name, block))
        cin, size = block.cout, conv_out(size, stride)
    first_downsampling = next((i for i, s in enumerate(stages) if s.stride > 1), None)
    layers = []
    for stage_index, stage in enumerate(stages):
        cout = scale(stage.cout)
        for i in range(stage.n):
            stride = stage.stride if i == 0 else 1
            if cifar and stage_index == first_downsampling:
                stride = 1
            layer_name = f"{len(layers) + 1}"
            layers.append(Layer(layer_name, cin, cout, stride, size, size, tuple(choices(cin, cout, stride))))
            cin, size = cout, conv_out(size, stride)
    head_blocks = []
    for block_name, op, cout in tail:
        head_blocks.append(FixedBlock(block_name, BlockSpec(op, cin, scale(cout), 1, size, size)))
        cin = scale(cout)
    head_op = OpSpec.of(head.family, **{**head.kwargs, "feat": scale(head.kwargs["feat"])})
    head_blocks.append(FixedBlock("head", BlockSpec(head_op, cin, profile.num_classes, 1, size, size)))
    return SearchSpace(name, profile, tuple(stem_blocks), tuple(layers), tuple(head_blocks),
                       config={"width": width, **config})
