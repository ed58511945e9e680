"""Measuring on an Android phone (``--on adb://SERIAL?benchmark=PATH``, transport in `hwnas.profiler.adb`): an
`AdbSession` does what a `MeasuringSession` does, with each model timed by the runtime's own benchmark program on
the phone (LiteRT's ``benchmark_model``), since a phone runs no Python.

The host converts every block (or whole network) to .tflite as the ``litert`` device does, pushes each model once
into the run's work folder on the phone, beside the benchmark program, and times the batch with the same protocol
as any table (`hwnas.timing.protocol.measure_batch`: calibration, interleaved rounds in shuffled order, the
reference block every round, waiting out bursts, re-measuring noisy entries, drift correction on the host).

How samples map to ``benchmark_model``: each model gets a `BenchmarkRunner`, and one call of its ``time_block(n)``
is one ``adb shell`` run of ``benchmark_model --graph=MODEL --num_runs=n --min_secs=0 --warmup_runs=w
--warmup_min_secs=0 --num_threads=T --use_xnnpack=true`` (under ``taskset MASK`` with ``--pin``), with
``w = max(2, ceil(n / 10))`` untimed warm-up runs first (every block is a fresh process on a cold cache);
the block's time per call is the program's own ``Inference (avg)`` over its ``n`` timed runs, without
interpreter creation, model loading or process start-up. Calibration thus sizes ``n`` so that one run of the
program times about ``Protocol.min_block_s`` of inference, and a round is one program run per model.
``rotate`` (copies of weights and inputs) does not apply: the program times one interpreter on one model.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import shlex
import tempfile
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.devices import Device
from hwnas.devices.litert import LiteRtDevice
from hwnas.errors import ConfigError, TargetError
from hwnas.profiler.adb import AdbTarget, Phone, abi_mismatch, big_cores, last_line
from hwnas.profiler.session import REFERENCE_KEY, Session
from hwnas.timing.protocol import CalmWatch, Measurement, Protocol, Runner
from hwnas.timing.runners import package_version

log = logging.getLogger(__name__)

DELEGATE = "XNNPACK (benchmark_model --use_xnnpack=true)"
#: untimed warm-up runs per timed run of the program (at least 2)
WARMUP_SHARE = 0.1
#: fingerprint fields that must match for two tables of a phone to be compared
COMPARABLE = ("device", "threads", "batch_size", "precision", "torch", "litert_torch", "delegate", "benchmark_sha256",
              "manufacturer", "model", "soc", "abi", "android", "sdk")
NEEDS_BENCHMARK = ("an adb target needs the benchmark program to run on the phone: --on adb://SERIAL?benchmark=PATH, "
                   "PATH being LiteRT's benchmark_model for Android on this host (see the README)")

_NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_FIELDS = {"init_us": r"Init:\s*", "first_us": r"First inference:\s*", "warmup_avg_us": r"Warmup \(avg\):\s*",
           "inference_avg_us": r"Inference \(avg\):\s*"}
#: the summary of TensorFlow Lite <= 2.2: "Average inference timings in us: Warmup: W, Init: I, no stats: X"
_OLD = re.compile(r"Average inference timings in us:\s*Warmup:\s*" + _NUMBER + r",\s*Init:\s*" + _NUMBER +
                  r",\s*no stats:\s*" + _NUMBER)
_COUNT = re.compile(r"count=(\d+)")


@dataclass(frozen=True)
class BenchmarkTimings:
    """What one run of ``benchmark_model`` reports, in microseconds; ``runs``: the timed runs it counted."""

    inference_avg_us: float
    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    runs: int | None = None


def parse_benchmark_output(text: str) -> BenchmarkTimings:
    """The timings in ``benchmark_model``'s output (stdout and stderr together: it logs on stderr), from its summary
    line ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): X`` (or the older
    ``Average inference timings in us: Warmup: W, Init: I, no stats: X``); ValueError when there is none."""
    summary = [line for line in text.splitlines() if "nference timings in us" in line]
    if not summary:
        raise ValueError("no 'Inference timings in us' line in the benchmark program's output")
    line = summary[-1]
    counts = [int(c) for c in _COUNT.findall(text[:text.rfind(line)])]
    runs = counts[-1] if counts else None
    old = _OLD.search(line)
    if old:
        warmup, init, inference = (float(v) for v in old.groups())
        return BenchmarkTimings(inference, init_us=init, warmup_avg_us=warmup, runs=runs)
    values = {}
    for name, label in _FIELDS.items():
        found = re.search(label + _NUMBER, line)
        values[name] = float(found.group(1)) if found else None
    if values["inference_avg_us"] is None:
        raise ValueError(f"no 'Inference (avg)' figure in {line.strip()!r}")
    return BenchmarkTimings(runs=runs, **values)  # type: ignore[arg-type]


class BenchmarkRunner(Runner):
    """One model on the phone: one ``time_block(n)`` is one run of the benchmark program timing ``n`` calls."""

    def __init__(self, session: AdbSession, model: str, name: str):
        self.session, self.model, self.name = session, model, name

    def time_block(self, number: int) -> float:
        return self.session.run_benchmark(self.model, number, self.name).inference_avg_us / 1e6

    def close(self) -> None:
        pass  # the model stays in the work folder, which the session removes


class AdbSession(Session):
    """One run of measurements of the ``litert`` ``device`` on the phone ``target`` under ``protocol``: ``pin``
    names the phone's CPUs to run on (``taskset``; ``"big"``: the CPUs of the highest maximum frequency), ``keep``
    keeps its work folder."""

    def __init__(self, device: Device, protocol: Protocol, target: AdbTarget, *, keep: bool = False,
                 pin: list[int] | str | None = None):
        if not isinstance(device, LiteRtDevice):
            raise ConfigError(f"an adb target times LiteRT models with the phone's benchmark_model: use --device "
                              f"litert, but got device {device.name!r}")
        if target.benchmark is None:
            raise ConfigError(NEEDS_BENCHMARK)
        program = Path(target.benchmark).expanduser().resolve()
        if not program.is_file():
            raise ConfigError(f"the benchmark program {program} does not exist here: ?benchmark= names the host file "
                              f"of LiteRT's benchmark_model for Android, which hwnas copies to the phone")
        self.device, self.protocol, self.target, self.keep = device, protocol, target, keep
        self.program, self.program_sha256 = program, hashlib.sha256(program.read_bytes()).hexdigest()
        self.watch = CalmWatch(protocol)
        self.references: list[float] = []
        self.workdir: str | None = None
        self._pushed: set[str] = set()
        self.phone = Phone(target)
        self.url = self.phone.url
        self._local = tempfile.TemporaryDirectory(prefix="hwnas-adb-")
        try:
            self.fingerprint = self.phone.fingerprint()
            self.pin = self._check_pin(pin)
            mismatch = abi_mismatch(program, self.fingerprint)
            if mismatch:
                raise ConfigError(f"the benchmark program {program} cannot run on {self.url}: {mismatch}; ?benchmark= "
                                  f"must name LiteRT's benchmark_model for Android on that ABI (android_aarch64 for "
                                  f"arm64-v8a)")
            self.workdir = self.phone.open_workdir()
            self.remote_program = f"{self.workdir}/{program.name if _safe(program.name) else 'benchmark_model'}"
            self.phone.push(str(program), self.remote_program)
            self._probe()
        except BaseException:
            self.close()
            raise
        governor = self.fingerprint.get("governor")
        if governor not in (None, "performance"):
            log.warning("the CPU frequency governor of %s is %r, not 'performance': latencies may follow the clock "
                        "and the phone's temperature; keep it cool, charged and idle (on a rooted phone, write "
                        "performance to /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)", self.url, governor)

    def _check_pin(self, pin: list[int] | str | None) -> list[int] | None:
        cpus = self.fingerprint["cpus"]
        if pin == "big":
            pin = big_cores(self.fingerprint) or None
            if pin is None:
                raise ConfigError(f"--pin big needs the phone's CPU frequencies, which {self.url} does not report; "
                                  f"name the CPUs instead (e.g. --pin 4-7)")
        if pin is not None and not set(pin) <= set(cpus):
            raise ConfigError(f"--pin {','.join(map(str, pin))} names CPUs that {self.url} lacks: it has CPUs "
                              f"{','.join(map(str, cpus))} (the big cores: {','.join(map(str, big_cores(self.fingerprint)))})")
        return pin

    def _probe(self) -> None:
        """Check that the benchmark program runs on the phone, before anything is measured."""
        program = shlex.quote(self.remote_program)
        code, out = self.phone.shell(f"chmod 755 {program} 2>/dev/null; {program} --help >/dev/null 2>&1; "
                                     f"echo \"hwnas-probe $?\"", timeout=120)
        status = re.findall(r"hwnas-probe (\d+)", out)
        if code != 0 or not status:
            raise TargetError(f"could not run the benchmark program on {self.url}: {last_line(out)}")
        if int(status[-1]) == 127:
            code, out = self.phone.shell(f"ls -l {program} 2>&1", timeout=120)
            raise TargetError(f"the benchmark program {self.remote_program} is missing on {self.url} after it was "
                              f"copied there ({last_line(out)}): check the phone's storage and run again")
        if int(status[-1]) == 126:
            code, out = self.phone.shell(f"{program} --help 2>&1 | tail -n 3", timeout=120)
            raise TargetError(f"the benchmark program {self.program.name} is not executable on {self.url} (ABI "
                              f"{self.fingerprint.get('abi')}): {last_line(out) or 'exit code ' + status[-1]}; "
                              f"?benchmark= must name LiteRT's benchmark_model built for Android on that ABI")

    def run_benchmark(self, model: str, number: int, name: str = "") -> BenchmarkTimings:
        """One run of the benchmark program on ``model`` (a path on the phone): ``number`` timed runs after its
        warm-up runs."""
        warmup = max(2, math.ceil(number * WARMUP_SHARE))
        argv = [self.remote_program, f"--graph={model}", f"--num_threads={self.device.threads}",
                f"--num_runs={number}", "--min_secs=0", f"--warmup_runs={warmup}", "--warmup_min_secs=0",
                "--use_xnnpack=true"]
        prefix = f"taskset {sum(1 << c for c in self.pin):x} " if self.pin else ""
        code, out = self.phone.shell(prefix + shlex.join(argv) + " 2>&1")
        what = f"the benchmark program on {self.url}"
        if code in (126, 127):
            raise TargetError(f"{what} could not start (exit code {code}): {last_line(out)}")
        if code != 0:
            raise TargetError(f"{what} failed on {name or model} with exit code {code}: {last_line(out)}")
        try:
            return parse_benchmark_output(out)
        except ValueError as exc:
            raise TargetError(f"{what} printed no timings for {name or model} ({exc}): {last_line(out)}") from None

    def _model(self, module: torch.nn.Module, example: Any) -> str:
        """The path on the phone of ``module`` converted to .tflite, pushed once per run."""
        model = self.device.tflite_model(module, example)
        digest = hashlib.sha256(model).hexdigest()
        remote = f"{self.workdir}/models/{digest}.tflite"
        if digest not in self._pushed:
            local = Path(self._local.name) / f"{digest}.tflite"
            local.write_bytes(model)
            try:
                self.phone.push(str(local), remote)
            finally:
                local.unlink()
            self._pushed.add(digest)
        return remote

    def device_header(self) -> dict[str, Any]:
        """The table header's ``device``: the host's conversion settings, the program and the phone's fingerprint."""
        device = self.device
        info = {"device": device.name, "threads": device.threads, "batch_size": device.batch_size,
                "precision": device.precision, "torch": torch.__version__, "backend": "litert",
                "litert_torch": package_version("litert-torch"), "delegate": DELEGATE,
                "benchmark": self.program.name, "benchmark_sha256": self.program_sha256, **self.fingerprint,
                "pinned_cpus": self.pin, "target": self.url}
        return {"name": device.name, "target": self.url, "comparable": {k: info[k] for k in COMPARABLE},
                "info": info}

    def measure(self, modules: Mapping[Hashable, tuple[torch.nn.Module, torch.Tensor]], *,
                reference: Hashable | None = REFERENCE_KEY, seed: int = 0,
                steady_ms: float | None = None) -> dict[Hashable, Measurement]:
        """Convert and push every (module, example), time them as one batch on the phone (see
        `MeasuringSession.measure`)."""
        runners = {key: BenchmarkRunner(self, self._model(module, example), str(key))
                   for key, (module, example) in modules.items()}
        return self.time_batch(runners, reference=reference, seed=seed, steady_ms=steady_ms)

    def temperature_c(self) -> float | None:
        """The phone's hottest thermal zone now (the end of a run)."""
        return self.phone.fingerprint().get("temperature_c")

    def close(self) -> None:
        """Remove the work folder (or keep it with ``keep``); a phone that is gone leaves it to the next run."""
        if self.workdir is not None:
            try:
                self.phone.close_workdir(self.workdir, self.keep)
                if self.keep:
                    log.info("the work folder %s on %s is kept", self.workdir, self.url)
            except TargetError as exc:
                log.debug("the work folder %s stays on %s (the next run removes it): %s", self.workdir, self.url, exc)
            self.workdir = None
        self._local.cleanup()


def _safe(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*", name) is not None


def describe_phone(target: AdbTarget) -> dict[str, Any]:
    """`hwnas devices --on adb://...`: the phone's fingerprint and, with ``?benchmark=``, whether the program runs
    there (a work folder is made for the check and removed). The phone is opened and fingerprinted once: by the
    session that checks the program where there is one."""
    session = None
    if target.benchmark is not None:
        from hwnas.devices import get_device

        session = AdbSession(get_device("litert"), Protocol(), target)
        session.close()
        phone, fingerprint = session.phone, session.fingerprint
    else:
        phone = Phone(target)
        fingerprint = phone.fingerprint()
    row: dict[str, Any] = {"device": "litert", "target": phone.url, "available": None, "model": fingerprint["model"],
                           "soc": fingerprint["soc"], "abi": fingerprint["abi"], "android": fingerprint["android"],
                           "cores": fingerprint["cores_online"], "big_cores": ",".join(map(str, big_cores(fingerprint))),
                           "governor": fingerprint["governor"], "temperature_c": fingerprint["temperature_c"],
                           "note": "give ?benchmark=PATH to check the benchmark program"}
    if session is not None:
        row.update(available=True, note=f"{session.program.name} runs there")
    return {"row": row, "fingerprint": fingerprint}
