"""Conformance suite of search spaces (`hwnas.space.SPACES`) and reference architectures (`REFERENCES`).

Contract of a registered space, checked by `check_space(name)` on the ``imagenet`` and ``cifar10`` profiles:

- ``space.blocks(arch)`` is the stem, then one block per searchable layer (the op the architecture picks,
  at the layer's geometry), then the head, and the blocks chain: each reads the channels and size the
  previous one writes, from the profile's input to its ``num_classes`` outputs;
- ``space.all_blocks()`` holds every block of every architecture exactly once (one lookup-table entry each)
  and nothing else, at the batch and dtype asked for;
- ``space.validate`` refuses an architecture of the wrong length, an unknown op, and an op that exists in
  the space but not in that layer, with `hwnas.errors.ArchitectureError`;
- sampling is seeded, architectures survive their string, JSON and index forms, and ``describe()``
  (through JSON) rebuilds the same space with `space_from_description`;
- the block-by-block cost `arch_cost` equals `count_module` of the whole built network;
- the network built at width 0.25 runs forward and backward on a small input.

Reference architectures: `check_reference(name)` asserts that the counted ImageNet MACs and parameters
are exactly the integers in `GOLDEN_COSTS` and within `PUBLISHED_TOLERANCE` of the published figures of
the registry entry. The integers are pinned on purpose: any change of an op, a space's layout or the
counting convention moves them and must be looked at, where a tolerance would let it pass.

A new space: register it, then call ``check_space("myspace")`` (the project's tests do so for every
entry). A new reference: register it, then pass its counted integers, once checked against the paper,
as ``check_reference("MyNet", golden=(macs, params))``, or add them to `GOLDEN_COSTS` for a built-in one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import torch

from hwnas.errors import ArchitectureError
from hwnas.space import (REFERENCES, Architecture, SearchSpace, arch_cost, count_module, get_space, reference_cost,
                         space_from_description)

PROFILES_CHECKED = ("imagenet", "cifar10")
#: how far a counted figure may lie from the figure published with a reference
PUBLISHED_TOLERANCE = 0.02
#: counted ImageNet (224x224) (MACs, parameters) of every registered reference architecture
GOLDEN_COSTS: dict[str, tuple[int, int]] = {
    "MobileNetV2": (300_774_272, 3_504_872),
    "ProxylessNAS-Mobile": (320_427_584, 4_080_512),
    "ProxylessNAS-GPU": (465_260_160, 7_119_848),
    "ProxylessNAS-CPU": (439_243_864, 4_361_648),
    "FBNet-A": (244_452_664, 4_304_584),
    "FBNet-B": (291_004_424, 4_801_368),
    "FBNet-C": (378_136_224, 5_570_664),
    "SPOS": (322_918_720, 3_558_464),
    "Single-Path-NAS": (333_467_072, 4_421_616),
}


def check_space(name: str, *, profiles: Sequence[str] = PROFILES_CHECKED, samples: int = 3, seed: int = 0) -> None:
    """Every check of this module for space ``name`` on each of ``profiles`` (see the module docstring)."""
    for profile in profiles:
        space = get_space(name, profile)
        rng = random.Random(seed)
        archs = [space.from_indices([0] * len(space.layers)), space.from_indices([n - 1 for n in space.num_ops])]
        archs += [space.sample(rng) for _ in range(samples)]
        check_all_blocks(space)
        check_validate(space)
        check_description(space)
        check_description(get_space(name, profile, width=0.5, num_classes=3))
        check_sampling(space, seed)
        for arch in archs:
            check_blocks(space, arch)
            check_architecture_forms(space, arch)
        for arch in archs[1:3]:  # counting a whole network takes a few tenths of a second: two suffice
            check_cost_adds_up(space, arch)
        check_forward(name, profile)


def check_blocks(space: SearchSpace, arch: Architecture) -> None:
    """The blocks of ``arch`` are stem + one per layer + head, in order, and they chain."""
    blocks = space.blocks(arch)
    names = [n for n, _ in blocks]
    expected = [f.name for f in space.stem] + [layer.name for layer in space.layers] + [f.name for f in space.head]
    assert names == expected, f"blocks of {arch} in space {space.name!r} must be stem, layers, head ({expected}), " \
                              f"but are {names}"
    chosen = [layer.block(op) for layer, op in zip(space.layers, arch.ops)]
    fixed = [f.block for f in space.stem], [f.block for f in space.head]
    assert [b for _, b in blocks] == fixed[0] + chosen + fixed[1], \
        f"blocks of {arch} in space {space.name!r} must be the fixed blocks and each layer's chosen op"
    profile = space.profile
    first = blocks[0][1]
    assert (first.cin, first.height, first.width) == (profile.channels, profile.resolution, profile.resolution), \
        f"the first block of space {space.name!r} must read the {profile.name} input " \
        f"({profile.channels}x{profile.resolution}x{profile.resolution}), but reads " \
        f"{first.cin}x{first.height}x{first.width}"
    for (prev_name, prev), (block_name, block) in zip(blocks, blocks[1:]):
        assert block.cin == prev.cout and (block.height, block.width) == prev.out_hw, \
            f"block {block_name} of space {space.name!r} must read what {prev_name} writes " \
            f"({prev.cout} channels at {prev.out_hw}), but reads {block.cin} at {(block.height, block.width)}"
    assert blocks[-1][1].cout == profile.num_classes, \
        f"the head of space {space.name!r} must output {profile.num_classes} classes, but outputs {blocks[-1][1].cout}"


def check_all_blocks(space: SearchSpace, batch: int = 2, dtype: str = "float16") -> None:
    """`all_blocks` is exactly the set of blocks architectures can run, each once, at ``batch`` / ``dtype``."""
    blocks = space.all_blocks(batch=batch, dtype=dtype)
    keys = [b.key for b in blocks]
    assert len(keys) == len(set(keys)), \
        f"all_blocks of space {space.name!r} must list each block once, but repeats " \
        f"{sorted(k for k in set(keys) if keys.count(k) > 1)[:3]}"
    expected = {f.block.with_(batch=batch, dtype=dtype).key for f in space.stem + space.head}
    expected |= {layer.block(op, batch, dtype).key for layer in space.layers for op in layer.op_names}
    assert set(keys) == expected, \
        f"all_blocks of space {space.name!r} must hold every stem, head and (layer, op) block and nothing else, " \
        f"but lacks {sorted(expected - set(keys))[:3]} and has extra {sorted(set(keys) - expected)[:3]}"
    wrong = [b.key for b in blocks if (b.batch, b.dtype) != (batch, dtype)]
    assert not wrong, f"all_blocks(batch={batch}, dtype={dtype!r}) of space {space.name!r} returned {wrong[:3]}"


def check_validate(space: SearchSpace) -> None:
    """Wrong length, an unknown op and an op the layer does not offer are ArchitectureErrors."""
    first_ops = [layer.op_names[0] for layer in space.layers]
    wrong = {"one op too few": first_ops[:-1], "one op too many": first_ops + first_ops[:1],
             "an unknown op": ["no_such_op"] + first_ops[1:]}
    every_op = {op for layer in space.layers for op in layer.op_names}
    for i, layer in enumerate(space.layers):
        others = sorted(every_op - set(layer.op_names))
        if others:
            wrong[f"op {others[0]!r} in layer {layer.name}"] = first_ops[:i] + [others[0]] + first_ops[i + 1:]
    for what, ops in wrong.items():
        try:
            space.validate(ops)
        except ArchitectureError:
            continue
        raise AssertionError(f"space {space.name!r} must refuse an architecture with {what} with an "
                             f"ArchitectureError, but validate accepted {'-'.join(ops)}")


def check_description(space: SearchSpace) -> None:
    """``describe()`` is JSON and rebuilds an equal space with an equal description."""
    description = json.loads(json.dumps(space.describe()))
    again = space_from_description(description)
    assert again == space and again.describe() == space.describe(), \
        f"space_from_description(describe()) must rebuild space {space.name!r} ({space.profile.name}), but " \
        f"rebuilt one described as {again.describe()}"


def check_sampling(space: SearchSpace, seed: int) -> None:
    a, b = space.sample(random.Random(seed)), space.sample(random.Random(seed))
    assert a == b, f"space {space.name!r} must sample the same architecture from the same seed, but got {a} and {b}"
    assert space.validate(a) == a, f"space {space.name!r} sampled {a}, which it does not validate as itself"


def check_architecture_forms(space: SearchSpace, arch: Architecture) -> None:
    """String, JSON and index forms of ``arch`` give ``arch`` back."""
    forms = {"its string": Architecture.parse(str(arch)), "its JSON": Architecture.from_json(arch.to_json(space)),
             "its indices": space.from_indices(space.indices(arch))}
    for form, again in forms.items():
        assert again == arch, f"an architecture of space {space.name!r} must survive {form}, but {arch} came " \
                              f"back as {again}"


def check_cost_adds_up(space: SearchSpace, arch: Architecture) -> None:
    """The sum of block costs equals the count of the whole network (counted on meta tensors: no memory)."""
    with torch.device("meta"):
        net = space.build(arch).eval()
        example = torch.empty(1, space.profile.channels, space.profile.resolution, space.profile.resolution)
    whole, summed = count_module(net, example), arch_cost(space, arch)
    assert whole == summed, f"the block costs of {arch} in space {space.name!r} ({space.profile.name}) must add " \
                            f"up to the whole network's {whole}, but add up to {summed}"


def check_forward(name: str, profile: str, *, width: float = 0.25, resolution: int = 32, seed: int = 0) -> None:
    """A random architecture built at ``width`` gives finite logits and gradients on a small input."""
    space = get_space(name, profile, width=width, resolution=resolution)
    arch = space.sample(random.Random(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = space.build(arch)
        x = torch.randn(2, space.profile.channels, resolution, resolution)
        out = net(x)
        assert out.shape == (2, space.profile.num_classes), \
            f"{arch} of space {name!r} ({profile}, width {width}) must give (2, {space.profile.num_classes}) " \
            f"logits, but gave {tuple(out.shape)}"
        out.square().mean().backward()
    bad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert torch.isfinite(out).all() and not bad, \
        f"{arch} of space {name!r} ({profile}) must give finite logits and gradients, but parameters {bad[:3]} " \
        f"got none or non-finite ones"


def check_reference(name: str, golden: tuple[int, int] | None = None) -> None:
    """Reference ``name`` counts exactly ``golden`` (default: its `GOLDEN_COSTS` entry) ImageNet MACs and
    parameters, within `PUBLISHED_TOLERANCE` of the figures published with it."""
    cost = reference_cost(name)
    if golden is None:
        assert name in GOLDEN_COSTS, f"reference {name!r} must have golden integers, but GOLDEN_COSTS has none; " \
                                     f"it counts (macs, params) = ({cost.macs}, {cost.params})"
        golden = GOLDEN_COSTS[name]
    assert (cost.macs, cost.params) == tuple(golden), \
        f"reference {name!r} must count exactly (macs, params) = {tuple(golden)}, but counts " \
        f"({cost.macs}, {cost.params})"
    ref = REFERENCES.get(name)
    for what, counted, published in (("MACs", cost.macs, ref.macs), ("parameters", cost.params, ref.params)):
        if published is not None:
            assert abs(counted / published - 1) <= PUBLISHED_TOLERANCE, \
                f"reference {name!r} must count within {PUBLISHED_TOLERANCE:.0%} of its published {published:.4g} " \
                f"{what}, but counts {counted} ({counted / published - 1:+.2%})"
