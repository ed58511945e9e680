"""Measuring on a target device: a `RemoteSession` does what a `MeasuringSession` does, with the timing done
by the measuring process on the target (`hwnas.profiler.targets`, `hwnas.timing.target_main`).

The host exports every block (or whole network) to ONNX as the device would time it (int8 quantised on the
host when asked), sends each model once, and asks the target to time a batch; the target runs the whole
protocol there (warm-up, interleaved rounds in shuffled order, the reference block every round, waiting
out bursts within one budget for the run, re-measuring noisy entries, rotating copies) and answers with one
measurement per entry. Drift correction then happens on the host as for any table. `open_session` gives
the session of a device on the host or on a target, so that building and validating tables is one code.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from hwnas.devices import Device
from hwnas.devices.litert import LiteRtDevice
from hwnas.devices.ort_mobile import OrtMobileDevice, input_names
from hwnas.errors import ConfigError
from hwnas.timing.protocol import Measurement, Protocol, batch_reference_ms
from hwnas.timing.runtimes import LiteRt, OnnxRuntime
from hwnas.profiler.android import AdbSession
from hwnas.profiler.session import REFERENCE_KEY, MeasuringSession, Session, TargetKind
from hwnas.profiler.adb import AdbTarget
from hwnas.profiler.targets import Connection, Target, governor_warning

log = logging.getLogger(__name__)

#: fingerprint fields of a target that must match for two of its tables to be compared, per runtime
TARGET_COMPARABLE = {"onnxruntime": ("machine", "cpu_model", "onnxruntime"), "litert": ("machine", "cpu_model", "litert")}
#: what the host contributes to a timed model and must match too, per runtime
HOST_COMPARABLE = {"onnxruntime": ("device", "threads", "batch_size", "precision", "torch", "exporter", "opset",
                                   "quantization", "execution_provider", "graph_optimization", "disabled_optimizers",
                                   "execution_mode", "inter_op_threads"),
                   "litert": ("device", "threads", "batch_size", "precision", "torch", "litert_torch", "delegate")}


class RemoteSession(Session):
    """One run of measurements of ``device`` (``ort-mobile``, ``ort-cpu`` or ``litert``) on ``target`` under
    ``protocol``, through one connection; ``pin`` names the target's CPUs to run on, ``keep`` keeps its work
    directory. Models are made on the host (ONNX export, or LiteRT conversion) and only timed there."""

    def __init__(self, device: Device, protocol: Protocol, target: Target, *, keep: bool = False,
                 pin: list[int] | None = None):
        if not isinstance(device, (OrtMobileDevice, LiteRtDevice)):
            raise ConfigError(f"a target runs ONNX Runtime devices (ort-mobile, ort-cpu) and litert, but got device "
                              f"{device.name!r}")
        self.device, self.protocol, self.target = device, protocol, target
        runtime = (OnnxRuntime(device.session_settings) if isinstance(device, OrtMobileDevice)
                   else LiteRt(device.threads))
        self.runtime = runtime.name
        self.references: list[float] = []
        self._sent: set[str] = set()
        self.connection = Connection(target, keep=keep, runtime=self.runtime)
        settings = runtime.settings()
        try:
            answer = self.connection.request({"op": "configure", "protocol": protocol.to_dict(),
                                              "runtime": self.runtime, **settings, "pin": pin})
        except BaseException:
            self.connection.close()
            raise
        self.fingerprint, self.workdir = answer["fingerprint"], answer["workdir"]
        self.pin = pin
        warning = governor_warning(target.url, self.fingerprint)
        if warning:
            log.warning(warning)

    def device_header(self) -> dict[str, Any]:
        """The table header's ``device``: the host's export (or conversion) settings and the target's own
        fingerprint."""
        device = self.device
        if isinstance(device, OrtMobileDevice):
            import onnx

            made = {"onnx": onnx.__version__, **device.export_info(), **device.session_settings.describe()}
        else:
            host = device.info()
            made = {k: host[k] for k in ("backend", "litert_torch", "delegate")}
        info = {"device": device.name, "threads": device.threads, "batch_size": device.batch_size,
                "precision": device.precision, "torch": torch.__version__, **made, **self.fingerprint,
                "pinned_cpus": self.pin, "target": self.target.url}
        fields = HOST_COMPARABLE[self.runtime] + TARGET_COMPARABLE[self.runtime]
        return {"name": device.name, "target": self.target.url, "comparable": {k: info[k] for k in fields},
                "info": info}

    def _entry(self, key: Hashable, module: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
        device = self.device
        model = (device.onnx_model(module, example) if isinstance(device, OrtMobileDevice)
                 else device.tflite_model(module, example))
        digest = hashlib.sha256(model).hexdigest()
        args = example if isinstance(example, tuple) else (example,)
        entry = {"key": str(key), "sha256": digest,
                 "inputs": [{"name": name, "shape": list(arg.shape), "dtype": "float32" if arg.is_floating_point()
                             else str(arg.dtype).replace("torch.", "")} for name, arg in zip(input_names(len(args)),
                                                                                              args)]}
        if digest not in self._sent:
            entry["model"] = base64.b64encode(model).decode()
        return entry

    def measure(self, modules: Mapping[Hashable, tuple[torch.nn.Module, torch.Tensor]], *,
                reference: Hashable | None = REFERENCE_KEY, seed: int = 0,
                steady_ms: float | None = None) -> dict[Hashable, Measurement]:
        """Export every (module, example), time them as one batch on the target, and return their
        measurements under the caller's keys (see `MeasuringSession.measure`)."""
        keys = {str(key): key for key in modules}
        entries = [self._entry(key, module, example) for key, (module, example) in modules.items()]
        steady = steady_ms if steady_ms is not None else self.steady_ms() if reference is not None else None
        answer = self.connection.request({"op": "measure", "entries": entries, "seed": seed, "steady_ms": steady,
                                          "reference": None if reference is None else str(reference)})
        self._sent.update(entry["sha256"] for entry in entries)
        results = {keys[key]: Measurement.from_dict(data) for key, data in answer["results"].items()}
        if reference is not None:
            self.references.append(batch_reference_ms(results, reference))
        return results

    def temperature_c(self) -> float | None:
        """The target's temperature now (the end of a run)."""
        return self.connection.request({"op": "fingerprint"})["fingerprint"].get("temperature_c")

    def close(self) -> None:
        answer = self.connection.close()
        if answer is not None and not answer.get("removed"):
            log.info("the work directory %s on %s is kept", answer.get("workdir"), self.target.url)


#: the session of each kind of target (`hwnas.profiler.targets.TARGETS`)
SESSIONS: dict[type[TargetKind], type[Session]] = {Target: RemoteSession, AdbTarget: AdbSession}


@contextmanager
def open_session(device: Device, protocol: Protocol, target: TargetKind | None = None, *, keep: bool = False,
                 pin: list[int] | None = None) -> Iterator[Session]:
    """The measuring session of ``device``: on this host, or on ``target`` (a board over ssh, a separate local
    process, an Android phone: the session `SESSIONS` registers for its kind); closed on leaving."""
    if target is None:
        if pin is not None or keep:
            raise ConfigError("--pin and --keep apply to measurements on a target (--on TARGET)")
        yield MeasuringSession(device, protocol)
        return
    session = SESSIONS[type(target)](device, protocol, target, keep=keep, pin=pin)  # type: ignore[call-arg]
    try:
        yield session
    finally:
        session.close()
