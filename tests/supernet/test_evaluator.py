"""Accuracy with supernet-inherited weights and BN recalibration, on a supernet trained for one epoch on
synthetic data (a real run directory of `hwnas.training`)."""

import random

import pytest
import torch

from hwnas.errors import CheckpointError, ConfigError
from hwnas.search import Evolution, run_search
from hwnas.training import open_evaluator
from hwnas.training.trained import check_supernet_space
from hwnas.testing import synthetic_table, tiny_supernet_run
from hwnas.space import get_space


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_supernet_run(tmp_path_factory.mktemp("run") / "supernet")


@pytest.fixture(scope="module")
def space():
    return get_space("spos", "cifar10", width=0.25)


def test_accuracy_is_cached_and_independent_of_order(space, run_dir):
    rng = random.Random(0)
    a, b = space.sample(rng), space.sample(rng)
    first = open_evaluator(run_dir, val_batches=1, device="cpu")
    acc_a, acc_b = first(a), first(b)
    assert 0 <= acc_a <= 100 and first.evaluations == 2
    assert first(a) == acc_a and first.evaluations == 2
    second = open_evaluator(run_dir, val_batches=1, device="cpu")
    assert (second(b), second(a)) == (acc_b, acc_a)
    described = first.describe()
    assert described["kind"] == "supernet" and described["dataset"] == "synthetic"
    assert described["epochs_trained"] == 1 and described["bn_batches"] == 2 and described["val_samples"] == 26


def test_the_supernet_is_left_untouched(space, run_dir):
    evaluator = open_evaluator(run_dir, val_batches=1, device="cpu")
    before = {k: v.clone() for k, v in evaluator.supernet.state_dict().items()}
    evaluator(space.sample(random.Random(1)))
    after = evaluator.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_refusals(space, run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="the supernet must be trained on the search space, but the supernet "
                                              "in .* differs: width 0.25 != 0.5 \\(supernet != search\\)"):
        open_evaluator(run_dir, space=get_space("spos", "cifar10", width=0.5), device="cpu")
    with pytest.raises(ConfigError, match="validated on the dataset the supernet was trained on \\('synthetic' in "
                                          ".*\\), but got dataset 'cifar10'"):
        open_evaluator(run_dir, dataset="cifar10", device="cpu")
    with pytest.raises(ConfigError, match="bn_batches must be >= 1, but got bn_batches=0"):
        open_evaluator(run_dir, bn_batches=0, device="cpu")
    with pytest.raises(CheckpointError, match="a supernet run directory must exist, but .*nowhere does not"):
        open_evaluator(tmp_path / "nowhere", device="cpu")


def test_check_supernet_space_names_the_difference(run_dir):
    evaluator = open_evaluator(run_dir, val_batches=1, device="cpu")
    check_supernet_space(evaluator.space, get_space("spos", "cifar10", width=0.25), "run/")
    with pytest.raises(CheckpointError, match="run/ differs: input .*cifar100"):
        check_supernet_space(evaluator.space, get_space("spos", "cifar100", width=0.25), "run/")


def test_evolution_over_a_supernet(space, run_dir, tmp_path):
    table = synthetic_table(space, device="cpu")
    evaluator = open_evaluator(run_dir, space=space, val_batches=1, device="cpu")
    result = run_search(Evolution(population=4, generations=2, parents=2), space=space, tables=[table],
                        target_ms=2 * table.minimum_latency(), evaluator=evaluator, output=tmp_path)
    assert len(result.candidates) == 8 and result.best is not None
    # the SPOS reference lies in this space: it was evaluated too
    assert evaluator.evaluations == 9 and result.references[0]["name"] == "SPOS"
    assert result.config["evaluator"]["run_dir"] == str(run_dir.resolve())
