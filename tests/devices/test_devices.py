"""The device contract: the registry, each backend's settings and runners, and fingerprints. The protocol the
runners are timed with is tested on scripted runners in tests/profiler/test_protocol.py."""

import json
import socket

import onnx
import pytest
import torch

from hwnas.devices import DEVICES, OrtMobileDevice, get_device, list_devices
from hwnas.timing.protocol import Measurement, Protocol, Runner, interleaved_measure
from hwnas.devices.fingerprint import fingerprint_mismatches
from hwnas.errors import ConfigError, DeviceError, UnknownNameError

# Tiny blocks and times: these tests check behaviour, never speed.
FAST = Protocol(warmup_s=0.005, min_block_s=0.001, rounds=3, rotate=2, remeasure=0)


def conv_block() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6())


def example() -> torch.Tensor:
    return torch.randn(1, 8, 8, 8)


def assert_valid(m: Measurement, rounds: int) -> None:
    assert m.median_ms > 0
    assert m.iqr_ms >= 0
    assert m.rounds == len(m.times_ms) == rounds
    assert m.calls_per_block >= 1
    assert all(t > 0 for t in m.times_ms)


# --- registry and arguments ---------------------------------------------------------------------


def test_registry_lists_the_devices():
    assert {"cpu", "cuda", "ort-mobile", "ort-cpu"} <= set(list_devices())
    assert all(DEVICES.get(name).name == name for name in list_devices())


def test_unknown_device_lists_known_names():
    with pytest.raises(UnknownNameError, match="unknown device 'tpu'; known devices: cpu, cuda, executorch, litert, ort-cpu, ort-mobile"):
        get_device("tpu")


@pytest.mark.parametrize("threads", [0, -2])
def test_threads_must_be_positive(threads):
    with pytest.raises(ConfigError, match=f"threads must be >= 1, but got threads={threads}"):
        get_device("cpu", threads=threads)


def test_batch_size_must_be_positive():
    with pytest.raises(ConfigError, match="batch_size must be >= 1, but got batch_size=0"):
        get_device("ort-mobile", batch_size=0)


def test_int8_is_only_for_onnx_runtime_devices():
    with pytest.raises(ConfigError, match=r"device 'cpu' supports precision fp32, but got precision='int8' "
                                          r"\(int8 is measured by ort-mobile, ort-cpu\)"):
        get_device("cpu", precision="int8")


def test_unknown_exporter_is_rejected():
    with pytest.raises(ConfigError, match="exporter must be one of torchscript, dynamo, but got exporter='jit'"):
        get_device("ort-mobile", exporter="jit")


def test_example_batch_must_match_the_device():
    with pytest.raises(ConfigError, match=r"example batch must equal the device's batch_size=1, but got input "
                                          r"shapes \[\(2, 8, 8, 8\)\]"):
        get_device("cpu").prepare(conv_block(), torch.randn(2, 8, 8, 8))


def test_example_must_be_tensors():
    with pytest.raises(ConfigError, match="example must be a tensor or a non-empty tuple of tensors, but got list"):
        get_device("cpu").prepare(conv_block(), [example()])
    with pytest.raises(ConfigError, match="example must be a tensor or a non-empty tuple of tensors, but got tuple"):
        get_device("cpu").prepare(conv_block(), ())


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert DEVICES.get("cuda").availability() == (
        False, "device 'cuda' needs an NVIDIA GPU, but torch.cuda.is_available() is False"
    )
    message = r"^device 'cuda' needs an NVIDIA GPU, but torch.cuda.is_available\(\) is False$"
    with pytest.raises(DeviceError, match=message):
        get_device("cuda")


# --- real devices -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, precision", [("cpu", "fp32"), ("ort-mobile", "fp32"), ("ort-mobile", "int8"),
                                             ("ort-cpu", "fp32")])
def test_measure_returns_a_valid_measurement(name, precision):
    assert_valid(get_device(name, precision=precision).measure(conv_block(), example(), FAST), FAST.rounds)


@pytest.mark.parametrize("name", ["cpu", "ort-mobile", "ort-cpu"])
def test_a_runner_times_calls_and_closes_twice(name):
    """The runner contract: `time_block` returns seconds per call; `close` may be called again."""
    runner = get_device(name).prepare(conv_block(), example(), FAST)
    assert isinstance(runner, Runner)
    assert runner.time_block(3) > 0
    runner.close()
    runner.close()


def test_devices_in_one_interleaved_batch():
    cpu, ort_mobile = get_device("cpu"), get_device("ort-mobile")
    block, x = conv_block(), example()
    with cpu.prepare(block, x, FAST) as a, ort_mobile.prepare(block, x, FAST) as b:
        results = interleaved_measure({"cpu": a, "ort": b}, FAST)
    assert set(results) == {"cpu", "ort"}
    for m in results.values():
        assert_valid(m, FAST.rounds)


