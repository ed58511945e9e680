"""`hwnas.testing.spaces` over every registered search space, and proof that it catches a broken one.
(The reference architectures' golden integers are checked in tests/space/test_cost.py.)"""

import dataclasses

import pytest

from hwnas.space import SPACES, get_space
from hwnas.testing.spaces import check_all_blocks, check_blocks, check_space, check_validate


@pytest.mark.parametrize("name", SPACES.names())
def test_space_conforms(name, one_thread):
    check_space(name)


def test_a_layer_that_does_not_chain_is_caught():
    space = get_space("spos", "cifar10")
    layers = list(space.layers)
    layers[3] = dataclasses.replace(layers[3], cin=layers[3].cin + 8)
    broken = dataclasses.replace(space, layers=tuple(layers))
    with pytest.raises(AssertionError, match="block 4 of space 'spos' must read what 3 writes"):
        check_blocks(broken, broken.from_indices([0] * len(layers)))


def test_missing_blocks_are_caught(monkeypatch):
    space = get_space("fbnet", "cifar10")
    every = space.all_blocks
    monkeypatch.setattr(type(space), "all_blocks", lambda self, *a, **k: every(*a, **k)[:-1])
    with pytest.raises(AssertionError, match="must hold every stem, head and .* but lacks"):
        check_all_blocks(space)


def test_an_accepting_validate_is_caught(monkeypatch):
    space = get_space("proxylessnas", "cifar10")
    monkeypatch.setattr(type(space), "validate", lambda self, arch: arch)
    with pytest.raises(AssertionError, match="must refuse an architecture with one op too few"):
        check_validate(space)
