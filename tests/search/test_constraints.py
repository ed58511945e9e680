import random

import numpy as np
import pytest

from hwnas.errors import ConfigError, TableError
from hwnas.search import Constraint, check_table, parse_count, parse_latencies, parse_latency
from hwnas.testing import synthetic_table
from hwnas.space import get_space
from hwnas.tables import Calibration


@pytest.mark.parametrize("text,ms", [("3ms", 3.0), ("3", 3.0), ("2.5ms", 2.5), ("500us", 0.5), ("500µs", 0.5),
                                     (" 4 ms ", 4.0), ("0.003s", 3.0), ("1e1ms", 10.0), (".5", 0.5)])
def test_parse_latency(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text,message", [
    ("fast", "must be a positive duration such as 3ms, 2.5ms or 500us, but got 'fast'"),
    ("0ms", "must be a finite duration > 0, but got '0ms'"),
    ("1e309ms", "must be a finite duration > 0, but got '1e309ms'"),
    (float("inf"), "must be a finite duration > 0, but got inf"),
    ("-3ms", "positive duration"),
    ("3 hours", "positive duration"),
    ("", "positive duration"),
])
def test_bad_latency(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_latency(text)


def test_parse_sweep():
    assert parse_latencies("2ms,3ms,4ms") == [2.0, 3.0, 4.0]
    assert parse_latencies("4ms, 500us,4") == [4.0, 0.5]
    with pytest.raises(ConfigError, match="separated by commas"):
        parse_latencies("2ms,,3ms")
    with pytest.raises(ConfigError, match="'fast'"):
        parse_latencies("2ms,fast")


@pytest.mark.parametrize("text,value", [("300M", 300e6), ("3.5m", 3.5e6), ("1.2G", 1.2e9), ("500k", 5e5),
                                        ("2e6", 2e6), ("12345", 12345)])
def test_parse_count(text, value):
    assert parse_count(text, "MACs") == pytest.approx(value)


@pytest.mark.parametrize("text", ["lots", "0", "-5M", "3T"])
def test_bad_count(text):
    with pytest.raises(ConfigError, match="MACs bound must be"):
        parse_count(text, "MACs")


def test_vectorised_costs_match_the_table(space, table):
    constraint = Constraint(table, 100.0)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(300)]
    costs = constraint.costs_indices(np.array([space.indices(a) for a in archs]))
    predictions = [table.predict(a) for a in archs]
    np.testing.assert_allclose(costs[:, 0], [p.latency_ms for p in predictions])
    np.testing.assert_array_equal(costs[:, 1], [p.macs for p in predictions])
    np.testing.assert_array_equal(costs[:, 2], [p.params for p in predictions])


def test_calibration_applies_to_the_constraint(space):
    table = synthetic_table(space, device="cpu")
    table.set_calibration(Calibration(2.0, 0.5))
    arch = space.sample(random.Random(1))
    constraint = Constraint(table, 100.0)
    predicted = constraint.costs_indices(np.array([space.indices(arch)]))[0, 0]
    assert predicted == pytest.approx(table.predict(arch).latency_ms)
    assert constraint.minimum()["latency_ms"] == pytest.approx(table.minimum_latency())


def test_values_are_positive_when_violated(space, table, median_ms):
    rng = random.Random(2)
    archs = [space.sample(rng) for _ in range(200)]
    predictions = [table.predict(a) for a in archs]
    max_macs = float(np.median([p.macs for p in predictions]))
    max_params = float(np.median([p.params for p in predictions]))
    constraint = Constraint(table, median_ms, max_macs=max_macs, max_params=max_params)
    assert constraint.names == ("latency_ms", "macs", "params")
    indices = np.array([space.indices(a) for a in archs])
    values = constraint.values_indices(indices)
    feasible = constraint.feasible_indices(indices)
    for arch, p, v, ok in zip(archs, predictions, values, feasible):
        assert v == pytest.approx([p.latency_ms - median_ms, p.macs - max_macs, p.params - max_params])
        expected = p.latency_ms <= median_ms and p.macs <= max_macs and p.params <= max_params
        assert ok == expected == constraint.feasible(arch)
    assert 0 < feasible.sum() < len(archs)
    only_latency = Constraint(table, median_ms)
    assert only_latency.names == ("latency_ms",) and only_latency.values(archs[0]).shape == (1,)


def test_unreachable_bounds_state_the_smallest_value(space, table):
    lowest = table.minimum_latency()
    Constraint(table, lowest).check_reachable()  # exactly the fastest architecture is reachable
    with pytest.raises(ConfigError, match=rf"below the smallest latency of space 'proxylessnas' on cpu "
                                          rf"\({lowest:.6g} ms"):
        Constraint(table, 0.5 * lowest).check_reachable()
    with pytest.raises(ConfigError, match="the macs bound must be reachable, but 1 is below the smallest macs"):
        Constraint(table, 100.0, max_macs=1).check_reachable()
    with pytest.raises(ConfigError, match="max_params must be finite and > 0"):
        Constraint(table, 100.0, max_params=0)
    with pytest.raises(ConfigError, match="must be a finite duration > 0"):
        Constraint(table, 0)
    with pytest.raises(ConfigError, match="must be a finite duration > 0"):
        Constraint(table, float("inf"))


def test_minimum_is_the_fastest_architecture(space, table):
    constraint = Constraint(table, 100.0)
    lowest = constraint.minimum()
    fastest = space.from_indices(int(np.argmin(lat)) for lat in table.latency_matrix()[1])
    assert lowest["latency_ms"] == pytest.approx(table.predict(fastest).latency_ms)
    rng = random.Random(3)
    macs = [table.predict(space.sample(rng)).macs for _ in range(200)]
    assert lowest["macs"] <= min(macs)


def test_table_of_another_space_or_width_is_refused(space, table):
    with pytest.raises(TableError, match="built for space 'proxylessnas', but space 'fbnet' was asked for"):
        Constraint(table, 3.0, space=get_space("fbnet", "cifar10", width=0.5))
    with pytest.raises(TableError, match="must be built for the search space, but its proxylessnas space differs: "
                                         "width 0.5 != 1.0"):
        check_table(table, get_space("proxylessnas", "cifar10"))


def test_the_row_check_agrees_with_the_vectorised_one(space, table, median_ms):
    import random
    constraint = Constraint(table, median_ms, max_macs=2e7)
    rng = random.Random(2)
    rows = [space.indices(space.sample(rng)) for _ in range(300)]
    assert [constraint.feasible_row(r) for r in rows] == constraint.feasible_indices(np.array(rows)).tolist()
