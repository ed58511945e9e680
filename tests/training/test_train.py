import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from hwnas.errors import CheckpointError, ConfigError, UnknownNameError
from hwnas.data import build_loaders
from hwnas.space import REFERENCES
from hwnas.space import get_space
from hwnas.supernet import SuperNet
from hwnas.training import OPTIMIZERS, SCHEDULERS, STRATEGIES, RunConfig, read_log, read_run, train
from hwnas.training.run_dir import CHECKPOINT_FILE, CONFIG_FILE, LOG_COLUMNS, LOG_FILE
from hwnas.training.strategies import mean_over_users
from hwnas.training.sampling import fair_paths

REPO = Path(__file__).resolve().parents[2]
TINY = dict(dataset="synthetic", width=0.25, resolution=8, synthetic_size=64, batch_size=16, eval_paths=1,
            bn_batches=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**changes) -> RunConfig:
    return RunConfig(**{"space": "spos", "epochs": 2, **TINY, **changes})


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def _strategy(name: str, space_name: str = "spos"):
    space = get_space(space_name, "cifar10", width=0.25, resolution=8)
    config = tiny(space=space_name, strategy=name)
    loaders = build_loaders("synthetic", **config.loader_options())
    return space, STRATEGIES.get(name)(space, config, loaders)


def _batch(n: int = 8):
    return torch.randn(n, 3, 8, 8), torch.randint(0, 10, (n,))


@pytest.mark.parametrize("space_name", ["spos", "fbnet"])
def test_fairness_trains_every_op_of_every_layer_once_per_step(space_name, randomize_bn):
    space, strategy = _strategy("fairness", space_name)
    torch.manual_seed(0)
    net = randomize_bn(SuperNet(space))  # zero-initialised residual BNs would stop gradients before them
    calls = [Counter() for _ in net.layers]
    for counter, layer in zip(calls, net.layers):
        for name, op in layer.ops.items():
            op.register_forward_hook(lambda *_, counter=counter, name=name: counter.update([name]))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    updates = Counter()
    optimizer.register_step_post_hook(lambda *_: updates.update(["step"]))
    images, labels = _batch()
    for step in range(1, 4):
        optimizer.zero_grad(set_to_none=True)
        result = strategy.step(net, images, labels, criterion=torch.nn.CrossEntropyLoss(), optimizer=optimizer,
                               step=step)
        assert updates["step"] == step, "one optimizer update per step"
        for layer, counter in zip(space.layers, calls):
            assert counter == {op: step for op in layer.op_names}, f"layer {layer.name}"
        reached = {name for name, p in net.named_parameters() if p.grad is not None}
        assert reached == {name for name, _ in net.named_parameters()}, "every op received a gradient"
        assert result.seen == len(labels) * max(space.num_ops)


def test_mean_over_users_divides_each_gradient_by_the_passes_that_reached_it():
    shared, own, unused = (torch.nn.Parameter(torch.ones(2)) for _ in range(3))
    with mean_over_users([shared, own, unused]) as counts:
        (shared * 2).sum().backward()
        (shared * 4 + own * 3).sum().backward()
        (shared[:1] * 6).sum().backward()
    assert counts == {shared: 3, own: 1}
    assert shared.grad.tolist() == [4.0, 2.0] and own.grad.tolist() == [3.0, 3.0] and unused.grad is None
    (shared * 3).sum().backward()  # the counting stops with the block
    assert shared.grad.tolist() == [7.0, 5.0] and counts == {shared: 3, own: 1}


def test_fairness_gradient_is_the_mean_over_the_paths_that_used_each_parameter(randomize_bn):
    space, strategy = _strategy("fairness", "fbnet")
    torch.manual_seed(0)
    net = randomize_bn(SuperNet(space))  # entangled: a layer's ops share their kernels
    images, labels = _batch()
    criterion = torch.nn.CrossEntropyLoss()
    per_path = []
    for path in fair_paths(space.num_ops, strategy.path_rng(1)):
        net.zero_grad(set_to_none=True)
        criterion(net(images, space.from_indices(path)), labels).backward()
        per_path.append({name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None})
    strategy.step(net, images, labels, criterion=criterion, optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
                  step=1)
    users = Counter(name for grads in per_path for name in grads)
    assert max(users.values()) == len(per_path) and min(users.values()) == 1
    for name, p in net.named_parameters():
        expected = torch.stack([grads[name] for grads in per_path if name in grads]).mean(0)
        torch.testing.assert_close(p.grad, expected, msg=name)


