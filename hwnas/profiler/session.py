"""The measuring session shared by table builds (`hwnas.profiler.build`) and validations
(`hwnas.profiler.validate`): one run of batches on one device, beside one fixed reference block.

A session prepares each batch's modules on the device, times them with the protocol
(`hwnas.timing.protocol.measure_batch`), releases them, and remembers the reference block's time in
every batch, so that later batches are judged against the fastest reference of the run. Its
`CalmWatch` keeps the run's budget for waiting out bursts of other work. The helpers around it say which
device a table was measured on and whether two table headers are comparable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from typing import ClassVar

import torch

from hwnas.devices import Device, get_device
from hwnas.errors import TableError
from hwnas.timing.protocol import CalmWatch, Measurement, Protocol, Runner, batch_reference_ms, measure_batch
from hwnas.space import BlockSpec, OpSpec
from hwnas.tables import LookupTable

PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
REFERENCE_KEY = "__reference__"


def reference_block(batch: int, dtype: str) -> BlockSpec:
    """A fixed mid-sized block, the same in every table, timed in every batch to expose machine drift."""
    return BlockSpec(OpSpec.of("mbconv", k=3, e=6), 32, 32, 1, 16, 16, batch, dtype)


def device_header(device: Device) -> dict:
    return {"name": device.name, "comparable": device.fingerprint_key(), "info": device.info()}


def header_mismatches(old: dict, new: dict) -> list[str]:
    """What differs between two table headers in ways that make their measurements incomparable."""
    diffs = []
    for name, a, b in (("space", old.get("space"), new["space"]), ("protocol", old.get("protocol"), new["protocol"]),
                       ("batch", old.get("batch"), new["batch"]), ("dtype", old.get("dtype"), new["dtype"])):
        if a != b:
            diffs.append(f"{name} {a} != {b}")
    old_dev, new_dev = old.get("device", {}).get("comparable", {}), new["device"]["comparable"]
    for key in sorted(set(old_dev) | set(new_dev)):
        if old_dev.get(key) != new_dev.get(key):
            diffs.append(f"{key} {old_dev.get(key)!r} != {new_dev.get(key)!r}")
    return diffs


def table_device(table: LookupTable) -> Device:
    """The device backend with the settings ``table`` was measured with (threads, batch, precision)."""
    comparable = table.header["device"].get("comparable", {})
    precision = comparable.get("precision")
    return get_device(table.header["device"]["name"], threads=comparable.get("threads"),
                      batch_size=table.header["batch"], **({"precision": precision} if precision else {}))


def check_same_device(table: LookupTable, device: Device | dict) -> None:
    """Refuse to measure for ``table`` on a device (or machine, or library version, or target) it was not
    measured on; ``device`` is a device of this host or a session's `device_header`."""
    header = device_header(device) if isinstance(device, Device) else device
    theirs, ours = table.header["device"].get("target"), header.get("target")
    if (theirs is None) != (ours is None):  # two targets of one kind compare by their fingerprints below
        where = f"on {theirs}: measure there with --on {theirs}" if theirs else "on the host it was built on"
        raise TableError(f"validation must run on the device the table was measured on, but table "
                         f"{table.path} was measured {where}")
    diffs = header_mismatches(table.header, {**table.header, "device": header})
    if diffs:
        raise TableError(f"validation must run on the device the table was measured on, but {'; '.join(diffs[:3])}")


class TargetKind(ABC):
    """A kind of target, a place other than this process where tables are measured (``--on``): its URLs begin with
    one of ``schemes`` (``local``, ``ssh://``, ``adb://``); ``parse`` reads one into the target (a one-line
    ConfigError when it is malformed), whose ``url`` names it in messages and table headers. The kinds are
    registered in `hwnas.profiler.targets.TARGETS`, each with its `Session` in `hwnas.profiler.remote.SESSIONS`;
    `hwnas.testing.targets.check_target_kind` is their conformance suite."""

    schemes: ClassVar[tuple[str, ...]]
    syntax: ClassVar[str]
    url: str

    @classmethod
    @abstractmethod
    def parse(cls, text: str) -> TargetKind:
        """The target ``text`` names (it begins with one of ``schemes``)."""


