"""Single-Path NAS (Stamoulis et al., 2019): 22 MBConv layers, 20 of them searchable.

Macro-architecture from the authors' code (enyac-group/single-path-nas, ``supernet_macro.py``): stem
conv 32, a fixed MBConv1 k3 block to 16 channels, five stages of four searchable layers (24, 40, 80,
96, 192 channels), a fixed MBConv6 k3 block to 320 channels, head 1280; ReLU activations. Searchable
ops {k3,k5} x {e3,e6} plus ``skip`` wherever stride is 1 and channels match. Single-Path NAS encodes
these choices in one superkernel per layer; hwnas searches them as discrete ops so that every strategy
and the lookup table treat them alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile
from hwnas.space.space import SearchSpace
from hwnas.space.spaces.base import SPACES, Stage, build_stage_space
from hwnas.space.spaces.proxylessnas import mbconv_choices

STAGE_LAYERS = (4, 4, 4, 4, 4)
STAGE_STRIDES = (2, 2, 2, 1, 2)
SPNAS_OPS = tuple((f"k{k}_e{e}", OpSpec.of("mbconv", k=k, e=e, act="relu")) for k in (3, 5) for e in (3, 6))


@SPACES.register("single_path_nas")
def single_path_nas(profile: InputProfile, *, width: float = 1.0, stem_channels: int = 32,
                    first_channels: int = 16, stage_channels: Sequence[int] = (24, 40, 80, 96, 192),
                    last_channels: int = 320, head_channels: int = 1280) -> SearchSpace:
    stages = [Stage(n, c, s) for n, c, s in zip(STAGE_LAYERS, stage_channels, STAGE_STRIDES, strict=True)]
    return build_stage_space(
        "single_path_nas", profile, width=width,
        stem=[("stem", OpSpec.of("conv", k=3, act="relu"), stem_channels, 2),
              ("first", OpSpec.of("mbconv", k=3, e=1, act="relu"), first_channels, 1)],
        stages=stages, choices=mbconv_choices(SPNAS_OPS),
        tail=[("last", OpSpec.of("mbconv", k=3, e=6, act="relu"), last_channels)],
        head=OpSpec.of("head", feat=head_channels, act="relu"),
        config={"stem_channels": stem_channels, "first_channels": first_channels,
                "stage_channels": list(stage_channels), "last_channels": last_channels,
                "head_channels": head_channels})
