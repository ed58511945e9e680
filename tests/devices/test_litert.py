"""The ``litert`` device: blocks converted by litert-torch and timed in the LiteRT interpreter (the ``litert``
extra; the tests that need it skip themselves without it)."""

import importlib.util

import numpy as np
import pytest
import torch

from hwnas.devices import DEVICES, get_device
from hwnas.devices.litert import EXTRA, LiteRtDevice, no_zero_weights
from hwnas.errors import DeviceError
from hwnas.space import get_space
from cli_helpers import run, one_line_error

HAVE_LITERT = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
needs_litert = pytest.mark.skipif(not HAVE_LITERT, reason="needs the litert extra: " + EXTRA)


def test_without_the_extra_the_device_says_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("litert_torch", "ai_edge_litert") else real(name, *a))
    available, reason = LiteRtDevice.availability()
    assert not available and EXTRA in reason
    with pytest.raises(DeviceError, match=r"pip install 'hwnas\[litert\]'"):
        get_device("litert")
    one_line_error(run("profile", "--space", "spos", "--width", "0.25", "--device", "litert",
                       "-o", tmp_path / "t.jsonl"), "pip install 'hwnas[litert]'")
    assert not (tmp_path / "t.jsonl").exists()


@needs_litert
def test_a_converted_block_computes_what_pytorch_computes(one_thread):
    from hwnas.timing.litert import outputs

    space = get_space("fbnet", "cifar10", width=0.25, resolution=16)
    device = get_device("litert")
    for layer, op in ((space.layers[5], "k5_e6"), (space.layers[9], "k3_e1_g2"), (space.layers[1], "skip"),
                      (space.layers[2], "k5_e6")):
        block = layer.block(op)
        module = block.build().eval()
        no_zero_weights(module)  # what the device converts (see below)
        x = torch.randn(block.input_shape)
        model = device.tflite_model(module, x)
        assert model[4:8] == b"TFL3"  # the flatbuffer's identifier
        (got,) = outputs(model, [x.numpy()]).values()
        np.testing.assert_allclose(got, module(x).detach().numpy(), atol=1e-4)


@needs_litert
def test_a_residual_branch_is_not_converted_away():
    """A fresh residual block's last BN scale is 0, so its branch adds zeros, which LiteRT's converter drops (the
    block became an identity timed at an empty invoke's cost): the device converts non-zero weights instead."""
    from hwnas.timing.litert import outputs

    block = get_space("fbnet", "cifar10", width=0.25, resolution=16).layers[2].block("k5_e6")  # 8>8, stride 1
    module = block.build().eval()
    assert any(not p.any() for p in module.parameters())
    x = torch.randn(block.input_shape)
    (got,) = outputs(get_device("litert").tflite_model(module, x), [x.numpy()]).values()
    assert not np.allclose(got, x.numpy(), atol=1e-3), "the converted block is an identity"
    assert any(not p.any() for p in module.parameters()), "the caller's module is left alone"
    copy = block.build().eval()
    assert no_zero_weights(copy) > 0 and all(p.any() for p in copy.parameters())


@needs_litert
def test_the_fingerprint_names_the_runtime_and_its_settings():
    info = get_device("litert", threads=2).info()
    assert info["device"] == "litert" and info["threads"] == 2 and info["backend"] == "litert"
    assert info["litert"] and info["litert_torch"] and "XNNPACK" in info["delegate"]
    assert {"litert", "litert_torch", "delegate", "threads"} <= set(DEVICES.get("litert").comparable_fields)


@needs_litert
def test_conversion_output_stays_off_stdout(capfd):
    device = get_device("litert")
    block = get_space("spos", "cifar10", width=0.25, resolution=8).layers[0].block("shuffle_k3")
    device.measure(block.build(), torch.randn(block.input_shape),
                   __import__("hwnas.timing.protocol", fromlist=["Protocol"]).Protocol(
                       warmup_s=0, min_block_s=0.0005, rounds=3, rotate=2, remeasure=0))
    out, err = capfd.readouterr()
    assert out == "" and "LiteRT-Torch Convert" not in err


@needs_litert
def test_a_target_times_litert_models_converted_on_the_host(one_thread):
    """`--on local`: the measuring process (the one that runs on a board with numpy and ai-edge-litert only)
    times .tflite models the host converted; the header names the runtime on both sides."""
    from hwnas.timing.protocol import Protocol
    from hwnas.profiler.remote import open_session
    from hwnas.profiler.targets import parse_target

    space = get_space("spos", "cifar10", width=0.25, resolution=8)
    blocks = [space.layers[0].block("shuffle_k3"), space.layers[4].block("xception")]
    quick = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=2, remeasure=0)
    with open_session(get_device("litert"), quick, parse_target("local")) as session:
        results = session.measure_blocks(blocks)
        header = session.device_header()
    assert {b.key for b in blocks} <= set(results) and all(results[b.key].min_ms > 0 for b in blocks)
    assert header["name"] == "litert" and header["target"] == "local"
    assert header["comparable"]["litert"] and header["comparable"]["litert_torch"]
    assert header["info"]["torch_loaded"] is False
