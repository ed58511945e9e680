"""The sandwich rule with in-place distillation: which paths a step trains, what the students learn from, and
its settings."""

import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.space import get_space
from hwnas.space.cost import block_cost
from hwnas.testing.training import tiny_config
from hwnas.training import RunConfig, train
from hwnas.training.loop import build_strategy
from hwnas.training.sandwich import Sandwich, SandwichSettings, extreme_paths, path_macs, soft_cross_entropy
from hwnas.supernet import SuperNet
from cli_helpers import run, one_line_error

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_largest_and_smallest_paths_bound_every_layer():
    space = get_space("fbnet", "cifar10", width=0.25, resolution=16)
    largest, smallest = extreme_paths(space)
    for layer, big, small in zip(space.layers, largest, smallest):
        macs = [block_cost(layer.block(op)).macs for op in layer.op_names]
        assert macs[big] == max(macs) and macs[small] == min(macs)
    assert space.from_indices(largest).ops[0] == "k5_e6"
    import random
    rng = random.Random(0)
    assert all(path_macs(space, smallest) <= path_macs(space, space.indices(space.sample(rng))) <= path_macs(space, largest)
               for _ in range(50))


def test_a_step_trains_largest_smallest_and_random_paths(tmp_path):
    config = tiny_config("sandwich", tmp_path, settings={"random_paths": 3})
    from hwnas.data import build_loaders
    loaders = build_loaders(config.dataset, **config.loader_options())
    space = get_space(config.space, loaders.profile, width=config.width)
    strategy = build_strategy(config, space, loaders)
    assert isinstance(strategy, Sandwich) and strategy.settings == SandwichSettings(random_paths=3)
    paths = strategy.paths(7)
    assert len(paths) == 5 and paths[:2] == list(extreme_paths(space))
    assert paths == strategy.paths(7) and paths[2:] != strategy.paths(8)[2:], "random paths depend on the step alone"
    seen = []
    model = SuperNet(space)
    real = model.forward
    model.forward = lambda x, arch=None, **kw: seen.append(str(arch)) or real(x, arch, **kw)
    images, labels = next(iter(loaders.train))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = strategy.step(model, images, labels, criterion=torch.nn.CrossEntropyLoss(), optimizer=optimizer, step=7)
    assert seen == [str(space.from_indices(p)) for p in paths] and result.seen == 5 * len(labels)


def test_students_learn_the_teachers_soft_predictions():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    teacher = torch.softmax(torch.tensor([[0.0, 3.0, 0.0]]), dim=1)
    assert soft_cross_entropy(logits, teacher) == pytest.approx(float(-(teacher * torch.log_softmax(logits, 1)).sum()))
    hard = torch.nn.functional.one_hot(torch.tensor([1]), 3).float()
    assert soft_cross_entropy(logits, hard) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.tensor([1]))))


def test_without_distillation_every_path_learns_the_labels(tmp_path):
    """distill=False: the students' loss is the criterion's; the step then equals summing criterion losses."""
    a = train(tiny_config("sandwich", tmp_path / "a", settings={"distill": False}, epochs=1), tmp_path / "a").model
    b = train(tiny_config("sandwich", tmp_path / "b", settings={}, epochs=1), tmp_path / "b").model
    differs = any(not torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert differs, "distillation changes what the students learn"


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="takes settings random_paths, distill, but got bogus"):
        RunConfig(space="spos", dataset="synthetic", strategy="sandwich", strategy_settings={"bogus": 1})
    with pytest.raises(ConfigError, match="random_paths must be an integer >= 0, but got random_paths=-1"):
        SandwichSettings(random_paths=-1)
    common = ["train", "--space", "spos", "--dataset", "synthetic", "--epochs", 1, "-o", tmp_path / "r"]
    one_line_error(run(*common, "--random-paths", 3), "--random-paths is a setting of --strategy sandwich, but got "
                                                      "--strategy uniform")
    one_line_error(run(*common, "--strategy", "fairness", "--no-distill"), "--distill is a setting of --strategy "
                                                                          "sandwich")
    assert not (tmp_path / "r").exists()


def test_the_cli_records_the_settings(tmp_path):
    done = run("train", "--space", "spos", "--dataset", "synthetic", "--synthetic-size", 16, "--width", 0.25,
               "--resolution", 8, "--batch-size", 8, "--epochs", 1, "--steps-per-epoch", 1, "--eval-paths", 0,
               "--strategy", "sandwich", "--random-paths", 1, "--no-distill", "--no-progress", "--threads", 1,
               "-o", tmp_path / "r")
    assert done.exit_code == 0, done.output
    import json
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["config"]["strategy_settings"] == {"random_paths": 1, "distill": False}
