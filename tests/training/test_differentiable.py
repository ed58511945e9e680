"""The differentiable training strategy: α in the one training loop (sampling, hardware losses, the α step,
checkpointing and resumption)."""

import math

import pytest
import torch

from hwnas.errors import CheckpointError, ConfigError
from hwnas.space import get_space
from hwnas.supernet import SuperNet
from hwnas.testing import synthetic_table
from hwnas.training import RunConfig, read_log, train
from hwnas.training.differentiable import ArchitectureSettings, target_settings
from hwnas.training.run_dir import CHECKPOINT_FILE

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = dict(space="spos", dataset="synthetic", width=0.25, resolution=8, synthetic_size=48, batch_size=8,
             eval_paths=0, bn_batches=1, label_smoothing=0.0)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    space = get_space("spos", "cifar10", width=0.25, resolution=8)
    return synthetic_table(space, path=tmp_path_factory.mktemp("tables") / "t.jsonl")


def config(table, target_factor=1.2, epochs=3, **settings) -> RunConfig:
    alpha = ArchitectureSettings(**{"warmup_epochs": 1, **settings})
    return RunConfig(strategy="differentiable", epochs=epochs, steps_per_epoch=3,
                     strategy_settings=target_settings(table, table.minimum_latency() * target_factor, alpha),
                     **SPACE)


@pytest.mark.parametrize("sampling", ["gumbel-hard", "gumbel", "softmax"])
def test_sampled_weights(sampling):
    settings = ArchitectureSettings(sampling=sampling)
    alphas = [torch.randn(4, requires_grad=True) for _ in range(3)]
    weights = settings.sample_weights(alphas, 1.0, torch.Generator().manual_seed(0))
    for w in weights:
        assert w.sum().item() == pytest.approx(1.0)
        if sampling == "gumbel-hard":
            assert sorted(w.detach().tolist()) == [0.0, 0.0, 0.0, 1.0]
    sum(w[0] for w in weights).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)


def test_hard_samples_run_one_op_per_layer():
    space = get_space("spos", "cifar10", width=0.25)
    net = SuperNet(space)
    calls = []
    for layer in net.layers:
        for name, op in layer.ops.items():
            op.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    weights = ArchitectureSettings(sampling="gumbel-hard").sample_weights(
        [torch.zeros(n, requires_grad=True) for n in space.num_ops], 1.0, torch.Generator().manual_seed(0))
    net(torch.randn(2, 3, 32, 32), weights=weights, skip_zeros=True).sum().backward()
    assert len(calls) == len(space.layers)


def test_hardware_losses():
    squared, ce = ArchitectureSettings(), torch.tensor(2.0)
    # the seed's w (E - T)^2 with the miss in percent of the target
    assert squared.hardware_loss(ce, torch.tensor(3.3), 3.0).item() == pytest.approx(0.005 * 10**2)
    proxyless = ArchitectureSettings(hw_loss="proxyless", beta=0.6)
    expected = 2.0 * ((math.log(3.3) / math.log(3.0)) ** 0.6 - 1)
    assert proxyless.hardware_loss(ce, torch.tensor(3.3), 3.0).item() == pytest.approx(expected, rel=1e-5)
    # on target, neither adds anything
    assert squared.hardware_loss(ce, torch.tensor(3.0), 3.0).item() == 0
    assert proxyless.hardware_loss(ce, torch.tensor(3.0), 3.0).item() == pytest.approx(0, abs=1e-6)


def test_temperature_holds_through_the_warmup_then_anneals_to_the_final_value():
    settings = ArchitectureSettings(warmup_epochs=2, temperature=4.0, final_temperature=0.25)
    temps = [settings.temperature_at(epoch, 6) for epoch in range(6)]
    assert temps[:3] == [4.0, 4.0, 4.0] and temps[-1] == pytest.approx(0.25)
    assert temps[2:] == sorted(temps[2:], reverse=True) and temps[4] / temps[3] == pytest.approx(temps[3] / temps[2])


def test_the_hardware_loss_alone_moves_alpha_toward_the_target(table, tmp_path, monkeypatch):
    """With the cross-entropy's gradient on α removed, α follows the hardware loss: E[latency] falls from the
    uniform mixture's towards a target below it, and the argmax meets the target without any projection."""
    from hwnas.training.differentiable import DifferentiableTraining

    monkeypatch.setattr(DifferentiableTraining, "validation_loss", staticmethod(lambda logits, labels: 0 * logits.sum()))
    target = 1.1
    result = train(config(table, target, epochs=4, hc_weight=1.0, arch_lr=0.5), tmp_path)
    expected = [row["expected_latency_ms"] for row in read_log(tmp_path)]
    uniform = float(table.expected([torch.full((n,), 1 / n, dtype=torch.float64) for n in result.space.num_ops]))
    assert expected[0] == pytest.approx(uniform, rel=1e-4), "warm-up epoch: α untouched"
    assert expected[-1] < expected[1] < expected[0], "the joint epochs pull E[latency] down"
    goal = target * table.minimum_latency()
    assert abs(expected[-1] - goal) < abs(expected[0] - goal)
    assert float(table.predict_indices([result.strategy.argmax()])[0]) <= goal, "the argmax needs no projection"


def test_alpha_and_its_optimizer_are_in_every_checkpoint_and_resume(table, tmp_path):
    whole = train(config(table), tmp_path / "whole")

    def stop_after_epoch_2(stats):
        if stats.epoch == 2:
            raise KeyboardInterrupt  # a kill right after the second checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(config(table), tmp_path / "killed", on_epoch=stop_after_epoch_2)
    saved = torch.load(tmp_path / "killed" / CHECKPOINT_FILE, weights_only=True)["strategy"]
    assert set(saved) == {"alphas", "arch_optimizer"} and len(saved["alphas"]) == len(whole.space.layers)
    assert any(a.abs().sum() > 0 for a in saved["alphas"]), "α moved in the joint epoch"
    resumed = train(config(table), tmp_path / "killed")
    assert resumed.start_epoch == 2 and [s.epoch for s in resumed.history] == [3]
    for a, b in zip(whole.strategy.alphas, resumed.strategy.alphas):
        assert torch.equal(a, b)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [row["epoch"] for row in read_log(tmp_path / "killed")] == [1, 2, 3]


def test_a_changed_table_or_a_bad_setting_is_refused(table, tmp_path):
    settings = config(table).strategy_settings
    with pytest.raises(ConfigError, match="needs a lookup table and a target latency"):
        RunConfig(strategy="differentiable", **SPACE)
    with pytest.raises(ConfigError, match="sampling must be one of gumbel-hard, gumbel, softmax"):
        RunConfig(strategy="differentiable", strategy_settings={**settings, "sampling": "hard"}, **SPACE)
    with pytest.raises(ConfigError, match="must not change"):
        RunConfig(strategy="differentiable", strategy_settings={**settings, "table_digest": "0" * 16}, **SPACE)
    with pytest.raises(ConfigError, match="training strategy .uniform. takes settings \(none\), but got target_ms"):
        RunConfig(strategy="uniform", strategy_settings={"target_ms": 1.0}, **SPACE)
    with pytest.raises(CheckpointError, match="init_from must name a supernet run directory"):
        train(RunConfig(init_from=str(tmp_path / "nowhere"), **SPACE), tmp_path / "run")
