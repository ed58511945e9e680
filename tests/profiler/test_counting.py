import random

import pytest
import torch

from hwnas.profiler.counting import arch_cost, arch_costs, block_cost, count_module
from hwnas.supernet.references import REFERENCES, reference_cost
from hwnas.supernet.spaces import SPACES, get_space

PUBLISHED = [name for name in REFERENCES if REFERENCES.get(name).macs is not None]


@pytest.mark.parametrize("name", PUBLISHED)
def test_reference_reproduces_published_figures(name):
    ref = REFERENCES.get(name)
    cost = reference_cost(name)
    assert cost.macs == pytest.approx(ref.macs, rel=0.02)
    if ref.params is not None:
        assert cost.params == pytest.approx(ref.params, rel=0.02)


def test_every_design_figure_is_covered():
    design = {"ProxylessNAS-Mobile": (320.4e6, 4.08e6), "ProxylessNAS-GPU": (465.3e6, 7.12e6),
              "ProxylessNAS-CPU": (439.2e6, 4.36e6), "FBNet-A": (244.5e6, None), "FBNet-B": (291.1e6, None),
              "FBNet-C": (378.2e6, None), "SPOS": (323e6, 3.5e6)}
    for name, (macs, params) in design.items():
        assert (REFERENCES.get(name).macs, REFERENCES.get(name).params) == (macs, params)


@pytest.mark.parametrize("name", SPACES.names())
def test_block_sum_equals_whole_network_count(name):
    space = get_space(name, "cifar10", width=0.5)
    arch = space.sample(random.Random(0))
    net = space.build(arch).eval()
    assert count_module(net, torch.randn(1, 3, 32, 32)) == arch_cost(space, arch)


def test_known_block_counts():
    space = get_space("proxylessnas", "imagenet")
    # layer 1: 16 -> 24, stride 2, 112x112 input, k3_e6: 1x1 16->96 at 112^2, dw 3x3 at 56^2, 1x1 96->24 at 56^2
    cost = block_cost(space.layers[0].block("k3_e6"))
    assert cost.macs == 16 * 96 * 112 * 112 + 96 * 9 * 56 * 56 + 96 * 24 * 56 * 56
    assert cost.params == 16 * 96 + 96 * 9 + 96 * 24 + 2 * (96 + 96 + 24)
    assert block_cost(space.layers[1].block("skip")).macs == 0


def test_rows_cover_stem_layers_and_head():
    space = get_space("spos", "imagenet")
    rows = arch_costs(space, REFERENCES.get("SPOS").arch)
    assert [r[0] for r in rows][0] == "stem" and rows[-1][0] == "head" and len(rows) == 22
