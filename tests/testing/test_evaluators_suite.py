"""`hwnas.testing.evaluators` for the synthetic evaluator and the evaluator of a tiny trained supernet, and proof
that it catches an evaluator whose scores depend on what it evaluated before."""

import random

import pytest
import torch

from hwnas.space import get_space
from hwnas.supernet.evaluator import Evaluator, SupernetEvaluator
from hwnas.testing import SyntheticEvaluator, tiny_supernet_run
from hwnas.testing.evaluators import check_evaluator, check_supernet_evaluator
from hwnas.training import open_evaluator

pytestmark = pytest.mark.usefixtures("one_thread")


def archs(space, n=3):
    rng = random.Random(0)
    return [space.sample(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures are set up before the one_thread fixture of each test
    try:
        return tiny_supernet_run(tmp_path_factory.mktemp("supernet"), synthetic_size=40, batch_size=16)
    finally:
        torch.set_num_threads(threads)


def test_synthetic_evaluator_conforms():
    space = get_space("fbnet", "cifar10")
    check_evaluator(lambda: SyntheticEvaluator(space), archs(space))


def test_supernet_evaluator_conforms(supernet_run):
    opened = open_evaluator(supernet_run, device="cpu", bn_batches=1)

    def make():  # a fresh cache over the same supernet and data: evaluating must not modify them
        return SupernetEvaluator(opened.supernet, opened.val_loader, opened.calibration,
                                 description=opened.description)

    check_evaluator(make, archs(opened.space))
    check_supernet_evaluator(opened, archs(opened.space))


class Drifting(Evaluator):
    """Scores that grow with every evaluation: the cache would make a search depend on its order."""

    def _evaluate(self, arch):
        return 10.0 + self.evaluations

    def describe(self):
        return {"kind": "drifting"}


def test_order_dependent_scores_are_caught():
    space = get_space("spos", "cifar10")
    with pytest.raises(AssertionError, match="must score an architecture alike whatever was evaluated before"):
        check_evaluator(Drifting, archs(space))
