"""The measuring process on a target device: it runs the protocol (`hwnas.timing.protocol`) on ONNX
Runtime sessions (`hwnas.timing.ort`) or LiteRT interpreters (`hwnas.timing.litert`) and
answers requests from the host, one JSON line each.

It needs Python >= 3.8 with numpy and the runtime (onnxruntime, or ai-edge-litert) and nothing else: the host
copies it, with the modules it uses, into a work directory on the target (`hwnas.profiler.targets`); a runtime
is imported only when asked for. Requests:

- ``configure``: the protocol, the runtime (``onnxruntime`` with its session settings, or ``litert`` with its
  threads) and the cores to pin to; the answer is the target's fingerprint;
- ``measure``: a batch of models (ONNX or .tflite bytes, sent once and kept in the work directory under their digest)
  with their input shapes, the reference's key, the seed and the steady level of the reference; the answer
  is one measurement per key, taken exactly as `measure_batch` takes them on the host, with one `CalmWatch`
  (its budget) for the whole run;
- ``fingerprint``: the fingerprint again (the temperature at the end of a run);
- ``bye``: remove the work directory (unless asked to keep it) and stop.

A request that fails is answered with ``{"error": "..."}`` in one line; the process goes on. When it failed
because the disk filled (a model that does not fit in the work directory), the answer also says
``"full": {"folder": ..., "reason": ...}``: the folder the work directory is in and the system's reason. A model
that does not fit leaves no partial file behind.
"""

from __future__ import annotations

import base64
import errno
import glob
import hashlib
import json
import os
import platform
import shutil
import signal
import sys
import threading
from typing import Any, Dict, Optional

from hwnas.timing.runners import random_feeds
from hwnas.timing.protocol import CalmWatch, Protocol, measure_batch
from hwnas.timing.runtimes import LiteRt, Runtime, get_runtime

#: the errors of a disk that is full (or of the user's share of it)
FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model", "uarch"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _temperature_c() -> Optional[float]:
    """The hottest thermal zone the kernel reports, in degrees Celsius (None where none is readable)."""
    readings = [_read(p) for p in glob.glob("/sys/class/thermal/thermal_zone*/temp")]
    values = [int(r) / 1000 for r in readings if r and r.lstrip("-").isdigit()]
    return max(values) if values else None


def fingerprint(threads: Optional[int] = None) -> Dict[str, Any]:
    """What a latency on this machine depends on: processor, cores, frequency policy, temperature, system,
    library versions. Host-independent (no host name), so two boards of one kind compare equal."""
    import importlib.util

    import numpy

    ort = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

    cpu = "/sys/devices/system/cpu/cpu0/cpufreq"
    cur, top = _read(f"{cpu}/scaling_cur_freq"), _read(f"{cpu}/cpuinfo_max_freq")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "machine": platform.machine(), "cpu_model": _cpu_model(), "cores_online": os.cpu_count(),
        "usable_cores": usable, "governor": _read(f"{cpu}/scaling_governor"),
        "cpu_mhz": round(int(cur) / 1000) if cur and cur.isdigit() else None,
        "cpu_max_mhz": round(int(top) / 1000) if top and top.isdigit() else None,
        "temperature_c": _temperature_c(), "os": platform.system(), "kernel": platform.release(),
        "python": platform.python_version(), "numpy": numpy.__version__,
        "onnxruntime": None if ort is None else ort.__version__,
        "execution_providers": None if ort is None else ",".join(ort.get_available_providers()),
        "litert": LiteRt.version(), "threads": threads,
        "torch_loaded": "torch" in sys.modules,
    }


class Server:
    """The state of one run on the target: its work directory, settings, models and calm watch."""

    def __init__(self, workdir: str, keep: bool):
        self.workdir, self.keep = workdir, keep
        self.models = os.path.join(workdir, "models")
        os.makedirs(self.models, exist_ok=True)
        self.protocol: Optional[Protocol] = None
        self.runtime: Optional[Runtime] = None
        self.watch: Optional[CalmWatch] = None

    def configure(self, request: Dict[str, Any]) -> Dict[str, Any]:
        self.protocol = Protocol.from_dict(request["protocol"])
        self.runtime = get_runtime(request.get("runtime", "onnxruntime"), request)
        self.watch = CalmWatch(self.protocol)
        if request.get("pin"):
            if not hasattr(os, "sched_setaffinity"):
                raise OSError(f"pinning needs sched_setaffinity, which {platform.system()} lacks")
            os.sched_setaffinity(0, set(request["pin"]))
        return {"fingerprint": fingerprint(self.runtime.threads), "workdir": self.workdir}

    def _model(self, entry: Dict[str, Any]) -> bytes:
        assert self.runtime is not None
        path = os.path.join(self.models, f"{entry['sha256']}{self.runtime.suffix}")
        if entry.get("model") is not None:
            data = base64.b64decode(entry["model"])
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ValueError(f"model {entry['key']} arrived damaged (its digest does not match)")
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except OSError:
                if os.path.exists(path):
                    os.remove(path)  # no partial model: the digest names only whole ones
                raise
            return data
        with open(path, "rb") as f:
            return f.read()

    def measure(self, request: Dict[str, Any]) -> Dict[str, Any]:
        if self.protocol is None or self.runtime is None:
            raise RuntimeError("a measurement needs a configure request first")
        runners = {}
        try:
            for i, entry in enumerate(request["entries"]):
                model = self._model(entry)
                feeds = random_feeds(entry["inputs"], self.protocol.rotate, seed=request["seed"] + i)
                runners[entry["key"]] = self.runtime.runner(model, feeds)
            watch = self.watch if self.protocol.drift_correction else None
            results = measure_batch(runners, self.protocol, reference=request.get("reference"),
                                    seed=request["seed"], steady_ms=request.get("steady_ms"), watch=watch)
        finally:
            for runner in runners.values():
                runner.close()
        return {"results": {key: m.to_dict() for key, m in results.items()},
                "waited_s": None if self.watch is None else self.watch.waited_s}

    def bye(self) -> Dict[str, Any]:
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return {"removed": not self.keep, "workdir": self.workdir}

    def handle(self, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request.get("op")
        if op == "configure":
            return self.configure(request)
        if op == "measure":
            return self.measure(request)
        if op == "fingerprint":
            return {"fingerprint": fingerprint(None if self.runtime is None else self.runtime.threads)}
        if op == "bye":
            return self.bye()
        raise ValueError(f"unknown request {op!r}")


def serve(workdir: str, keep: bool, stdin=None, stdout=None) -> None:
    """Answer requests, one JSON line each, until ``bye`` or the end of the input; the work directory is
    removed (unless kept) however this ends: a bye, the host gone, a hang-up or termination signal."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    server = Server(workdir, keep)
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
            previous[name] = signal.signal(getattr(signal, name), _leave)
    try:
        _answer(server, workdir, stdin, stdout)
    finally:
        server.bye()
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _leave(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _answer(server: "Server", workdir: str, stdin, stdout) -> None:
    answer: Dict[str, Any] = {"hello": fingerprint(), "workdir": workdir}
    while True:
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
        if answer.get("removed") is not None:
            return
        line = stdin.readline()
        if not line:
            return  # the host went away: nothing more will be asked
        try:
            answer = server.handle(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the host, in one line
            answer = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]}
            if isinstance(exc, OSError) and exc.errno in FULL:
                answer["full"] = {"folder": os.path.dirname(os.path.abspath(workdir)), "reason": exc.strerror}
