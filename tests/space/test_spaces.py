import json
import math
import random

import pytest
import torch

from hwnas.errors import ArchitectureError, ConfigError, UnknownNameError
from hwnas.space.profiles import PROFILES
from hwnas.space import Architecture, BlockSpec
from hwnas.space import SPACES, get_space, space_from_description

LAYERS = {"proxylessnas": 21, "fbnet": 22, "spos": 20, "single_path_nas": 20}
SPACE_OPS = [(space, op) for space in SPACES for op in
             dict.fromkeys(op for layer in get_space(space, "cifar10").layers for op in layer.op_names)]


def test_registry_holds_the_four_spaces():
    assert set(SPACES.names()) == set(LAYERS)


@pytest.mark.parametrize("profile", PROFILES.names())
@pytest.mark.parametrize("name", SPACES.names())
def test_space_layout(name, profile):
    space = get_space(name, profile)
    assert len(space.layers) == LAYERS[name]
    assert space.profile.name == profile
    assert space.size == math.prod(len(layer.choices) for layer in space.layers)
    if name == "fbnet":
        assert space.size == 9**22
    # geometry chains: each layer reads what the previous one wrote
    for prev, layer in zip(space.layers, space.layers[1:]):
        assert layer.cin == prev.cout
        assert (layer.height, layer.width) == BlockSpec(prev.choices[0][1], prev.cin, prev.cout, prev.stride,
                                                        prev.height, prev.width).out_hw
    assert space.head[-1].block.cout == space.profile.num_classes


@pytest.mark.parametrize("profile", PROFILES.names())
@pytest.mark.parametrize("name,op", SPACE_OPS)
def test_every_op_forward_backward(name, op, profile):
    """The op in every layer that allows it (the first op elsewhere): forward and backward on CPU."""
    space = get_space(name, profile)
    arch = Architecture(tuple(op if op in layer.op_names else layer.op_names[0] for layer in space.layers))
    net = space.build(arch)
    x = torch.randn(2, space.profile.channels, space.profile.resolution, space.profile.resolution)
    out = net(x)
    assert out.shape == (2, space.profile.num_classes)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("name", SPACES.names())
def test_block_output_shapes_match_their_spec(name):
    space = get_space(name, "cifar10", width=0.5)
    for block in space.all_blocks(batch=2):
        module = block.build().eval()
        out = module(torch.randn(block.input_shape))
        if block.op.family == "head":
            assert out.shape == (2, block.cout)
        else:
            assert out.shape == (2, block.cout, *block.out_hw), block.key


def test_all_blocks_are_unique_and_cover_every_architecture():
    space = get_space("proxylessnas", "cifar10")
    keys = [b.key for b in space.all_blocks()]
    assert len(keys) == len(set(keys))
    rng = random.Random(0)
    for _ in range(20):
        assert {b.key for _, b in space.blocks(space.sample(rng))} <= set(keys)


def test_blocks_include_stem_and_head_in_order():
    space = get_space("proxylessnas", "imagenet")
    arch = space.sample(random.Random(1))
    names = [name for name, _ in space.blocks(arch)]
    assert names[:2] == ["stem", "first"] and names[-1] == "head"
    assert len(names) == 2 + 21 + 1
    spnas = get_space("single_path_nas", "imagenet")
    assert [name for name, _ in spnas.blocks(spnas.sample(random.Random(1)))][-2:] == ["last", "head"]


def test_block_spec_is_a_stable_hashable_key():
    space = get_space("fbnet", "cifar10")
    a = space.layers[3].block("k5_e6")
    b = get_space("fbnet", "cifar10").layers[3].block("k5_e6")
    assert a == b and hash(a) == hash(b) and a.key == b.key
    assert a.key == "mbconv(act=relu,e=6,k=5) 24>24 s1 32x32 b1 float32"
    assert BlockSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert a.with_(batch=8).key != a.key


