import json
import socket

import onnx
import pytest
import torch

from hwnas.devices import (
    DEVICES,
    Measurement,
    OrtMobileDevice,
    Protocol,
    Runner,
    get_device,
    interleaved_measure,
    list_devices,
)
from hwnas.devices.fingerprint import fingerprint_mismatches
from hwnas.errors import ConfigError, DeviceError, UnknownNameError

# Tiny blocks and times: these tests check behaviour, never speed.
FAST = Protocol(warmup_s=0.005, min_block_s=0.001, rounds=3, rotate=2, remeasure=0)


def conv_block() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU6())


def example() -> torch.Tensor:
    return torch.randn(1, 8, 8, 8)


class ScriptedRunner(Runner):
    """Returns scripted seconds per call and logs which runner ran, to test the protocol exactly."""

    def __init__(self, name: str, per_call: float, log: list[str], jitter: float = 0.0):
        self.name, self.per_call, self.log, self.jitter = name, per_call, log, jitter
        self.blocks: list[int] = []
        self.closed = False

    def time_block(self, number: int) -> float:
        self.log.append(self.name)
        self.blocks.append(number)
        # alternate slow and fast blocks when jitter is set, so that IQR/median is large
        return self.per_call * (1 + self.jitter * (len(self.blocks) % 2))

    def close(self) -> None:
        self.closed = True


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
    with pytest.raises(UnknownNameError, match="unknown device 'tpu'; known devices: cpu, cuda, ort-cpu, ort-mobile"):
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


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert DEVICES.get("cuda").availability() == (
        False, "device 'cuda' needs an NVIDIA GPU, but torch.cuda.is_available() is False"
    )
    message = r"^device 'cuda' needs an NVIDIA GPU, but torch.cuda.is_available\(\) is False$"
    with pytest.raises(DeviceError, match=message):
        get_device("cuda")


# --- protocol and measurement -------------------------------------------------------------------


def test_protocol_round_trips_and_rejects_unknown_settings():
    protocol = Protocol(rounds=5, rotate=2)
    assert Protocol.from_dict(json.loads(json.dumps(protocol.to_dict()))) == protocol
    with pytest.raises(ConfigError, match=r"but got unknown \['repeats'\]"):
        Protocol.from_dict({**protocol.to_dict(), "repeats": 3})


@pytest.mark.parametrize(
    "setting, message",
    [({"rounds": 2}, "rounds must be >= 3, but got rounds=2"), ({"rotate": 0}, "rotate must be >= 1, but got rotate=0"),
     ({"min_block_s": 0}, "min_block_s must be > 0, but got min_block_s=0")],
)
def test_protocol_validates_its_settings(setting, message):
    with pytest.raises(ConfigError, match=message):
        Protocol(**setting)


def test_measurement_statistics_and_json():
    m = Measurement.from_times([1.0, 2.0, 3.0, 4.0, 100.0], calls_per_block=10)
    assert (m.median_ms, m.iqr_ms, m.rounds) == (3.0, 2.0, 5)
    assert m.rel_iqr == pytest.approx(2 / 3)
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_calibration_sizes_blocks_to_the_target_after_warmup():
    runner = ScriptedRunner("a", per_call=1e-4, log=[])
    number = runner.calibrate(Protocol(warmup_s=0.05, min_block_s=0.01))
    assert number == 100
    assert sum(n * 1e-4 for n in runner.blocks) >= 0.05


def test_interleaved_rounds_time_every_runner_once_per_round():
    log: list[str] = []
    runners = {key: ScriptedRunner(key, per_call, log) for key, per_call in [("a", 1e-3), ("b", 2e-3), ("c", 5e-4)]}
    protocol = Protocol(warmup_s=0.0, min_block_s=0.004, rounds=5)
    results = interleaved_measure(runners, protocol)
    assert set(results) == {"a", "b", "c"}
    timed = log[-15:]  # calibration comes first, then 5 rounds of 3 blocks
    assert all(sorted(timed[i:i + 3]) == ["a", "b", "c"] for i in range(0, 15, 3))
    assert results["b"].median_ms == pytest.approx(2.0)
    assert results["b"].calls_per_block == 2
    assert all(m.rounds == 5 and m.attempts == 1 for m in results.values())
    assert not any(r.closed for r in runners.values())  # the caller owns the runners


