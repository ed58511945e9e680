"""The contract of `hwnas.search.SearchStrategy` (`hwnas.testing.search`), checked for every registered strategy.

To add a strategy, register it and give it an entry in `hwnas.testing.search.FAST_SETTINGS`: a strategy
without one fails `test_every_strategy_is_covered`.
"""

import pytest

from hwnas.search import STRATEGIES
from hwnas.testing import search as suite

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return suite.search_problem(tmp_path_factory.mktemp("problem"))


@pytest.fixture(params=STRATEGIES.names())
def name(request):
    return request.param


def test_every_strategy_is_covered():
    missing = sorted(set(STRATEGIES.names()) - set(suite.FAST_SETTINGS))
    assert not missing, f"search strategies {missing} need an entry in hwnas.testing.search.FAST_SETTINGS"


def test_results_are_recorded_once_reproducible_and_resumable(name, problem, tmp_path):
    whole = suite.check_results(name, problem)
    suite.check_resumable(name, problem, tmp_path / "search", whole=whole)


def test_returned_candidates_satisfy_the_constraint(name, problem):
    suite.check_constraint(name, problem)


def test_unreachable_target_is_an_error(name, problem):
    suite.check_unreachable_target(name, problem)


def test_settings_are_json_and_unknown_ones_refused(name):
    suite.check_settings(name)