def test_identical_blocks_share_keys_across_spaces():
    """cifar10 and cifar100 spaces differ only in the classifier: every other table entry is shared."""
    a = {b.key for b in get_space("proxylessnas", "cifar10").all_blocks()}
    b = {b.key for b in get_space("proxylessnas", "cifar100").all_blocks()}
    assert len(a - b) == len(b - a) == 1


def test_op_parameters_at_their_defaults_are_dropped_from_keys():
    from hwnas.space.ops import OpSpec

    assert OpSpec.of("mbconv", k=3, e=6, g=1) == OpSpec.of("mbconv", k=3, e=6)
    with pytest.raises(ConfigError, match="op family 'mbconv' takes parameters .*but got kernel"):
        OpSpec.of("mbconv", kernel=3, e=6)


def test_sample_is_valid_and_seeded():
    for name in SPACES:
        space = get_space(name, "cifar10")
        a, b = space.sample(random.Random(7)), space.sample(random.Random(7))
        assert a == b
        assert space.validate(a) == a
        assert space.from_indices(space.indices(a)) == a


def test_architecture_string_and_json_round_trip():
    space = get_space("spos", "cifar10")
    arch = space.sample(random.Random(3))
    assert Architecture.parse(str(arch)) == arch
    assert Architecture.from_json(arch.to_json(space)) == arch
    assert json.loads(arch.to_json(space))["space"]["space"] == "spos"


def test_zero_is_an_alias_of_skip():
    assert Architecture.parse("k3_e6-zero").ops == ("k3_e6", "skip")


def test_wrong_length_names_the_rule_and_count():
    space = get_space("spos", "cifar10")
    with pytest.raises(ArchitectureError, match=r"one op per layer \(20 layers\), but got 2 ops"):
        space.validate("shuffle_k3-xception")


def test_op_not_allowed_names_the_layer_and_allowed_ops():
    space = get_space("proxylessnas", "cifar10")
    ops = ["k3_e6"] * 21
    ops[0] = "skip"  # the first layer changes channels: no skip there
    with pytest.raises(ArchitectureError, match=r"layer 1 of space 'proxylessnas' allows ops k3_e3, .*k7_e6, "
                                                 r"but got 'skip'"):
        space.validate(ops)


def test_bad_architecture_string():
    with pytest.raises(ArchitectureError, match="joined by '-'"):
        Architecture.parse("k3_e6--k5_e3")


def test_unknown_space_and_profile_list_known_names():
    with pytest.raises(UnknownNameError, match="unknown search space 'mnasnet'; known search spaces: fbnet, "):
        get_space("mnasnet", "cifar10")
    with pytest.raises(UnknownNameError, match="unknown input profile 'mnist'; known input profiles: cifar10"):
        get_space("fbnet", "mnist")


def test_width_multiplier_and_custom_input():
    full = get_space("fbnet", "cifar10")
    half = get_space("fbnet", "cifar10", width=0.5)
    assert [l.cout for l in half.layers] == [max(8, (c.cout // 2 + 4) // 8 * 8) for c in full.layers]
    custom = get_space("spos", "cifar10", channels=5, num_classes=7, resolution=40)
    assert custom.stem[0].block.cin == 5 and custom.head[0].block.cout == 7 and custom.stem[0].block.height == 40
    with pytest.raises(ConfigError, match="width multiplier must be finite and > 0, but got width=0"):
        get_space("fbnet", "cifar10", width=0)


def test_space_description_rebuilds_the_same_space():
    space = get_space("proxylessnas", "fashion-mnist", width=0.5, num_classes=3)
    again = space_from_description(json.loads(json.dumps(space.describe())))
    assert again == space


def test_cifar_style_keeps_resolution_early():
    imagenet, cifar = get_space("fbnet", "imagenet"), get_space("fbnet", "cifar10")
    assert imagenet.stem[0].block.stride == 2 and cifar.stem[0].block.stride == 1
    assert cifar.layers[1].stride == 1 and imagenet.layers[1].stride == 2  # first stride-2 stage
    assert cifar.head[0].block.height == 4 and imagenet.head[0].block.height == 7