def test_cpu_pins_threads_cycles_copies_and_leaves_the_callers_module_alone():
    seen: list[tuple[int, int]] = []  # (torch threads, weight address) per call, shared by all copies

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(4))

        def forward(self, x):
            seen.append((torch.get_num_threads(), self.weight.data_ptr()))
            return x * self.weight

    probe = Probe().train()
    before = torch.get_num_threads()
    with get_device("cpu", threads=1).prepare(probe, torch.randn(1, 4), Protocol(rotate=3)) as runner:
        runner.time_block(30)
    assert torch.get_num_threads() == before
    assert {threads for threads, _ in seen} == {1}
    assert len({ptr for _, ptr in seen}) == 3
    assert probe.weight.data_ptr() not in {ptr for _, ptr in seen}
    assert probe.training


def test_int8_model_is_quantized_to_qdq():
    model = onnx.load_from_string(get_device("ort-mobile", precision="int8").onnx_model(conv_block(), example()))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def _optimized_domains(device: OrtMobileDevice, tmp_path) -> set[str]:
    path = tmp_path / f"{device.name}.optimized.onnx"
    device.create_session(device.onnx_model(conv_block(), example()), optimized_model_path=path)
    return {node.domain for node in onnx.load(str(path)).graph.node}


def test_ort_mobile_runs_one_thread_sequentially_without_nchwc(tmp_path):
    device = get_device("ort-mobile")
    with device.prepare(conv_block(), example(), FAST) as runner:
        assert len(runner.sessions) == FAST.rotate
        options = runner.sessions[0].get_session_options()
        assert runner.sessions[0].get_providers() == ["CPUExecutionProvider"]
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode.name == "ORT_SEQUENTIAL"
    assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
    assert "com.microsoft.nchwc" not in _optimized_domains(device, tmp_path)


def test_ort_cpu_keeps_nchwc_where_the_cpu_has_it(tmp_path):
    """Shows that the check above can see the NCHWc rewrite at all."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("ONNX Runtime applies NCHWc only on AVX2/AVX-512 x86 CPUs")
    device = get_device("ort-cpu")
    assert device.threads >= 1 and device.info()["disabled_optimizers"] == ""
    assert "com.microsoft.nchwc" in _optimized_domains(device, tmp_path)


def test_failed_export_is_one_line_device_error():
    class Svd(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x)[1]

    with pytest.raises(DeviceError, match=r"^blocks timed in ONNX Runtime must export to ONNX, but torch.onnx.export "
                                          r"\(torchscript exporter\) failed on Svd: [^\n]*$"):
        get_device("ort-mobile").prepare(Svd(), torch.randn(1, 4, 4))


@pytest.mark.slow
def test_dynamo_exporter_gives_a_runnable_model():
    device = get_device("ort-mobile", exporter="dynamo")
    assert_valid(device.measure(conv_block(), example(), FAST), FAST.rounds)
    assert device.info()["exporter"] == "dynamo"


# --- fingerprints -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cpu", "ort-mobile"])
def test_fingerprint_has_the_fields_a_table_needs(name):
    device = get_device(name)
    info = device.info()
    for field in ("device", "threads", "batch_size", "precision", "cpu_model", "cpu_capability", "physical_cores",
                  "logical_cores", "python", "torch", "onnxruntime", "onnx"):
        assert field in info, field
    assert info["device"] == name and info["threads"] == 1 and info["precision"] == "fp32"
    json.dumps(info)
    key = device.fingerprint_key()
    assert key.items() <= info.items()
    assert socket.gethostname() not in json.dumps(info)


def test_fingerprint_key_tells_settings_apart():
    one, two = get_device("ort-mobile").fingerprint_key(), get_device("ort-mobile", precision="int8").fingerprint_key()
    assert fingerprint_mismatches(one, one) == []
    assert "precision: 'fp32' != 'int8'" in fingerprint_mismatches(one, two)
    assert get_device("ort-mobile").info()["disabled_optimizers"] == "NchwcTransformer"


# --- cuda ---------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("settings", [{}, {"cuda_graphs": True}, {"precision": "fp16"}])
def test_cuda_measure(settings):
    device = get_device("cuda", **settings)
    block = conv_block()
    assert_valid(device.measure(block, example(), FAST), FAST.rounds)
    assert next(block.parameters()).device.type == "cpu"  # the caller's module stays where it was
    info = device.info()
    assert info["gpu_name"] and info["cuda_runtime"] and info["cuda_graphs"] == settings.get("cuda_graphs", False)
