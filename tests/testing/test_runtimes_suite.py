"""`hwnas.testing.runtimes` over every registered runtime (those whose library is missing here skipped, saying
why), and proof that it catches a runtime that breaks the contract."""

import pytest
import torch

from hwnas.devices.litert import no_zero_weights
from hwnas.testing.devices import tiny_block, tiny_example
from hwnas.testing.runtimes import check_declarations, check_runtime, check_settings
from hwnas.timing.runtimes import RUNTIMES, LiteRt, Runtime, get_runtime


def model_of(name: str, module: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, dict]:
    """The model bytes of ``module`` in runtime ``name``'s format, made as the host's device for it makes them,
    and the runtime's settings."""
    if name == "onnxruntime":
        from hwnas.devices.ort_mobile import OrtMobileDevice

        device = OrtMobileDevice(threads=1)
        return device.onnx_model(module, example), {"session": device.session_settings.to_dict()}
    if name == "litert":
        pytest.importorskip("litert_torch", reason="the hwnas[litert] extra is not installed here")
        from hwnas.devices.litert import LiteRtDevice

        return LiteRtDevice(threads=1).tflite_model(module, example), {"threads": 1}
    raise AssertionError(f"no model maker for runtime {name!r}: add one here")


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_conforms(name, one_thread):
    if RUNTIMES[name].missing():
        check_declarations(name, RUNTIMES[name])
        pytest.skip(f"runtime {name!r} lacks {RUNTIMES[name].missing()} here; only its declarations were checked")
    module, example = tiny_block().eval(), tiny_example()
    no_zero_weights(module)  # as the litert device does before converting, so every runtime gets one model
    with torch.no_grad():
        expected = [module(example).numpy()]
    model, settings = model_of(name, module, example)
    assert check_runtime(name, settings, model, {"input0": example.numpy()}, expected)


def test_the_registry_refuses_a_second_runtime_of_one_name():
    from hwnas.timing.runtimes import register

    with pytest.raises(ValueError, match="'litert' is already registered"):
        register(type("Again", (LiteRt,), {}))


def test_an_unknown_runtime_names_the_known_ones():
    with pytest.raises(ValueError, match="litert, onnxruntime, but got 'tvm'"):
        get_runtime("tvm", {})


def test_litert_refuses_bad_threads():
    with pytest.raises(ValueError, match="integer >= 1, but got 0"):
        LiteRt.from_settings({"threads": 0})


class ForgetsItsThreads(LiteRt):
    name = "forgets"

    def settings(self):
        return {"threads": 1}


def test_the_suite_catches_settings_that_do_not_round_trip(monkeypatch):
    monkeypatch.setitem(RUNTIMES, "forgets", ForgetsItsThreads)
    monkeypatch.setattr(ForgetsItsThreads, "version", classmethod(lambda cls: "1.0"))
    with pytest.raises(AssertionError, match="from_settings"):
        check_settings("forgets", {"threads": 2})


class NoNumpy(Runtime):
    name = "nonumpy"
    modules = ("tvm",)
    pip_names = ("apache-tvm",)
    suffix = ".so"
    distribution = "apache-tvm"


def test_the_suite_catches_a_runtime_that_forgets_numpy():
    with pytest.raises(AssertionError, match="numpy first"):
        check_declarations("nonumpy", NoNumpy)


def test_a_target_is_told_what_a_runtime_needs():
    assert LiteRt.pip_command("/opt/py") == "/opt/py -m pip install numpy ai-edge-litert"
    assert RUNTIMES["onnxruntime"].missing() == []
