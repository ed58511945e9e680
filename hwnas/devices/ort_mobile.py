"""``ort-mobile`` and ``ort-cpu``: the block exported to ONNX and run in ONNX Runtime's CPU provider.

``ort-mobile`` is the proxy for a phone's big core. It runs what ONNX Runtime's own mobile converter
(``convert_onnx_models_to_ort``) prepares: all graph optimisations except the x86-only
``NchwcTransformer``, whose blocked memory layout no ARM build has, on one intra-op thread with
sequential execution. ``ort-cpu`` is the same block as a server would run it: every optimisation
and all usable cores.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import torch

from hwnas.devices.base import Device, Example
from hwnas.devices.cpu import torch_copies
from hwnas.errors import DeviceError, OutputError, require
from hwnas.timing.ort import PROVIDER, SessionSettings
from hwnas.timing.protocol import Protocol, Runner
from hwnas.timing.runtimes import OnnxRuntime
from hwnas.threads import usable_cores
EXPORTERS = ("torchscript", "dynamo")
# Pinned so that a torch upgrade that moves the exporter's default opset cannot silently change the
# graph; 18 is the lowest opset the dynamo exporter emits natively.
OPSET = 18
CALIBRATION_SAMPLES = 8
QUANTIZATION = (
    f"static QDQ, int8 activations, per-channel int8 weights, MinMax calibration on {CALIBRATION_SAMPLES} "
    "standard-normal inputs"
)


def _quantize_int8(fp32: Path, int8: Path, like: dict[str, np.ndarray]) -> None:
    """Quantise ``fp32`` statically to QDQ int8 at ``int8``, calibrated on a few seeded
    standard-normal inputs shaped like ``like``: latency depends on the quantised graph, not on how
    well its scales fit real data."""
    # Imported here, not at the top: onnxruntime.quantization pulls in torch's C++ extension tools,
    # which log a CUDA_HOME warning on every CPU-only start-up, fp32 runs included.
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    rng = np.random.default_rng(0)
    samples = [
        {name: rng.standard_normal(array.shape).astype(array.dtype) for name, array in like.items()}
        for _ in range(CALIBRATION_SAMPLES)
    ]
    # ONNX Runtime's recommended pre-processing (shape inference, constant folding); without it some
    # convolutions of a TorchScript export stay in float.
    prepared = int8.with_name("prepared.onnx")
    quant_pre_process(fp32, prepared)
    quantize_static(
        prepared, int8, _SampleReader(samples), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
    )


class _SampleReader:
    """The calibration-reader protocol of ``quantize_static``: ``get_next`` until it returns None."""

    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self._samples = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def input_names(count: int) -> list[str]:
    return [f"input{i}" for i in range(count)]


def export_onnx(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path, exporter: str) -> None:
    """Export an fp32 CPU copy of ``module`` to one self-contained .onnx file at ``path``.

    ``torchscript`` (``dynamo=False``) is the default: it exports a small block in ~20 ms against
    ~1 s for the ``dynamo`` exporter, which matters over the hundreds of blocks of a table, and
    its deprecation warning is silenced here. ``dynamo`` is the exporter torch develops further.
    """
    [(block, inputs)] = torch_copies(module, args, 1, torch.device("cpu"), torch.float32)
    # the torchscript exporter writes into memory, so that a full disk is told as one (torch's writer would
    # report it as an export failure); the dynamo exporter takes a path only
    target: Any = io.BytesIO() if exporter != "dynamo" else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                block, inputs, target, input_names=input_names(len(inputs)), opset_version=OPSET,
                dynamo=exporter == "dynamo", external_data=False, verbose=False,
            )
    except OSError as error:
        raise OutputError(f"{path} could not be written ({error.strerror or error})",
                              error.strerror or str(error)) from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DeviceError(
            f"blocks timed in ONNX Runtime must export to ONNX, but torch.onnx.export ({exporter} exporter) "
            f"failed on {type(module).__name__}: {first_line}"
        ) from error
    if isinstance(target, io.BytesIO):
        try:
            Path(path).write_bytes(target.getvalue())
        except OSError as error:
            raise OutputError(f"{path} could not be written ({error.strerror or error})",
                              error.strerror or str(error)) from None


class OrtMobileDevice(Device):
    """ONNX Runtime CPU execution provider configured as the mobile converter configures it.

    ``precision="int8"`` quantises the exported block statically to QDQ form (see ``QUANTIZATION``):
    signed int8 with QDQ is ONNX Runtime's recommended default, and per-channel weights are what
    mobile int8 toolchains use for depthwise convolutions.
    """

    name = "ort-mobile"
    precisions = ("fp32", "int8")
    disabled_optimizers: ClassVar[tuple[str, ...]] = ("NchwcTransformer",)
    comparable_fields = Device.comparable_fields + (
        "onnxruntime", "exporter", "opset", "execution_provider", "graph_optimization", "disabled_optimizers",
        "execution_mode", "inter_op_threads", "quantization",
    )

    def __init__(
        self, *, threads: int | None = None, batch_size: int = 1, precision: str | None = None,
        exporter: str = "torchscript",
    ):
        super().__init__(threads=threads, batch_size=batch_size, precision=precision)
        require(exporter in EXPORTERS, f"exporter must be one of {', '.join(EXPORTERS)}, but got exporter={exporter!r}")
        self.exporter = exporter

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if PROVIDER not in ort.get_available_providers():
            return False, (
                f"device {cls.name!r} needs ONNX Runtime's {PROVIDER}, but this onnxruntime build offers "
                f"{', '.join(ort.get_available_providers())}"
            )
        return True, f"ONNX Runtime {ort.__version__} {PROVIDER}"

    @property
    def session_settings(self) -> SessionSettings:
        """How this device configures ONNX Runtime (the same settings on the host and on a target)."""
        return SessionSettings(self.threads, tuple(self.disabled_optimizers))

    def session_options(self) -> ort.SessionOptions:
        return self.session_settings.options()

    def create_session(self, model: bytes, *, optimized_model_path: Path | None = None) -> ort.InferenceSession:
        """A session on ``model`` with this device's settings; ``optimized_model_path`` also writes the
        graph ONNX Runtime actually runs, to check which optimisations applied."""
        return self.session_settings.create(model, None if optimized_model_path is None else str(optimized_model_path))

    def info(self) -> dict[str, Any]:
        return {**super().info(), **self.export_info(), **self.session_settings.describe()}

    def export_info(self) -> dict[str, Any]:
        """What the host contributes to a timed model: the exporter and its settings, the quantisation."""
        return {"backend": "onnxruntime", "exporter": self.exporter, "opset": OPSET,
                "quantization": QUANTIZATION if self.precision == "int8" else "none"}

    def onnx_model(self, module: torch.nn.Module, example: Example) -> bytes:
        """The single-file ONNX model that this device times for ``module`` (int8 when so configured)."""
        return self._model(module, self.example_args(example))

    def _model(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> bytes:
        with tempfile.TemporaryDirectory(prefix="hwnas-onnx-") as tmp:
            fp32 = Path(tmp) / "block.onnx"
            export_onnx(module, args, fp32, self.exporter)
            if self.precision == "fp32":
                return fp32.read_bytes()
            int8 = Path(tmp) / "block.int8.onnx"
            _quantize_int8(fp32, int8, _feed(args))
            return int8.read_bytes()

    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        model = self._model(module, args)
        feed = _feed(args)
        return OnnxRuntime(self.session_settings).runner(
            model, [{name: array.copy() for name, array in feed.items()} for _ in range(protocol.rotate)])


class OrtCpuDevice(OrtMobileDevice):
    """ONNX Runtime's CPU provider as a server runs it: every optimisation and all usable cores."""

    name = "ort-cpu"
    disabled_optimizers = ()

    @classmethod
    def default_threads(cls) -> int:
        return usable_cores()


def _feed(args: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    """Inputs as the fp32 (or integer) numpy arrays the exported graph expects."""
    arrays = [arg.detach().cpu().to(torch.float32 if arg.is_floating_point() else arg.dtype).numpy() for arg in args]
    return dict(zip(input_names(len(args)), arrays, strict=True))
