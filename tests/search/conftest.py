import random

import numpy as np
import pytest

from hwnas.testing import SyntheticEvaluator, synthetic_table
from hwnas.space import get_space


@pytest.fixture(scope="session")
def space():
    """ProxylessNAS layers offer 6 or 7 ops, so the constraint's ragged per-layer arrays get exercised."""
    return get_space("proxylessnas", "cifar10", width=0.5)


@pytest.fixture(scope="session")
def table(space):
    return synthetic_table(space, device="cpu")


@pytest.fixture(scope="session")
def phone_table(space):
    return synthetic_table(space, device="phone", ms_per_mmac=0.05, overhead_ms=0.02)


@pytest.fixture(scope="session")
def median_ms(space, table):
    """The median latency of random architectures: a target that about half of the space meets."""
    rng = random.Random(123)
    indices = np.array([space.indices(space.sample(rng)) for _ in range(2000)])
    return float(np.median(table.predict_indices(indices)))


@pytest.fixture
def evaluator(space):
    return SyntheticEvaluator(space)
