import random

import pytest
import torch

from hwnas.errors import ArchitectureError
from hwnas.supernet.spaces import SPACES, get_space
from hwnas.supernet.supernet import SuperNet


@pytest.mark.parametrize("name", SPACES.names())
def test_single_path_equals_extracted_subnet(name):
    space = get_space(name, "cifar10", width=0.25)
    torch.manual_seed(0)
    net = SuperNet(space)
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


def test_weighted_forward_gives_gradients_to_the_weights():
    space = get_space("fbnet", "cifar10", width=0.25)
    net = SuperNet(space)
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


def test_only_the_path_gets_gradients():
    space = get_space("fbnet", "cifar10", width=0.25)
    net = SuperNet(space)
    arch = space.sample(random.Random(2))
    net(torch.randn(2, 3, 32, 32), arch).sum().backward()
    for layer, chosen in zip(net.layers, arch.ops):
        for op_name, module in layer.ops.items():
            grads = [p.grad for p in module.parameters()]
            if op_name == chosen:
                assert all(g is not None for g in grads)
            else:
                assert all(g is None for g in grads)
