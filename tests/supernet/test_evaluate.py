import random
import shutil

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hwnas.errors import CheckpointError
from hwnas.supernet import evaluate
from hwnas.supernet.evaluate import accuracy, calibration_batches, recalibrate_bn, subnet_accuracy
from hwnas.training import RunConfig, load_supernet, open_evaluator, train

TINY = dict(space="spos", dataset="synthetic", width=0.25, resolution=8, synthetic_size=64, batch_size=16,
            epochs=1, eval_paths=0, bn_batches=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("supernet")
    result = train(RunConfig(**TINY), run_dir)
    return run_dir, result.model


def test_recalibration_replaces_statistics_by_the_average_over_the_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5))
    net[0].running_mean.fill_(100.0)
    batches = [torch.randn(8, 3, 4, 4) * 2 + shift for shift in (1.0, 3.0)]
    recalibrate_bn(net, batches)
    expected = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(net[0].running_mean, expected)
    assert net[0].momentum == 0.1, "momentum restored"
    assert not net.training and not net[0].training and not net[1].training


def test_accuracy_counts_correct_top1_predictions():
    images = torch.eye(4).repeat(2, 1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 3, 3])  # the seventh image shows class 2
    identity = nn.Linear(4, 4, bias=False)
    nn.init.eye_(identity.weight)
    assert accuracy(identity, DataLoader(TensorDataset(images, labels), batch_size=3)) == 100 * 7 / 8


def test_calibration_batches_are_the_first_images_of_the_loader():
    loader = DataLoader(TensorDataset(torch.arange(10.0), torch.zeros(10)), batch_size=3)
    batches = calibration_batches(loader, 2)
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]
    assert len(calibration_batches(loader, 10)) == 4


def test_evaluating_a_subnet_leaves_the_supernet_untouched(supernet_run):
    run_dir, supernet = supernet_run
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    evaluator = open_evaluator(run_dir)
    arch = supernet.space.sample(random.Random(0))
    recalibrated = subnet_accuracy(supernet, arch, evaluator.val_loader, calibration=evaluator.calibration)
    assert 0 <= recalibrated <= 100
    for name, value in supernet.state_dict().items():
        assert torch.equal(before[name], value), name


def test_load_supernet_restores_the_trained_weights(supernet_run):
    run_dir, trained = supernet_run
    supernet, config = load_supernet(run_dir)
    assert config == RunConfig(**TINY) and not supernet.training
    assert supernet.space.describe() == trained.space.describe()
    for (name, a), b in zip(trained.state_dict().items(), supernet.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_evaluator_uses_the_runs_validation_split_and_memoises(supernet_run, monkeypatch):
    from hwnas.supernet import evaluator as evaluator_module

    run_dir, _ = supernet_run
    evaluator = open_evaluator(run_dir, bn_batches=1)
    assert len(evaluator.val_loader.dataset) == round(0.1 * 64) and len(evaluator.calibration) == 1
    calls = []
    real = evaluate.subnet_accuracy
    monkeypatch.setattr(evaluator_module, "subnet_accuracy", lambda *a, **k: calls.append(k) or real(*a, **k))
    arch = evaluator.space.sample(random.Random(1))
    first = evaluator.accuracy(arch)
    assert evaluator.accuracy(str(arch)) == first == evaluator(arch) and len(calls) == 1
    inherited = evaluator.accuracy(arch, recalibrate=False)
    assert evaluator.accuracy(arch, recalibrate=False) == inherited
    assert len(calls) == 2 and "calibration" not in calls[1], "each accuracy computed once"


def test_only_trained_supernets_load(tmp_path, supernet_run):
    with pytest.raises(CheckpointError, match="holds no hwnas run"):
        load_supernet(tmp_path)
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(supernet_run[0] / "config.json", untrained)  # killed before its first checkpoint
    with pytest.raises(CheckpointError, match="holds no checkpoint yet"):
        load_supernet(untrained)
    train(RunConfig(**{**TINY, "strategy": None, "arch": "SPOS"}), tmp_path / "retrained")
    with pytest.raises(CheckpointError, match="holds a retrained architecture"):
        load_supernet(tmp_path / "retrained")
