"""Anchored sampling: which ops anchor a layer without a residual, what its paths draw, what the alignment loss
trains, and its settings."""

import json
import random

import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.space import get_space
from hwnas.supernet import SuperNet
from hwnas.supernet.supernet import LayerChoice
from hwnas.training import AnchoredSampling, AnchoredSettings, RunConfig
from hwnas.training.anchored import anchor_groups
from hwnas.training.loop import build_strategy
from cli_helpers import one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")

FBNET = dict(space="fbnet", dataset="synthetic", synthetic_like="fashion-mnist", width=0.25, resolution=8,
             synthetic_size=32, batch_size=8, epochs=2, steps_per_epoch=1, eval_paths=0, bn_batches=1, seed=0)


def fbnet_strategy(tmp_path, **settings):
    config = RunConfig(strategy="anchored", strategy_settings=settings, **FBNET)
    from hwnas.data import build_loaders
    loaders = build_loaders(config.dataset, **config.loader_options())
    space = get_space(config.space, loaders.profile, width=config.width)
    return space, build_strategy(config, space, loaders)


def test_fbnet_layers_without_a_residual_are_anchored_on_expansion_3_and_6():
    space = get_space("fbnet", "fashion-mnist", width=0.25, resolution=16)
    groups = LayerChoice(space.layers[5]).weight_groups()
    assert sorted(groups[0]) == ["k3_e3", "k3_e6", "k5_e3", "k5_e6"]
    assert sorted(map(sorted, groups[1:])) == [["k3_e1", "k5_e1"], ["k3_e1_g2", "k5_e1_g2"], ["skip"]]
    anchors = anchor_groups(space, "entangled")
    shape_changing = [i for i, layer in enumerate(space.layers) if layer.stride != 1 or layer.cin != layer.cout]
    assert sorted(anchors) == shape_changing and len(shape_changing) == 5
    assert all(sorted(ops) == ["k3_e3", "k3_e6", "k5_e3", "k5_e6"] for ops in anchors.values())
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    anchor_groups(space, "entangled")
    assert torch.equal(torch.rand(3), expected), "finding the anchors leaves torch's RNG alone"


def test_anchor_epochs_restrict_the_anchored_layers_and_only_them(tmp_path):
    space, strategy = fbnet_strategy(tmp_path, anchor_epochs=1)
    assert isinstance(strategy, AnchoredSampling)
    strategy.begin_epoch(0)
    early = [strategy.path(random.Random(s)) for s in range(200)]
    strategy.begin_epoch(1)
    late = [strategy.path(random.Random(s)) for s in range(200)]
    for i, layer in enumerate(space.layers):
        drawn_early = {path[i] for path in early}
        drawn_late = {path[i] for path in late}
        assert drawn_late == set(layer.op_names)
        assert drawn_early == (set(strategy.anchors[i]) if i in strategy.anchors else set(layer.op_names))


def test_alignment_trains_the_other_ops_towards_the_anchor_and_nothing_upstream():
    space = get_space("fbnet", "fashion-mnist", width=0.25, resolution=8)
    model = SuperNet(space)
    layer, index = model.layers[5], 5
    arch = [layer_.op_names[0] for layer_ in space.layers]
    arch[index] = "k3_e6"
    logits, loss = model(torch.randn(4, 1, 8, 8), arch, align=[(index, "k3_e6", ["skip", "k3_e1_g2"])])
    assert logits.shape == (4, 10) and loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in model.stem.parameters()), "the layer's input is detached"
    assert any(p.grad is not None for p in layer.ops["skip"].parameters())
    assert any(p.grad is not None for p in layer.ops["k3_e1_g2"].parameters())
    assert all(p.grad is None for p in layer.ops["k3_e6"].parameters()), "the anchor's output is the target"
    x = torch.randn(4, 8, 4, 4)
    out = layer(x, op="k3_e6")
    assert layer.alignment(x, "k3_e6", out, "k3_e6", ["k3_e6"]).item() == 0
    same = torch.nn.functional.mse_loss(layer.run("skip", x), out)
    assert layer.alignment(x, "k3_e6", out, "k3_e6", ["skip"]).item() == pytest.approx(same.item())


def test_a_step_passes_the_alignment_to_the_model_and_reports_the_cross_entropy(tmp_path):
    space, strategy = fbnet_strategy(tmp_path, align_weight=0.5)
    calls = []
    model = SuperNet(space)
    real = model.forward
    model.forward = lambda x, arch=None, **kw: calls.append(kw.get("align")) or real(x, arch, **kw)
    images, labels = torch.randn(8, 1, 8, 8), torch.arange(8) % 10
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = torch.nn.CrossEntropyLoss()
    result = strategy.step(model, images, labels, criterion=criterion, optimizer=optimizer, step=3)
    (align,) = calls
    assert sorted(i for i, _, _ in align) == sorted(strategy.anchors)
    assert all(anchor in strategy.anchors[i] and not set(others) & set(strategy.anchors[i])
               for i, anchor, others in align)
    assert result.seen == 8 and torch.isfinite(result.loss_sum)
    _, no_align = fbnet_strategy(tmp_path, align_weight=0.0)
    calls.clear()
    no_align.step(model, images, labels, criterion=criterion, optimizer=optimizer, step=3)
    assert calls == [None]


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="anchor_epochs must be an integer >= 0, but got anchor_epochs=-1"):
        AnchoredSettings(anchor_epochs=-1)
    with pytest.raises(ConfigError, match="align_weight must be a finite number >= 0, but got align_weight=nan"):
        AnchoredSettings(align_weight=float("nan"))
    common = ["train", "--space", "fbnet", "--dataset", "synthetic", "--epochs", 1, "-o", tmp_path / "r"]
    one_line_error(run(*common, "--anchor-epochs", 3), "--anchor-epochs is a setting of --strategy anchored, but "
                                                       "got --strategy uniform")
    one_line_error(run(*common, "--strategy", "anchored", "--weight-sharing", "independent"),
                   "anchored sampling takes its anchors from the ops that share weights, so it needs "
                   "weight_sharing='entangled', but got 'independent'")
    one_line_error(run("train", "--space", "proxylessnas", "--dataset", "synthetic", "--epochs", 1,
                       "--strategy", "anchored", "-o", tmp_path / "r"),
                   "anchored sampling found no layer without a residual whose ops hold weights of different kinds")
    assert not (tmp_path / "r").exists()


def test_the_cli_records_the_settings(tmp_path):
    done = run("train", "--space", "fbnet", "--dataset", "synthetic", "--synthetic-like", "fashion-mnist",
               "--synthetic-size", 16, "--width", 0.25, "--resolution", 8, "--batch-size", 8, "--epochs", 2,
               "--steps-per-epoch", 1, "--eval-paths", 0, "--strategy", "anchored", "--anchor-epochs", 1,
               "--align-weight", 0.5, "--no-progress", "--threads", 1, "-o", tmp_path / "r")
    assert done.exit_code == 0, done.output
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["config"]["strategy_settings"] == {"anchor_epochs": 1, "align_weight": 0.5}

