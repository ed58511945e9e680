"""The ``executorch`` device: blocks exported, lowered to ExecuTorch with the XNNPACK delegate and timed by its
runtime (the ``executorch`` extra; the tests that need it skip themselves without it)."""

import importlib.util

import pytest
import torch

from hwnas.devices import get_device
from hwnas.devices.executorch import EXTRA, ExecuTorchDevice
from hwnas.errors import DeviceError
from hwnas.space import get_space
from cli_helpers import run, one_line_error

HAVE_EXECUTORCH = importlib.util.find_spec("executorch") is not None
needs_executorch = pytest.mark.skipif(not HAVE_EXECUTORCH, reason="needs the executorch extra: " + EXTRA)


def test_without_the_extra_the_device_says_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    available, reason = ExecuTorchDevice.availability()
    assert not available and EXTRA in reason
    with pytest.raises(DeviceError, match=r"pip install 'hwnas\[executorch\]'"):
        get_device("executorch")
    one_line_error(run("profile", "--space", "spos", "--width", "0.25", "--device", "executorch",
                       "-o", tmp_path / "t.jsonl"), "pip install 'hwnas[executorch]'")
    assert not (tmp_path / "t.jsonl").exists()


@needs_executorch
def test_a_lowered_block_computes_what_pytorch_computes_and_keeps_its_residual_branch(one_thread):
    from hwnas.devices.executorch import load_method, lower
    from hwnas.devices.litert import no_zero_weights

    space = get_space("fbnet", "cifar10", width=0.25, resolution=16)
    for layer, op in ((space.layers[5], "k5_e6"), (space.layers[2], "k5_e6"), (space.layers[9], "k3_e1_g2")):
        block = layer.block(op)
        module = block.build().eval()
        x = torch.randn(block.input_shape)
        program = lower(module, (x,))
        loaded = load_method(program)
        (got,) = loaded[1].execute([x])
        no_zero_weights(module)  # what was lowered
        assert torch.allclose(got, module(x), atol=1e-4)
        if layer.cin == layer.cout and layer.stride == 1:
            assert not torch.allclose(got, x, atol=1e-3), "the lowered residual block is an identity"


@needs_executorch
def test_the_fingerprint_names_the_runtime_and_its_threads(capfd):
    from hwnas.timing.protocol import Protocol

    device = get_device("executorch", threads=1)
    info = device.info()
    assert info["backend"] == "executorch" and info["executorch"] and "XNNPACK" in info["delegate"]
    block = get_space("spos", "cifar10", width=0.25, resolution=8).layers[0].block("shuffle_k3")
    device.measure(block.build(), torch.randn(block.input_shape),
                   Protocol(warmup_s=0, min_block_s=0.0005, rounds=3, rotate=2, remeasure=0))
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    assert _threadpool_get_thread_count() == 1
    out, _ = capfd.readouterr()
    assert out == ""
