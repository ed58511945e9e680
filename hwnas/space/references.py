"""Reference architectures of the literature, expressed in hwnas's search spaces.

Encodings were transcribed from the official sources named in each entry; ``macs`` / ``params`` are the
published ImageNet (224x224) figures they must reproduce. Definitions hwnas had to choose:

- ProxylessNAS-GPU/-CPU (and -Mobile's first stage) are wider than the search space's defaults, so they
  carry channel overrides, as the official configs do.
- FBNet-A/B/C follow facebookresearch/mobile-vision's PyTorch definitions (``fbnet_modeldef_cls_fbnet``):
  no 1x1 expansion at expansion 1, FBNet-A with its 1504-wide head, FBNet-B's 11th layer ``k5_e6``. The
  ImageNet checkpoints of mobile-vision's model zoo were trained with the paper's block (expansion conv
  always present; build with ``expand_always=True``), which gives 249.9M / 296.6M / 385.0M MACs instead.
- Single-Path-NAS is the architecture timm ports (``spnasnet_100``); no MACs figure is published with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwnas.errors import ConfigError, quoted
from hwnas.registry import Registry
from hwnas.space.architecture import Architecture, as_architecture
from hwnas.space.space import SearchSpace


@dataclass(frozen=True)
class Reference:
    name: str
    space: str
    ops: tuple[str, ...]
    source: str
    macs: float | None = None
    params: float | None = None
    space_kwargs: dict = field(default_factory=dict, hash=False)

    @property
    def arch(self) -> Architecture:
        return Architecture(self.ops)

    def build_space(self, profile: str = "imagenet", **kwargs) -> SearchSpace:
        from hwnas.space.spaces import get_space

        return get_space(self.space, profile, **{**self.space_kwargs, **kwargs})


REFERENCES: Registry[Reference] = Registry("reference architecture")


def _add(ref: Reference) -> None:
    REFERENCES.add(ref.name, ref)


_PROXYLESS = "mit-han-lab/proxylessnas net configs (via osmr/imgclsmob pytorchcv/models/proxylessnas.py)"
_add(Reference(
    "MobileNetV2", "proxylessnas",
    ("k3_e6", "k3_e6", "skip", "skip", "k3_e6", "k3_e6", "k3_e6", "skip", "k3_e6", "k3_e6", "k3_e6", "k3_e6",
     "k3_e6", "k3_e6", "k3_e6", "skip", "k3_e6", "k3_e6", "k3_e6", "skip", "k3_e6"),
    "Sandler et al. 2018; as ProxylessNAS ops in mit-han-lab/once-for-all proxyless_nets.MobileNetV2",
    macs=300e6, params=3.5e6, space_kwargs={"stage_channels": (24, 32, 64, 96, 160, 320)}))
_add(Reference(
    "ProxylessNAS-Mobile", "proxylessnas",
    ("k5_e3", "k3_e3", "skip", "skip", "k7_e3", "k3_e3", "k5_e3", "k5_e3", "k7_e6", "k5_e3", "k5_e3", "k5_e3",
     "k5_e6", "k5_e3", "k5_e3", "k5_e3", "k7_e6", "k7_e6", "k7_e3", "k7_e3", "k7_e6"),
    _PROXYLESS, macs=320.4e6, params=4.08e6, space_kwargs={"stage_channels": (32, 40, 80, 96, 192, 320)}))
_add(Reference(
    "ProxylessNAS-GPU", "proxylessnas",
    ("k5_e3", "skip", "skip", "skip", "k7_e3", "skip", "skip", "k3_e3", "k7_e6", "skip", "skip", "k5_e3",
     "k5_e6", "skip", "k3_e3", "k5_e3", "k7_e6", "k7_e6", "k7_e6", "k5_e6", "k7_e6"),
    _PROXYLESS, macs=465.3e6, params=7.12e6,
    space_kwargs={"stem_channels": 40, "first_channels": 24, "stage_channels": (32, 56, 112, 128, 256, 432),
                  "head_channels": 1728}))
_add(Reference(
    "ProxylessNAS-CPU", "proxylessnas",
    ("k3_e6", "k3_e3", "k3_e3", "k3_e3", "k3_e6", "k3_e3", "k3_e3", "k5_e3", "k3_e6", "skip", "skip", "k3_e3",
     "k5_e6", "k3_e3", "k3_e3", "k3_e3", "k5_e6", "k5_e3", "k5_e3", "k3_e3", "k5_e6"),
    _PROXYLESS, macs=439.2e6, params=4.36e6,
    space_kwargs={"stem_channels": 40, "first_channels": 24, "stage_channels": (32, 48, 88, 104, 216, 360),
                  "head_channels": 1432}))

_FBNET = "facebookresearch/mobile-vision mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py"
_add(Reference(
    "FBNet-A", "fbnet",
    ("skip", "k3_e3", "k3_e1", "skip", "skip", "k5_e6", "k3_e3", "k5_e1", "k3_e3", "k5_e6", "k5_e3", "k5_e1_g2",
     "k5_e6", "k3_e6", "k5_e1_g2", "k5_e3", "k3_e1_g2", "k5_e6", "k5_e6", "k5_e3", "k5_e6", "k5_e6"),
    _FBNET, macs=244.5e6, space_kwargs={"head_channels": 1504}))
_add(Reference(
    "FBNet-B", "fbnet",
    ("k3_e1", "k3_e6", "k5_e1", "k3_e1", "k3_e1", "k5_e6", "k5_e3", "k3_e6", "k5_e6", "k5_e6", "k5_e6", "skip",
     "k5_e3", "k5_e6", "k3_e1", "k5_e1", "k5_e3", "k5_e6", "k5_e1", "k5_e6", "k5_e6", "k3_e6"),
    _FBNET, macs=291.1e6, space_kwargs={"head_channels": 1984}))
_add(Reference(
    "FBNet-C", "fbnet",
    ("k3_e1", "k3_e6", "skip", "k3_e1", "k3_e1", "k5_e6", "k5_e3", "k5_e6", "k3_e6", "k5_e6", "k5_e3", "k5_e6",
     "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k5_e3", "k5_e6", "k5_e6", "k5_e6", "k5_e6", "k3_e6"),
    _FBNET, macs=378.2e6, space_kwargs={"head_channels": 1984}))

_add(Reference(
    "SPOS", "spos",
    ("shuffle_k7", "shuffle_k5", "shuffle_k3", "shuffle_k5", "shuffle_k7", "shuffle_k3", "shuffle_k7",
     "shuffle_k3", "shuffle_k7", "shuffle_k3", "shuffle_k7", "xception", "shuffle_k3", "shuffle_k3", "shuffle_k3",
     "shuffle_k3", "xception", "shuffle_k7", "xception", "xception"),
    "megvii-model/SinglePathOneShot README (block search [2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3])",
    macs=323e6, params=3.5e6))

_add(Reference(
    "Single-Path-NAS", "single_path_nas",
    ("k3_e3", "k3_e3", "k3_e3", "skip", "k5_e6", "k3_e3", "k3_e3", "k3_e3", "k5_e6", "k3_e3", "k3_e3", "k3_e3",
     "k5_e6", "k5_e3", "k5_e3", "k5_e3", "k5_e6", "k5_e6", "k5_e6", "k5_e6"),
    "huggingface/pytorch-image-models timm/models/efficientnet.py _gen_spnasnet"))


def find_reference(name: str) -> Reference | None:
    """A reference by name, ignoring case."""
    for known in REFERENCES:
        if known.lower() == name.lower():
            return REFERENCES.get(known)
    return None


def resolve_arch(space_name: str, text: str, profile: str = "imagenet", **space_kwargs) -> tuple[SearchSpace, Architecture]:
    """Space and architecture from a reference name, an architecture string or a JSON file."""
    from pathlib import Path

    from hwnas.space.spaces import SPACES, get_space

    SPACES.get(space_name)  # an unknown space is the first thing to report
    ref = find_reference(text)
    if ref is not None:
        if ref.space != space_name:
            raise ConfigError(f"reference {ref.name!r} belongs to space {ref.space!r}, but got space {space_name!r}")
        space = ref.build_space(profile, **space_kwargs)
        return space, space.validate(ref.arch)
    space = get_space(space_name, profile, **space_kwargs)
    path = Path(text)
    if text.endswith(".json") and path.exists():
        return space, space.validate(Architecture.from_file(path))
    known_ops = {op for layer in space.layers for op in layer.op_names}
    if not any(part in known_ops for part in as_architecture(text).ops):
        raise ConfigError(f"ARCH must be a reference name ({', '.join(REFERENCES)}), an architecture string "
                          f"or a .json file, but got {quoted(text)}")
    return space, space.validate(as_architecture(text))


def reference_cost(name: str):
    """Counted ImageNet MACs / params of a reference."""
    from hwnas.space.cost import arch_cost

    ref = REFERENCES.get(name)
    return arch_cost(ref.build_space("imagenet"), ref.arch)
