"""`hwnas.testing.training` over every registered training strategy, and proof that it catches a strategy that
draws its paths from the global RNG."""

import random

import pytest

from hwnas.errors import ConfigError
from hwnas.training import STRATEGIES
from hwnas.training.strategies import UniformSampling
from hwnas.testing import training as suite

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_strategy_that_needs_settings_has_them():
    for name in STRATEGIES.names():
        if name in suite.SETTINGS:
            continue
        try:
            STRATEGIES.get(name).check_settings({})
        except ConfigError as error:
            pytest.fail(f"training strategy {name!r} needs settings ({error}); give it an entry in "
                        f"hwnas.testing.training.SETTINGS")


@pytest.fixture(params=STRATEGIES.names())
def config(request, tmp_path):
    return suite.tiny_config(request.param, tmp_path)


def test_steps_and_state(config):
    suite.check_unknown_setting_refused(config)
    strategy = suite.check_steps(config)
    suite.check_state_round_trip(config, strategy)


def test_paths_depend_on_seed_and_step_alone(config):
    suite.check_paths(config)


def test_resumed_run_ends_as_an_uninterrupted_one(config, tmp_path):
    suite.check_resume(config, tmp_path)


class GlobalRandom(UniformSampling):
    name = "global-random"

    def path_rng(self, step):
        return random.Random(random.random())


def test_paths_from_the_global_rng_are_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(STRATEGIES, "_entries", {**STRATEGIES._entries, "global-random": GlobalRandom})
    with pytest.raises(AssertionError, match="must depend on \\(seed, step\\) alone"):
        suite.check_paths(suite.tiny_config("global-random", tmp_path))
