"""MACs and parameter counts: blocks counted by hand, and every reference architecture's exact golden integers
(`hwnas.testing.spaces.GOLDEN_COSTS`, within 2 % of the published figures). That block costs add up to the
whole network is part of the space suite (`hwnas.testing.spaces.check_cost_adds_up`)."""

import pytest

from hwnas.space import REFERENCES, arch_costs, block_cost, get_space
from hwnas.testing.spaces import GOLDEN_COSTS, check_reference


@pytest.mark.parametrize("name", REFERENCES.names())
def test_reference_counts_its_golden_integers_near_the_published_figures(name):
    check_reference(name)


def test_golden_integers_name_only_registered_references():
    assert sorted(set(GOLDEN_COSTS) - set(REFERENCES.names())) == []


def test_a_changed_count_is_caught():
    macs, params = GOLDEN_COSTS["SPOS"]
    with pytest.raises(AssertionError, match=rf"must count exactly \(macs, params\) = \({macs + 1}, {params}\), but "
                                             rf"counts \({macs}, {params}\)"):
        check_reference("SPOS", golden=(macs + 1, params))


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