def test_uniform_step_updates_one_path_and_nothing_else():
    space, strategy = _strategy("uniform")
    net = SuperNet(space)
    # weight decay and momentum must not touch ops that were not on the path
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    images, labels = _batch()
    for step in range(3):
        before = {name: p.detach().clone() for name, p in net.named_parameters()}
        strategy.step(net, images, labels, criterion=torch.nn.CrossEntropyLoss(), optimizer=optimizer, step=step)
        changed_ops = {tuple(name.split(".")[1:4:2]) for name, p in net.named_parameters()
                       if name.startswith("layers.") and not torch.equal(before[name], p)}
        assert len(changed_ops) == len(space.layers)
        assert {int(layer) for layer, _ in changed_ops} == set(range(len(space.layers)))


def test_paths_depend_on_seed_and_step_alone():
    space, first = _strategy("uniform")
    _, second = _strategy("uniform")
    assert [first.path_rng(s).random() for s in range(5)] == [second.path_rng(s).random() for s in range(5)]
    assert first.path_rng(0).random() != first.path_rng(1).random()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_with_the_run_settings(name):
    config = tiny(optimizer=name, lr=0.05, weight_decay=1e-4)
    optimizer = OPTIMIZERS.get(name)(torch.nn.Linear(2, 2).parameters(), config)
    assert optimizer.param_groups[0]["lr"] == 0.05 and optimizer.param_groups[0]["weight_decay"] == 1e-4


def _lrs(config: RunConfig, steps_per_epoch: int) -> list[float]:
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=config.lr)
    scheduler = SCHEDULERS.get(config.scheduler)(optimizer, config, steps_per_epoch)
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


def test_schedulers_step_per_training_step():
    cosine = _lrs(tiny(scheduler="cosine", epochs=4, lr=1.0), steps_per_epoch=5)
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] < 0.01
    assert cosine[10] == pytest.approx(0.5)
    step = _lrs(tiny(scheduler="step", epochs=6, step_size=2, gamma=0.5, lr=1.0), steps_per_epoch=3)
    assert step == pytest.approx([1.0] * 6 + [0.5] * 6 + [0.25] * 6)
    default_step = _lrs(tiny(scheduler="step", epochs=6, gamma=0.5, lr=1.0), steps_per_epoch=1)
    assert default_step == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25]), "a third of the epochs by default"


@pytest.mark.parametrize("changes,error,message", [
    ({"dataset": "mnist"}, UnknownNameError, "unknown dataset 'mnist'; known datasets:"),
    ({"optimizer": "lamb"}, UnknownNameError, "unknown optimizer 'lamb'; known optimizers: adam, rmsprop, sgd"),
    ({"scheduler": "linear"}, UnknownNameError, "unknown scheduler 'linear'; known schedulers: cosine, step"),
    ({"strategy": "greedy"}, UnknownNameError, "unknown training strategy 'greedy'"),
    ({"space": "darts"}, UnknownNameError, "unknown search space 'darts'"),
    ({"batch_size": 0}, ConfigError, "batch size must be >= 1, but got batch_size=0"),
    ({"lr": 0.0}, ConfigError, "learning rate must be > 0, but got lr=0.0"),
    ({"lr": -0.1}, ConfigError, "learning rate must be > 0, but got lr=-0.1"),
    ({"epochs": 0}, ConfigError, "epochs must be >= 1"),
    ({"label_smoothing": 1.0}, ConfigError, "label smoothing must lie in [0, 1)"),
    ({"device": "tpu"}, ConfigError, "device must be one of cpu, cuda, but got 'tpu'"),
    ({"arch": "SPOS"}, ConfigError, "not both or neither"),
])
def test_bad_settings_are_refused(changes, error, message):
    with pytest.raises(error) as info:
        tiny(**changes)
    assert message in str(info.value)


