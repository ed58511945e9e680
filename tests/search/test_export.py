"""Export: architecture JSON, tensors-only state_dict with a build recipe, ONNX that matches PyTorch."""

import json
import random
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas.errors import CheckpointError
from hwnas.search import RandomSearch, run_search, run_sweep
from hwnas.export import arch_from_search, export_architecture
from hwnas.testing import SyntheticEvaluator, synthetic_table
from hwnas.space import Architecture
from hwnas.space import get_space, space_from_description
from hwnas.supernet import SuperNet


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space():
    return get_space("single_path_nas", "cifar10", width=0.25)


@pytest.fixture(scope="module")
def trained_like(space):
    """A supernet whose weights and BN statistics are far from their initial values, so that inherited
    weights are distinguishable from a fresh network and logits are of order one."""
    torch.manual_seed(0)
    supernet = SuperNet(space)
    with torch.no_grad():
        for module in supernet.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, 1.0)
    return supernet


def load(directory):
    meta = json.loads((directory / "model.json").read_text())
    model = space_from_description(meta["space"]).build(meta["arch"])
    model.load_state_dict(torch.load(directory / "model.pt", weights_only=True))
    return meta, model.eval()


def test_export_with_supernet_weights(space, trained_like, tmp_path):
    arch = space.sample(random.Random(0))
    result = export_architecture(space, arch, tmp_path, supernet=trained_like, supernet_path="run/")
    assert set(result.files) == {"arch.json", "model.pt", "model.json", "load_model.py", "model.onnx"}
    assert Architecture.from_json((tmp_path / "arch.json").read_text()) == arch
    meta, model = load(tmp_path)
    assert meta["weights"] == "supernet" and meta["supernet"] == "run/" and meta["input_shape"] == [1, 3, 32, 32]
    inherited = trained_like.subnet(arch).state_dict()
    assert all(torch.equal(v, inherited[k]) for k, v in model.state_dict().items())
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        expected = model(x).numpy()
    assert np.abs(expected).max() > 0.1  # a meaningful comparison, not of near-zero logits
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})  # batch 3: the batch dimension is dynamic
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert meta["onnx"]["max_abs_diff"] == result.onnx_max_abs_diff < 1e-4
    script = subprocess.run([sys.executable, str(tmp_path / "load_model.py")], capture_output=True, text=True)
    assert script.returncode == 0 and "torch.Size([1, 10])" in script.stdout, script.stderr


def test_export_without_supernet_is_seeded(space, tmp_path):
    arch = space.sample(random.Random(1))
    export_architecture(space, arch, tmp_path / "a", seed=3, onnx=False)
    export_architecture(space, arch, tmp_path / "b", seed=3, onnx=False)
    a, b = torch.load(tmp_path / "a" / "model.pt", weights_only=True), torch.load(tmp_path / "b" / "model.pt",
                                                                                    weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["weights"] == "initialised" and meta["seed"] == 3 and "onnx" not in meta


def test_supernet_of_another_space_is_refused(space, trained_like, tmp_path):
    other = get_space("single_path_nas", "cifar100", width=0.25)
    with pytest.raises(CheckpointError, match="the supernet must be of the architecture's space, but it was built "
                                              "for single_path_nas/cifar10 .* belongs to single_path_nas/cifar100"):
        export_architecture(other, other.sample(random.Random(0)), tmp_path, supernet=trained_like)


def test_best_of_a_search(space, tmp_path):
    table = synthetic_table(space, device="cpu")
    target = 1.5 * table.minimum_latency()
    run_search(RandomSearch(samples=5), space=space, tables=[table], target_ms=target,
               evaluator=SyntheticEvaluator(space), output=tmp_path / "s", references=False)
    found_space, arch, figures = arch_from_search(tmp_path / "s")
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert found_space == space and str(arch) == best["arch"]
    assert figures["accuracy"] == best["accuracy"] and figures["target_latency_ms"] == target
    assert arch_from_search(tmp_path / "s" / "best.json")[1] == arch
    run_sweep(RandomSearch(samples=3), targets_ms=[target, 2 * target], space=space, tables=[table],
              evaluator=SyntheticEvaluator(space), output=tmp_path / "sweep", references=False)
    with pytest.raises(CheckpointError, match="is a sweep over several targets; export one of its searches: "):
        arch_from_search(tmp_path / "sweep")
    with pytest.raises(CheckpointError, match="a search directory or its best.json must exist, but .*nothing does not"):
        arch_from_search(tmp_path / "nothing")
    (tmp_path / "s" / "best.json").unlink()
    with pytest.raises(CheckpointError, match="needs its best.json, but .*s/best.json does not exist \\(no feasible"):
        arch_from_search(tmp_path / "s")
