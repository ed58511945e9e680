"""ProxylessNAS (Cai et al., ICLR 2019): MobileNetV2 backbone, 21 searchable MBConv layers.

Ops: MBConv {k3,k5,k7} x {e3,e6} with ReLU6, plus ``skip`` (ProxylessNAS's ``zero`` op: the layer is
skipped) wherever stride is 1 and input and output channels match.
"""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile
from hwnas.space.space import SearchSpace
from hwnas.space.spaces.base import SPACES, Stage, build_stage_space

STAGE_LAYERS = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
MBCONV_OPS = tuple((f"k{k}_e{e}", OpSpec.of("mbconv", k=k, e=e, act="relu6")) for k in (3, 5, 7) for e in (3, 6))


def mbconv_choices(ops: Sequence[tuple[str, OpSpec]]):
    def choices(cin: int, cout: int, stride: int) -> list[tuple[str, OpSpec]]:
        return list(ops) + ([("skip", OpSpec.of("skip"))] if stride == 1 and cin == cout else [])

    return choices


@SPACES.register("proxylessnas")
def proxylessnas(profile: InputProfile, *, width: float = 1.0, stem_channels: int = 32, first_channels: int = 16,
                 stage_channels: Sequence[int] = (24, 40, 80, 96, 192, 320),
                 head_channels: int = 1280) -> SearchSpace:
    stages = [Stage(n, c, s) for n, c, s in zip(STAGE_LAYERS, stage_channels, STAGE_STRIDES, strict=True)]
    return build_stage_space(
        "proxylessnas", profile, width=width,
        stem=[("stem", OpSpec.of("conv", k=3, act="relu6"), stem_channels, 2),
              ("first", OpSpec.of("mbconv", k=3, e=1, act="relu6"), first_channels, 1)],
        stages=stages, choices=mbconv_choices(MBCONV_OPS),
        head=OpSpec.of("head", feat=head_channels, act="relu6"),
        config={"stem_channels": stem_channels, "first_channels": first_channels,
                "stage_channels": list(stage_channels), "head_channels": head_channels})
