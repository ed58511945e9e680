"""Single Path One-Shot (Guo et al., ECCV 2020): the ShuffleNetV2-based 20-layer block search space.

Ops are Megvii's: ShuffleNetV2 units with a 3x3, 5x5 or 7x7 depthwise conv, and the Xception-like unit
with three 3x3 depthwise convs. Stages of 4, 4, 8, 4 layers at 64, 160, 320, 640 channels; head 1024.
"""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile
from hwnas.space.space import SearchSpace
from hwnas.space.spaces.base import SPACES, Stage, build_stage_space

STAGE_LAYERS = (4, 4, 8, 4)

SPOS_OPS = (
    ("shuffle_k3", OpSpec.of("shuffle", k=3)), ("shuffle_k5", OpSpec.of("shuffle", k=5)),
    ("shuffle_k7", OpSpec.of("shuffle", k=7)), ("xception", OpSpec.of("xception")),
)


@SPACES.register("spos")
def spos(profile: InputProfile, *, width: float = 1.0, stem_channels: int = 16,
         stage_channels: Sequence[int] = (64, 160, 320, 640), head_channels: int = 1024) -> SearchSpace:
    stages = [Stage(n, c, 2) for n, c in zip(STAGE_LAYERS, stage_channels, strict=True)]
    return build_stage_space(
        "spos", profile, width=width,
        stem=[("stem", OpSpec.of("conv", k=3, act="relu"), stem_channels, 2)],
        stages=stages, choices=lambda cin, cout, stride: list(SPOS_OPS),
        head=OpSpec.of("head", feat=head_channels, act="relu", bias=False),
        config={"stem_channels": stem_channels, "stage_channels": list(stage_channels),
                "head_channels": head_channels})
