import random
import re
from collections import Counter

import pytest

from hwnas.errors import ConfigError
from hwnas.training.sampling import fair_paths, uniform_path

FBNET = [9] * 22
PROXYLESS = [6] + [7] * 3 + [6] + [7] * 3 + [6] + [7] * 3 + [6] + [7] * 3 + [6] + [7] * 3 + [6]
LOPSIDED = [2, 9, 1, 4, 9]


def _valid(path, num_ops):
    return len(path) == len(num_ops) and all(0 <= op < n for op, n in zip(path, num_ops))


@pytest.mark.parametrize("num_ops", [FBNET, PROXYLESS, LOPSIDED])
def test_uniform_path_is_valid_and_reaches_every_op(num_ops):
    rng = random.Random(0)
    paths = [uniform_path(num_ops, rng) for _ in range(300)]
    assert all(_valid(p, num_ops) for p in paths)
    for layer, n in enumerate(num_ops):
        assert {p[layer] for p in paths} == set(range(n))


def test_fair_paths_use_every_op_exactly_once_when_layers_are_equal():
    rng = random.Random(1)
    counts = [Counter() for _ in FBNET]
    for step in range(1, 6):
        paths = fair_paths(FBNET, rng)
        assert len(paths) == 9 and all(_valid(p, FBNET) for p in paths)
        for layer, c in enumerate(counts):
            c.update(p[layer] for p in paths)
            assert c == {op: step for op in range(9)}


@pytest.mark.parametrize("num_ops", [PROXYLESS, LOPSIDED])
def test_fair_paths_balance_unequal_layers_within_one(num_ops):
    rng = random.Random(2)
    m = max(num_ops)
    for _ in range(20):
        paths = fair_paths(num_ops, rng)
        assert len(paths) == m and all(_valid(p, num_ops) for p in paths)
        for layer, n in enumerate(num_ops):
            counts = Counter(p[layer] for p in paths)
            assert set(counts) == set(range(n)), "every op trains every step"
            assert max(counts.values()) - min(counts.values()) <= 1


def test_fair_paths_vary_the_extra_op_of_short_layers():
    rng = random.Random(3)
    extras = set()
    for _ in range(50):
        column = [p[0] for p in fair_paths([6, 7], rng)]
        extras.add(Counter(column).most_common(1)[0][0])
    assert extras == set(range(6))


@pytest.mark.parametrize("sampler", [uniform_path, fair_paths])
def test_same_seed_same_paths(sampler):
    a, b = random.Random(7), random.Random(7)
    assert [sampler(PROXYLESS, a) for _ in range(5)] == [sampler(PROXYLESS, b) for _ in range(5)]
    assert sampler(PROXYLESS, random.Random(8)) != sampler(PROXYLESS, random.Random(7))


@pytest.mark.parametrize("sampler", [uniform_path, fair_paths])
@pytest.mark.parametrize("num_ops, needle", [([], "at least one searchable layer"), ([3, 0, 2], "(1, 0)")])
def test_bad_num_ops_are_config_errors(sampler, num_ops, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        sampler(num_ops, random.Random(0))