class Session(ABC):
    """What table builds (`hwnas.profiler.build`) and validations (`hwnas.profiler.validate`) measure through: one
    run of batches of ``device`` under ``protocol``, on this host (`MeasuringSession`), on a board over ssh
    (`hwnas.profiler.remote.RemoteSession`) or on a phone over adb (`hwnas.profiler.android.AdbSession`).

    A session times a batch of (module, example) pairs with `measure`, the reference block among them, and keeps
    each batch's reference level in ``references``, so that later batches are judged against the fastest reference
    of the run (``steady_ms``). `hwnas.testing.sessions.check_session` is its conformance suite.
    """

    device: Device
    protocol: Protocol
    references: list[float]
    watch: CalmWatch  # the run's budget for waiting out bursts, where the session times batches itself (`time_batch`)

    @abstractmethod
    def device_header(self) -> dict:
        """The table header's ``device`` of what this session measures on: ``name``, ``comparable``, ``info``."""

    @abstractmethod
    def measure(self, modules: Mapping[Hashable, tuple[torch.nn.Module, torch.Tensor]], *,
                reference: Hashable | None = REFERENCE_KEY, seed: int = 0,
                steady_ms: float | None = None) -> dict[Hashable, Measurement]:
        """Time every (module, example) as one batch and return a measurement per key. ``reference`` is the key of
        the reference block among ``modules`` (None: no reference, nothing watched; its level is appended to
        ``references`` otherwise); ``steady_ms`` overrides the level bursts are judged against (default:
        `steady_ms`)."""

    def steady_ms(self) -> float | None:
        """The fastest reference level of the run so far (None without drift correction or before a batch)."""
        return min(self.references) if self.protocol.drift_correction and self.references else None

    def time_batch(self, runners: Mapping[Hashable, Runner], *, reference: Hashable | None, seed: int,
                   steady_ms: float | None) -> dict[Hashable, Measurement]:
        """Time prepared ``runners`` as one batch under the protocol (the end of `measure` for a session whose
        runners it times itself): bursts judged against ``steady_ms`` (default: `steady_ms` where there is a
        reference), and the batch's reference level appended to ``references``."""
        steady = steady_ms if steady_ms is not None else self.steady_ms() if reference is not None else None
        result = measure_batch(runners, self.protocol, reference=reference, seed=seed, steady_ms=steady,
                               watch=self.watch if self.protocol.drift_correction else None)
        if reference is not None:
            self.references.append(batch_reference_ms(result, reference))
        return result

    def reference_module(self, dtype: str) -> tuple[torch.nn.Module, torch.Tensor]:
        """The reference block and an example input, at the device's batch and ``dtype``."""
        block = reference_block(self.device.batch_size, dtype)
        return block.build().eval(), torch.randn(block.input_shape)

    def measure_blocks(self, blocks: list[BlockSpec], *, seed: int = 0,
                       steady_ms: float | None = None) -> dict[Hashable, Measurement]:
        """Measure one batch of blocks together with the reference block (under `REFERENCE_KEY`)."""
        modules = {b.key: (b.build().eval(), torch.randn(b.input_shape)) for b in blocks}
        modules[REFERENCE_KEY] = self.reference_module(blocks[0].dtype)
        return self.measure(modules, seed=seed, steady_ms=steady_ms)

    def temperature_c(self) -> float | None:
        """The device's temperature now (read at the end of a run), None where it is not known."""
        return None

    def close(self) -> None:
        """Release what the session holds on its device (a connection, a work folder); may be called twice."""


class MeasuringSession(Session):
    """One run of measurements on ``device`` of this host under ``protocol`` (see the module docstring).

    With drift correction on, each batch waits for calm and is timed again when caught by a burst, judged
    against the fastest reference of the run (the machine's calm state today, which need not be the one a table
    was built in: drift correction bridges that).
    """

    def __init__(self, device: Device, protocol: Protocol, *, watch: CalmWatch | None = None):
        self.device, self.protocol = device, protocol
        self.watch = watch or CalmWatch(protocol)
        self.references: list[float] = []

    def device_header(self) -> dict:
        return device_header(self.device)

    def measure(self, modules: Mapping[Hashable, tuple[torch.nn.Module, torch.Tensor]], *,
                reference: Hashable | None = REFERENCE_KEY, seed: int = 0,
                steady_ms: float | None = None) -> dict[Hashable, Measurement]:
        """Prepare every (module, example) on the device, time them as one batch, and release them."""
        runners = {}
        try:
            for key, (module, example) in modules.items():
                runners[key] = self.device.prepare(module, example, self.protocol)
            return self.time_batch(runners, reference=reference, seed=seed, steady_ms=steady_ms)
        finally:
            for runner in runners.values():
                runner.close()
