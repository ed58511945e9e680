"""Candidate operations: the building blocks every search space is made of.

Each op family is a module class registered under a short name; an `OpSpec` names a family and its
parameters, and `OpSpec.build(cin, cout, stride)` makes the module. Families follow the official
implementations they come from (ProxylessNAS, FBNet's mobile-vision, Megvii's SPOS) so that the
reference architectures reproduce their published MACs and parameter counts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hwnas.errors import ConfigError
from hwnas.registry import Registry

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.add("relu", lambda: nn.ReLU(inplace=True))
ACTIVATIONS.add("relu6", lambda: nn.ReLU6(inplace=True))
ACTIVATIONS.add("hswish", lambda: nn.Hardswish(inplace=True))

OPS: Registry[type[nn.Module]] = Registry("op family")


@dataclass(frozen=True)
class OpSpec:
    """An op family and its parameters, e.g. ``OpSpec.of("mbconv", k=3, e=6, act="relu6")``."""

    family: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, family: str, **params: Any) -> "OpSpec":
        """Parameters equal to the family's defaults are dropped, so one block has one canonical key."""
        defaults = {name: p.default for name, p in inspect.signature(OPS.get(family)).parameters.items()
                    if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}
        unknown = set(params) - set(defaults) - _required_params(family)
        if unknown:
            raise ConfigError(f"op family {family!r} takes parameters {', '.join(sorted(defaults))}, "
                              f"but got {', '.join(sorted(unknown))}")
        return cls(family, tuple(sorted((k, v) for k, v in params.items() if k not in defaults or defaults[k] != v)))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def build(self, cin: int, cout: int, stride: int) -> nn.Module:
        return OPS.get(self.family)(cin, cout, stride, **self.kwargs)

    def __str__(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.family}({inner})"


def _required_params(family: str) -> set[str]:
    return {name for name, p in inspect.signature(OPS.get(family)).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty}


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(ACTIVATIONS.get(act)())
    return nn.Sequential(*layers)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _check_divisible(name: str, channels: int, groups: int) -> None:
    if channels % groups:
        raise ConfigError(f"{name} channels must be divisible by groups={groups}, but got {channels}")


@OPS.register("conv")
class ConvBNAct(nn.Sequential):
    """Plain k x k convolution + BN + activation (stems)."""

    def __init__(self, cin: int, cout: int, stride: int, *, k: int = 3, act: str = "relu"):
        super().__init__(*conv_bn(cin, cout, k, stride, act=act))


@OPS.register("mbconv")
class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, k x k depthwise, 1x1 linear projection, residual when shapes match.

    At expansion 1 the expansion conv is dropped (ProxylessNAS, MobileNetV2, and FBNet as mobile-vision
    builds it); ``expand_always`` keeps it, as the FBNet paper's IRF block and maskrcnn-benchmark do. ``g``
    groups both 1x1 convs and shuffles the channels before the depthwise conv (FBNet's ``_g2`` ops).
    """

    def __init__(self, cin: int, cout: int, stride: int, *, k: int, e: int, g: int = 1, act: str = "relu6",
                 expand_always: bool = False):
        super().__init__()
        mid = cin * e
        _check_divisible("mbconv input", cin, g)
        _check_divisible("mbconv output", cout, g)
        self.groups = g
        self.expand = conv_bn(cin, mid, 1, groups=g, act=act) if (e != 1 or expand_always) else None
        self.depthwise = conv_bn(mid, mid, k, stride, groups=mid, act=act)
        self.project = conv_bn(mid, cout, 1, groups=g)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


@OPS.register("skip")
class Skip(nn.Module):
    """Skips the layer: identity where shapes match, else the cheapest shape change (1x1 conv + BN + act).

    ProxylessNAS calls the identity case ``zero`` (its residual adds the input to a zero output).
    """

    def __init__(self, cin: int, cout: int, stride: int, *, act: str = "relu"):
        super().__init__()
        self.body = nn.Identity() if (stride == 1 and cin == cout) else conv_bn(cin, cout, 1, stride, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit as in Megvii's SPOS: where shapes match, the channels are split in half and one half is
    transformed; where they change (stride 2, or more channels), the whole input goes through a main and a
    projection branch whose outputs are concatenated."""

    def __init__(self, cin: int, cout: int, stride: int, main: Callable[[int, int, int], nn.Module], k: int):
        super().__init__()
        if stride not in (1, 2):
            raise ConfigError(f"shuffle blocks need stride 1 or 2, but got stride={stride}")
        _check_divisible("shuffle block", cin, 2)
        split = stride == 1 and cin == cout
        inp = cin // 2 if split else cin
        if cout <= inp:
            raise ConfigError(f"shuffle blocks that change shape need cout > cin, but got cin={cin}, cout={cout}")
        self.main = main(inp, cout // 2, cout - inp)
        self.proj = None
        if not split:  # stride 2, or a stride-1 stage entry of a cifar-style space that widens the channels
            self.proj = nn.Sequential(*conv_bn(inp, inp, k, stride, groups=inp), *conv_bn(inp, inp, 1, act="relu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            b, c, h, w = x.shape
            pairs = x.reshape(b, c // 2, 2, h, w)  # even channels bypass, odd channels are transformed
            return torch.cat((pairs[:, :, 0], self.main(pairs[:, :, 1])), 1)
        return torch.cat((self.proj(x), self.main(x)), 1)


@OPS.register("shuffle")
class ShuffleBlock(_ShuffleUnit):
    """SPOS ``Shufflenet`` choice: 1x1 -> k x k depthwise -> 1x1."""

    def __init__(self, cin: int, cout: int, stride: int, *, k: int):
        def main(inp: int, mid: int, out: int) -> nn.Module:
            return nn.Sequential(*conv_bn(inp, mid, 1, act="relu"), *conv_bn(mid, mid, k, stride, groups=mid),
                                 *conv_bn(mid, out, 1, act="relu"))

        super().__init__(cin, cout, stride, main, k)


@OPS.register("xception")
class ShuffleXception(_ShuffleUnit):
    """SPOS ``Shuffle_Xception`` choice: three 3x3 depthwise + 1x1 pairs."""

    def __init__(self, cin: int, cout: int, stride: int):
        def main(inp: int, mid: int, out: int) -> nn.Module:
            return nn.Sequential(
                *conv_bn(inp, inp, 3, stride, groups=inp), *conv_bn(inp, mid, 1, act="relu"),
                *conv_bn(mid, mid, 3, groups=mid), *conv_bn(mid, mid, 1, act="relu"),
                *conv_bn(mid, mid, 3, groups=mid), *conv_bn(mid, out, 1, act="relu"))

        super().__init__(cin, cout, stride, main, 3)


@OPS.register("head")
class Head(nn.Module):
    """1x1 conv to ``feat`` channels + BN + act, global average pool, dropout, linear classifier."""

    def __init__(self, cin: int, cout: int, stride: int = 1, *, feat: int, act: str = "relu",
                 dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.features = conv_bn(cin, feat, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feat, cout, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


def init_weights(module: nn.Module) -> None:
    """He-normal convs, unit BN, small-normal classifier: the usual init of these mobile networks.

    The last BN of every residual MBConv starts at zero scale, so each residual block starts as the
    identity (torchvision's ``zero_init_residual``, timm's ``zero_init_last``). In a supernet this
    matters more than in one network: a randomly sampled op of a residual layer then adds nothing
    until it has learnt something, instead of adding noise that changes with every sampled path.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.weight is not None:
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, MBConv) and m.residual:
            nn.init.zeros_(m.project[1].weight)
