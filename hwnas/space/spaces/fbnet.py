"""FBNet (Wu et al., CVPR 2019): 22 searchable layers of FBNet's IRF blocks.

Ops follow facebookresearch/mobile-vision's PyTorch FBNet builder: ReLU activations; at expansion 1 the
1x1 expansion conv is dropped (``expand_always=True`` keeps it, as the paper's block and
maskrcnn-benchmark do; the published FBNet-A/B/C ImageNet checkpoints were trained that way); ``_g2``
groups the 1x1 convs in two with a channel shuffle; ``skip`` is the identity where shapes match and a
1x1 conv + BN + ReLU where they do not, so it is a candidate in every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.space.ops import OpSpec
from hwnas.space.profiles import InputProfile
from hwnas.space.space import SearchSpace
from hwnas.space.spaces.base import SPACES, Stage, build_stage_space

STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
OP_SHAPES = (("k3_e1", 3, 1, 1), ("k3_e1_g2", 3, 1, 2), ("k3_e3", 3, 3, 1), ("k3_e6", 3, 6, 1),
             ("k5_e1", 5, 1, 1), ("k5_e1_g2", 5, 1, 2), ("k5_e3", 5, 3, 1), ("k5_e6", 5, 6, 1))


def fbnet_ops(expand_always: bool = False) -> list[tuple[str, OpSpec]]:
    ops = [(name, OpSpec.of("mbconv", k=k, e=e, g=g, act="relu", expand_always=expand_always))
           for name, k, e, g in OP_SHAPES]
    return ops + [("skip", OpSpec.of("skip"))]


@SPACES.register("fbnet")
def fbnet(profile: InputProfile, *, width: float = 1.0, stem_channels: int = 16,
          stage_channels: Sequence[int] = (16, 24, 32, 64, 112, 184, 352),
          head_channels: int | None = None, expand_always: bool = False) -> SearchSpace:
    # FBNet-B/C's ImageNet head is 1984 wide; the smaller 1504 (FBNet-A's) serves 32x32 inputs
    head = head_channels or (1984 if profile.style == "imagenet" else 1504)
    stages = [Stage(n, c, s) for n, c, s in zip(STAGE_LAYERS, stage_channels, STAGE_STRIDES, strict=True)]
    ops = fbnet_ops(expand_always)
    return build_stage_space(
        "fbnet", profile, width=width,
        stem=[("stem", OpSpec.of("conv", k=3, act="relu"), stem_channels, 2)],
        stages=stages, choices=lambda cin, cout, stride: ops,
        head=OpSpec.of("head", feat=head, act="relu"),
        config={"stem_channels": stem_channels, "stage_channels": list(stage_channels), "head_channels": head,
                "expand_always": expand_always})
