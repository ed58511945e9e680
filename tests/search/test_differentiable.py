import math

import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.search.base import SearchContext
from hwnas.search.constraints import Constraint
from hwnas.search.differentiable import DifferentiableSearch, project_to_feasible
from hwnas.search.testing import synthetic_table
from hwnas.supernet.data import build_loaders
from hwnas.supernet.spaces import get_space
from hwnas.supernet.supernet import SuperNet

FAST = dict(epochs=2, warmup_epochs=1, steps_per_epoch=1)


@pytest.fixture(scope="module")
def setup():
    space = get_space("spos", "cifar10", width=0.25)
    return space, synthetic_table(space)


def search(setup, target, seed=0, **settings):
    space, table = setup
    torch.manual_seed(0)
    data = build_loaders("synthetic", batch_size=4, synthetic_size=16, synthetic_like="cifar10", seed=0)
    context = SearchContext(space, Constraint(table, target), None, seed=seed, tables=[table],
                            supernet=SuperNet(space), data=data)
    DifferentiableSearch(**{**FAST, **settings}).run(context)
    return context


def test_result_is_a_feasible_architecture_and_reproducible(setup):
    space, table = setup
    target = table.minimum_latency() * 1.2
    context = search(setup, target, seed=3)
    assert len(context.candidates) == 1
    candidate = context.candidates[0]
    assert space.validate(candidate.arch) == candidate.arch
    assert candidate.feasible and candidate.latency_ms[0] <= target
    assert 0 <= candidate.accuracy <= 100
    assert "differentiable search ended at E[latency]" in context.notes[0]
    assert search(setup, target, seed=3).candidates[0].arch == candidate.arch


@pytest.mark.parametrize("sampling", ["gumbel-hard", "gumbel", "softmax"])
def test_sampled_weights(sampling):
    strategy = DifferentiableSearch(sampling=sampling)
    alphas = [torch.randn(4, requires_grad=True) for _ in range(3)]
    weights = strategy._weights(alphas, 1.0, torch.Generator().manual_seed(0))
    for w in weights:
        assert w.sum().item() == pytest.approx(1.0)
        if sampling == "gumbel-hard":
            assert sorted(w.detach().tolist()) == [0.0, 0.0, 0.0, 1.0]
    sum(w[0] for w in weights).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)


def test_hard_samples_run_one_op_per_layer(setup):
    space, _ = setup
    net = SuperNet(space)
    calls = []
    for layer in net.layers:
        for name, op in layer.ops.items():
            op.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    weights = DifferentiableSearch(sampling="gumbel-hard")._weights(
        [torch.zeros(n, requires_grad=True) for n in space.num_ops], 1.0, torch.Generator().manual_seed(0))
    net(torch.randn(2, 3, 32, 32), weights=weights, skip_zeros=True).sum().backward()
    assert len(calls) == len(space.layers)


def test_hardware_losses():
    strategy = DifferentiableSearch()
    ce = torch.tensor(2.0)
    # the seed's w (E - T)^2 with the miss in percent of the target
    assert strategy.hardware_loss(ce, torch.tensor(3.3), 3.0).item() == pytest.approx(0.005 * 10**2)
    proxyless = DifferentiableSearch(hw_loss="proxyless", beta=0.6)
    expected = 2.0 * ((math.log(3.3) / math.log(3.0)) ** 0.6 - 1)
    assert proxyless.hardware_loss(ce, torch.tensor(3.3), 3.0).item() == pytest.approx(expected, rel=1e-5)
    # on target, neither adds anything
    assert strategy.hardware_loss(ce, torch.tensor(3.0), 3.0).item() == 0
    assert proxyless.hardware_loss(ce, torch.tensor(3.0), 3.0).item() == pytest.approx(0, abs=1e-6)


def test_projection_moves_the_least_likely_layers(setup):
    space, table = setup
    constraint = Constraint(table, table.minimum_latency() * 1.05)
    context = SearchContext(space, constraint, None, tables=[table])
    _, per_layer = table.latency_matrix()
    slowest = [int(lat.argmax()) for lat in per_layer]
    log_probs = [torch.log_softmax(torch.zeros(n), 0) for n in space.num_ops]
    indices, moves = project_to_feasible(context, slowest, log_probs)
    assert moves > 0 and constraint.feasible(space.from_indices(indices))


@pytest.mark.parametrize("settings,message", [
    ({"sampling": "hard"}, "sampling must be one of gumbel-hard, gumbel, softmax, but got sampling='hard'"),
    ({"hw_loss": "l1"}, "hw_loss must be one of squared, proxyless, but got hw_loss='l1'"),
    ({"epochs": 0}, "epochs must be an integer >= 1, but got epochs=0"),
    ({"temperature": 0}, "temperature must be > 0, but got temperature=0"),
])
def test_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DifferentiableSearch(**settings)


def test_needs_a_supernet_and_data(setup):
    space, table = setup
    context = SearchContext(space, Constraint(table, table.minimum_latency() * 2), None, tables=[table])
    with pytest.raises(ConfigError, match="differentiable search trains a supernet and needs one"):
        DifferentiableSearch(**FAST).run(context)
