"""Input profiles: the shape of what a network sees (channels, resolution, classes) and its stride style.

`imagenet`-style networks downsample in the stem; `cifar`-style ones keep the stem and the first
stride-2 stage at stride 1, as the seed implementations do for 32x32 inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwnas.errors import ConfigError
from hwnas.registry import Registry

STYLES = ("imagenet", "cifar")


@dataclass(frozen=True)
class InputProfile:
    name: str
    channels: int
    resolution: int
    num_classes: int
    style: str

    def __post_init__(self) -> None:
        for field in ("channels", "resolution", "num_classes"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"input profile {field} must be a positive integer, but got {field}={value!r}")
        if self.style not in STYLES:
            raise ConfigError(f"input profile style must be one of {', '.join(STYLES)}, but got {self.style!r}")

    def to_dict(self) -> dict:
        return {"name": self.name, "channels": self.channels, "resolution": self.resolution,
                "num_classes": self.num_classes, "style": self.style}

    @classmethod
    def from_dict(cls, data: dict) -> "InputProfile":
        return cls(**{k: data[k] for k in ("name", "channels", "resolution", "num_classes", "style")})


PROFILES: Registry[InputProfile] = Registry("input profile")
for _profile in (
    InputProfile("imagenet", 3, 224, 1000, "imagenet"),
    InputProfile("cifar10", 3, 32, 10, "cifar"),
    InputProfile("cifar100", 3, 32, 100, "cifar"),
    InputProfile("fashion-mnist", 1, 28, 10, "cifar"),
):
    PROFILES.add(_profile.name, _profile)


def get_profile(profile: str | InputProfile, *, channels: int | None = None, resolution: int | None = None,
                num_classes: int | None = None) -> InputProfile:
    """A registered profile by name (or a given one), with any of its numbers overridden."""
    base = profile if isinstance(profile, InputProfile) else PROFILES.get(profile)
    overrides = {k: v for k, v in (("channels", channels), ("resolution", resolution),
                                   ("num_classes", num_classes)) if v is not None}
    return replace(base, **overrides) if overrides else base