@pytest.mark.parametrize("statistic", ["median", "min"])
def test_noisy_entries_are_remeasured_and_reference_joins_every_round(statistic):
    log: list[str] = []
    runners = {
        "calm": ScriptedRunner("calm", 1e-3, log),
        "noisy": ScriptedRunner("noisy", 1e-3, log, jitter=0.5),
        "ref": ScriptedRunner("ref", 1e-3, log),
    }
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=2, statistic=statistic)
    results = interleaved_measure(runners, protocol, reference="ref")
    assert results["calm"].attempts == 1 and results["calm"].rounds == 3
    assert results["noisy"].attempts == 3 and results["noisy"].rounds == 3
    assert results["ref"].rounds == 9  # every round of all three attempts
    assert log.count("calm") == 1 + 3  # one calibration block, then only the first attempt
    assert results["calm"].reference_ms == results["noisy"].reference_ms == pytest.approx(1.0)
    assert results["ref"].reference_ms is None


def test_each_entry_records_the_reference_of_the_rounds_it_kept():
    # the reference is slow (2 ms) in the first attempt and fast (1 ms) in the re-measurement
    ref = SequenceRunner([1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    noisy = SequenceRunner([1.0, 3.0, 3.0, 3.6, 1.5, 1.5, 1.8])
    calm = SequenceRunner([1.0, 4.0, 4.0, 4.0])
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=1)
    results = interleaved_measure({"ref": ref, "noisy": noisy, "calm": calm}, protocol, reference="ref")
    assert results["calm"].reference_ms == 2.0 and results["calm"].min_ms == 4.0
    assert results["noisy"].reference_ms == 1.0 and results["noisy"].min_ms == 1.5


class SequenceRunner(Runner):
    """Returns the scripted milliseconds per call, one per timed block."""

    def __init__(self, ms: list[float]):
        self.ms = iter(ms)

    def time_block(self, number: int) -> float:
        return next(self.ms) / 1e3

    def close(self) -> None:
        pass


@pytest.mark.parametrize("statistic, kept", [("median", [2.0, 2.0, 2.4]), ("min", [1.0, 2.0, 2.4])])
def test_remeasuring_keeps_the_calmest_attempt_or_the_fastest(statistic, kept):
    first, second = [2.0, 2.0, 2.4], [1.0, 2.0, 2.4]  # the second is noisier but has the fastest block
    runner = SequenceRunner([50.0, *first, *second])  # a calibration block comes first
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=1, statistic=statistic)
    result = interleaved_measure({"x": runner}, protocol)["x"]
    assert result.times_ms == pytest.approx(kept) and result.attempts == 2


def test_the_protocol_statistic_picks_the_latency():
    m = Measurement.from_times([3.0, 1.0, 2.0, 9.0], calls_per_block=1)
    assert Protocol(statistic="min").latency_ms(m) == m.min_ms == 1.0
    assert Protocol(statistic="median").latency_ms(m) == m.median_ms == 2.5
    assert Protocol().statistic == "min" and Protocol().drift_correction
    with pytest.raises(ConfigError, match="statistic must be one of min, median, but got statistic='mean'"):
        Protocol(statistic="mean")


def test_a_protocol_from_an_older_table_keeps_its_median_and_no_drift_correction():
    old = {k: v for k, v in Protocol().to_dict().items() if k not in ("statistic", "drift_correction")}
    restored = Protocol.from_dict(old)
    assert restored.statistic == "median" and not restored.drift_correction
    assert Protocol.from_dict(Protocol().to_dict()) == Protocol()


def test_reference_must_be_a_runner_key():
    with pytest.raises(ConfigError, match="reference must be one of the runner keys, but got reference='z'"):
        interleaved_measure({"a": ScriptedRunner("a", 1e-3, [])}, FAST, reference="z")


# --- real devices -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, precision", [("cpu", "fp32"), ("ort-mobile", "fp32"), ("ort-mobile", "int8"),
                                             ("ort-cpu", "fp32")])
def test_measure_returns_a_valid_measurement(name, precision):
    assert_valid(get_device(name, precision=precision).measure(conv_block(), example(), FAST), FAST.rounds)


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
