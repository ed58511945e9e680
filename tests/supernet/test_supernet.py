import random

import pytest
import torch

from hwnas.errors import ArchitectureError
from hwnas.space import SPACES, get_space
from hwnas.space.ops import MBConv
from hwnas.supernet.supernet import WEIGHT_SHARING, SuperNet


@pytest.mark.parametrize("sharing", WEIGHT_SHARING)
@pytest.mark.parametrize("name", SPACES.names())
def test_single_path_equals_extracted_subnet(name, sharing, randomize_bn):
    space = get_space(name, "cifar10", width=0.25)
    torch.manual_seed(0)
    net = randomize_bn(SuperNet(space, weight_sharing=sharing))
    x = torch.randn(4, 3, 32, 32)
    rng = random.Random(0)
    for _ in range(3):  # train-mode forwards make BN statistics differ between ops
        net(x, space.sample(rng))
    net.eval()
    for _ in range(3):
        arch = space.sample(rng)
        sub = net.subnet(arch).eval()
        assert torch.equal(net(x, arch), sub(x))
        fresh = space.build(arch)
        fresh.load_state_dict(sub.state_dict())
        assert torch.equal(fresh.eval()(x), sub(x))


def test_subnet_is_a_copy():
    space = get_space("spos", "cifar10", width=0.25)
    net = SuperNet(space)
    arch = space.sample(random.Random(0))
    sub = net.subnet(arch)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    assert not torch.equal(net.head[0].classifier.weight, sub[-1].classifier.weight)


def test_one_hot_weights_equal_single_path():
    space = get_space("proxylessnas", "cifar10", width=0.25)
    net = SuperNet(space).eval()
    x = torch.randn(2, 3, 32, 32)
    arch = space.sample(random.Random(5))
    weights = [torch.nn.functional.one_hot(torch.tensor(i), n).float()
               for i, n in zip(space.indices(arch), space.num_ops)]
    torch.testing.assert_close(net(x, weights=weights), net(x, arch))


def test_weighted_forward_gives_gradients_to_the_weights(randomize_bn):
    space = get_space("fbnet", "cifar10", width=0.25)
    net = randomize_bn(SuperNet(space))
    alphas = [torch.zeros(n, requires_grad=True) for n in space.num_ops]
    out = net(torch.randn(2, 3, 32, 32), weights=[a.softmax(0) for a in alphas])
    out.logsumexp(1).mean().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)


def test_forward_needs_exactly_one_of_arch_and_weights():
    space = get_space("spos", "cifar10", width=0.25)
    net = SuperNet(space)
    with pytest.raises(ArchitectureError, match="exactly one of arch= or weights="):
        net(torch.randn(1, 3, 32, 32))
    with pytest.raises(ArchitectureError, match=r"weights of layer 1 must have shape \(4,\), but got \(3,\)"):
        net(torch.randn(1, 3, 32, 32), weights=[torch.ones(3)] * 20)


@pytest.mark.parametrize("sharing", WEIGHT_SHARING)
def test_only_the_path_gets_gradients(sharing, randomize_bn):
    space = get_space("fbnet", "cifar10", width=0.25)
    net = randomize_bn(SuperNet(space, weight_sharing=sharing))
    arch = space.sample(random.Random(2))
    net(torch.randn(2, 3, 32, 32), arch).sum().backward()
    for layer, chosen in zip(net.layers, arch.ops):
        for op_name, module in layer.ops.items():
            grads = [p.grad for p in module.parameters()]
            if op_name == chosen:
                assert all(g is not None for g in grads)
            else:
                assert all(g is None for g in grads)
        used = {sl.shared for sl in layer.slices.get(chosen, {}).values()}
        assert {key for key, p in layer.shared.items() if p.grad is not None} == used


def test_entangled_ops_take_their_weights_from_shared_kernels():
    space = get_space("fbnet", "cifar10", width=0.25)
    net = SuperNet(space)
    layer = net.layers[2]  # stride 1, 8 -> 8 channels, all nine fbnet ops
    assert sorted(layer.slices) == ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6"]
    assert sorted(layer.shared) == ["g1_depthwise", "g1_expand", "g1_project", "g2_depthwise", "g2_project"]
    big, small = layer.standalone("k5_e6"), layer.standalone("k3_e3")
    assert isinstance(small, MBConv) and small.depthwise[0].weight.shape == (24, 1, 3, 3)
    assert torch.equal(small.depthwise[0].weight, big.depthwise[0].weight[:24, :, 1:4, 1:4])
    assert torch.equal(small.expand[0].weight, big.expand[0].weight[:24])
    assert torch.equal(small.project[0].weight, big.project[0].weight[:, :24])
    no_expand = layer.standalone("k5_e1")
    assert no_expand.expand is None and torch.equal(no_expand.depthwise[0].weight, big.depthwise[0].weight[:8])
    independent = SuperNet(space, weight_sharing="independent")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(net) < count(independent)
    assert set(net.state_dict()) != set(independent.state_dict())


def test_unknown_weight_sharing_is_refused():
    with pytest.raises(ArchitectureError, match="weight sharing must be one of entangled, independent, but got 'x'"):
        SuperNet(get_space("spos", "cifar10", width=0.25), weight_sharing="x")


def test_residual_blocks_start_as_identity():
    space = get_space("proxylessnas", "cifar10", width=0.25)
    net = space.build(space.sample(random.Random(0)))
    residual = [m for m in net.modules() if isinstance(m, MBConv) and m.residual]
    assert residual and all(torch.count_nonzero(m.project[1].weight) == 0 for m in residual)
    x = torch.randn(2, residual[0].project[0].out_channels, 8, 8)
    assert torch.equal(residual[0].eval()(x), x)