def test_a_run_directory_holds_config_checkpoint_log_and_events(tmp_path):
    run_dir = tmp_path / "run"
    seen = []
    result = train(tiny(), run_dir, on_epoch=seen.append)
    assert [s.epoch for s in result.history] == [1, 2] == [s.epoch for s in seen] and result.start_epoch == 0
    stored = json.loads((run_dir / CONFIG_FILE).read_text())
    assert stored["config"] == tiny().to_dict() and stored["space"] == result.space.describe()
    assert stored["hwnas_version"] and stored["architecture"] is None
    checkpoint = torch.load(run_dir / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["global_step"] == 2 * 3  # 58 training images, batch 16
    assert checkpoint["model"].keys() == result.model.state_dict().keys()
    with open(run_dir / LOG_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == LOG_COLUMNS and [r["epoch"] for r in rows] == ["1", "2"]
    log = read_log(run_dir)
    assert all(0 <= row["val_acc"] <= 100 and row["images_per_s"] > 0 for row in log)
    assert log[1]["lr"] == 0.0, "cosine ends at zero"
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard events"


def test_a_resumed_run_continues_exactly_where_it_stopped(tmp_path):
    whole = train(tiny(eval_paths=0), tmp_path / "whole")

    def stop_after_first_epoch(stats):
        if stats.epoch == 1:
            raise KeyboardInterrupt  # a kill right after the first checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(tiny(eval_paths=0), tmp_path / "killed", on_epoch=stop_after_first_epoch)
    assert torch.load(tmp_path / "killed" / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    resumed = train(tiny(eval_paths=0), tmp_path / "killed")
    assert resumed.start_epoch == 1 and [s.epoch for s in resumed.history] == [2]
    assert [row["epoch"] for row in read_log(tmp_path / "killed")] == [1, 2]
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [s.train_loss for s in whole.history[1:]] == [s.train_loss for s in resumed.history]


def test_log_rows_beyond_the_checkpoint_are_dropped_on_resumption(tmp_path):
    run_dir = tmp_path / "run"
    train(tiny(epochs=1), run_dir)
    with open(run_dir / LOG_FILE, "a") as f:  # killed after logging epoch 2 but before its checkpoint
        f.write("2,1.0,0.5,0.5,0.1,100,1.0\n")
    train(tiny(epochs=1), run_dir)
    assert [row["epoch"] for row in read_log(run_dir)] == [1]


def test_a_finished_run_trains_nothing_more(tmp_path):
    train(tiny(epochs=1), tmp_path)
    before = _files(tmp_path)
    again = train(tiny(epochs=1), tmp_path)
    assert again.history == [] and again.start_epoch == 1
    assert _files(tmp_path)[CHECKPOINT_FILE] == before[CHECKPOINT_FILE]


def test_a_run_directory_of_another_space_is_refused_untouched(tmp_path):
    train(tiny(epochs=1), tmp_path)
    before = _files(tmp_path)
    with pytest.raises(CheckpointError, match="holds a run of another search space .space 'spos' there, "
                                              "'fbnet' here"):
        train(tiny(epochs=1, space="fbnet"), tmp_path)
    with pytest.raises(CheckpointError, match="another search space .width 0.25 there, 0.5 here"):
        train(tiny(epochs=1, width=0.5), tmp_path)
    with pytest.raises(CheckpointError, match="other settings .lr 0.1 there, 0.2 here"):
        train(tiny(epochs=1, lr=0.2), tmp_path)
    assert _files(tmp_path) == before


def test_the_environment_may_change_when_a_run_resumes(tmp_path):
    train(tiny(epochs=1), tmp_path)
    assert train(tiny(epochs=1, workers=1, data_root=str(tmp_path)), tmp_path).start_epoch == 1


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_a_corrupt_checkpoint_is_refused_untouched(tmp_path, content):
    train(tiny(epochs=1), tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(content)
    before = _files(tmp_path)
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / CHECKPOINT_FILE} is corrupt"):
        train(tiny(epochs=2), tmp_path)
    assert _files(tmp_path) == before


def test_a_checkpoint_holding_pickled_objects_is_refused(tmp_path):
    train(tiny(epochs=1), tmp_path)
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    torch.save({**checkpoint, "strategy": {"rng": __import__("random").Random(0)}}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError, match="corrupt or not a hwnas checkpoint"):
        read_run(tmp_path)


def test_a_checkpoint_without_its_config_is_refused(tmp_path):
    train(tiny(epochs=1), tmp_path)
    (tmp_path / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match="has no config.json beside it"):
        train(tiny(epochs=1), tmp_path)


def test_retraining_builds_a_standalone_network_and_reports_test_accuracy(tmp_path):
    result = train(tiny(strategy=None, arch="SPOS", epochs=1), tmp_path)
    assert isinstance(result.model, torch.nn.Sequential) and result.arch == REFERENCES.get("SPOS").arch
    assert 0 <= result.test_acc <= 100 and result.history[0].val_acc is not None
    stored = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert stored["architecture"] == str(result.arch) == stored["config"]["arch"]
    assert train(tiny(strategy=None, arch=str(result.arch), epochs=1), tmp_path).start_epoch == 1


def test_a_retrained_reference_keeps_its_published_channels(tmp_path):
    result = train(RunConfig(space="fbnet", strategy=None, arch="FBNet-A", epochs=1, **TINY), tmp_path)
    assert result.space.describe()["head_channels"] == 1504


def _free_torchrun(script: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # --standalone lets the rendezvous pick a free port
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), *args], env=env, capture_output=True, text=True, timeout=300)


DRIVER = """
import json, sys, torch
from hwnas.training import RunConfig, train
torch.manual_seed(1234 + int(__import__("os").environ["RANK"]))  # train() must not rely on equal global RNGs
result = train(RunConfig(**json.loads(sys.argv[1])), sys.argv[2])
torch.save(dict(result.model.named_parameters()), f"{sys.argv[3]}/rank{result.rank}.pt")
torch.save(result.strategy.state_dict(), f"{sys.argv[3]}/strategy{result.rank}.pt")
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["uniform", "fairness", "anchored", "differentiable"])
def test_distributed_ranks_keep_identical_weights(tmp_path, strategy):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    settings = {}
    if strategy == "differentiable":  # α too: every rank takes the same α step
        from hwnas.testing import synthetic_table
        from hwnas.training.differentiable import ArchitectureSettings, target_settings

        table = synthetic_table(get_space("spos", "cifar10", width=0.25, resolution=8), path=tmp_path / "t.jsonl")
        settings = target_settings(table, 1.5 * table.minimum_latency(), ArchitectureSettings(warmup_epochs=1))
    config = tiny(strategy=strategy, epochs=2, synthetic_size=96, strategy_settings=settings)
    done = _free_torchrun(script, json.dumps(config.to_dict()), str(tmp_path / "run"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    states = [torch.load(tmp_path / f"strategy{r}.pt", weights_only=True) for r in (0, 1)]
    for a, b in zip(states[0].get("alphas", []), states[1].get("alphas", [])):
        assert torch.equal(a, b) and a.abs().sum() > 0, "α moved, alike on both ranks"
    torch.manual_seed(config.seed)
    initial = SuperNet(get_space("spos", "cifar10", width=0.25, resolution=8)).state_dict()
    assert any(not torch.equal(initial[name], value) for name, value in ranks[0].items()), "it trained"
    assert [row["epoch"] for row in read_log(tmp_path / "run")] == [1, 2]
    assert len(list((tmp_path / "run").glob("events.out.tfevents.*"))) == 1, "only rank 0 writes"
    # each rank trains on half of the 86 training images: 2 steps of 16 per epoch
    assert torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)["global_step"] == 2 * 2
