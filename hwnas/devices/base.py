"""The device contract (`Device`) and the timing of host-synchronous calls shared by the CPU backends.

A device turns a block into a `hwnas.timing.protocol.Runner`; the protocol (calibration, interleaved
rounds, re-measurement, drift watching) is the same for every device and lives in `hwnas.timing.protocol`.
"""

from __future__ import annotations

import itertools
import logging
import timeit
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that no CUDA runtime
# exists; hwnas never builds extensions, so the warning only confuses users.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Timer  # noqa: E402

from hwnas.devices import fingerprint  # noqa: E402
from hwnas.errors import ConfigError, DeviceError, require  # noqa: E402
from hwnas.registry import Registry  # noqa: E402
from hwnas.timing.protocol import Measurement, Protocol, Runner, interleaved_measure  # noqa: E402

Example = torch.Tensor | tuple[torch.Tensor, ...]


def cycle_calls(calls: Sequence[Callable[[], object]]) -> Callable[[], None]:
    """One zero-argument function that runs the next of ``calls`` each time, round-robin: how a timed
    loop walks through the ``Protocol.rotate`` copies of a block."""
    cycle = itertools.cycle(calls)

    def call() -> None:
        next(cycle)()

    return call


class HostCallRunner(Runner):
    """Times host-synchronous calls (PyTorch on CPU, ONNX Runtime on CPU) with
    ``torch.utils.benchmark.Timer``, which pins torch's intra-op threads to ``torch_threads`` for each
    block, restores them afterwards, and runs a few untimed calls before each block."""

    def __init__(self, calls: Sequence[Callable[[], object]], *, torch_threads: int):
        self._timer: Timer | None = Timer(
            stmt="call()",
            globals={"call": cycle_calls(calls)},
            num_threads=torch_threads,
            # The default timer synchronises an accelerator when one is present; host calls need none.
            timer=timeit.default_timer,
        )

    def time_block(self, number: int) -> float:
        with torch.inference_mode():
            return self._timer.timeit(number).times[0]

    def close(self) -> None:
        self._timer = None  # its globals hold the calls, which hold the copies


class Device(ABC):
    """A target on which blocks are timed: a backend plus its fixed settings.

    Contract for implementations:

    - ``name`` is the registry name; ``precisions`` lists the accepted ``precision`` values, the
      first being the default.
    - :meth:`availability` says, without side effects, whether this machine can run the device,
      and if not why in one sentence; constructing an unavailable device raises
      :class:`~hwnas.errors.DeviceError` with that sentence.
    - :meth:`info` returns a flat, JSON-serialisable fingerprint of everything that can change a
      timing (hardware, library versions, settings); ``comparable_fields`` names the subset that
      must be equal for two tables to be compared (no host name, no dates).
    - :meth:`_make_runner` builds a :class:`Runner` from validated arguments. It must work on
      copies: the caller's module and tensors are never moved, converted or switched to eval mode.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    comparable_fields: ClassVar[tuple[str, ...]] = (
        "device", "threads", "batch_size", "precision", "machine", "cpu_model", "cpu_id", "cpu_capability", "torch",
    )

    def __init__(self, *, threads: int | None = None, batch_size: int = 1, precision: str | None = None):
        available, reason = self.availability()
        require(available, reason, DeviceError)
        threads = self.default_threads() if threads is None else threads
        precision = self.precisions[0] if precision is None else precision
        require(isinstance(threads, int) and threads >= 1, f"threads must be >= 1, but got threads={threads!r}")
        require(
            isinstance(batch_size, int) and batch_size >= 1,
            f"batch_size must be >= 1, but got batch_size={batch_size!r}",
        )
        if precision not in self.precisions:
            raise ConfigError(
                f"device {self.name!r} supports precision {' or '.join(self.precisions)}, but got "
                f"precision={precision!r}{_precision_hint(precision)}"
            )
        self.threads, self.batch_size, self.precision = threads, batch_size, precision

    @classmethod
    @abstractmethod
    def availability(cls) -> tuple[bool, str]:
        """(usable on this machine?, why not -- or what it will run on)."""

    @classmethod
    def default_threads(cls) -> int:
        """Threads used when none are given: one, the setting a per-block table is comparable in."""
        return 1

    def info(self) -> dict[str, Any]:
        """Flat fingerprint of the device, its settings and this machine; devices extend it."""
        return {
            "device": self.name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "precision": self.precision,
            **fingerprint.machine_info(),
            **fingerprint.library_versions(),
        }

    def fingerprint_key(self) -> dict[str, Any]:
        """The part of :meth:`info` that must match for two tables to be comparable."""
        info = self.info()
        return {field: info[field] for field in self.comparable_fields}

    def example_args(self, example: Example) -> tuple[torch.Tensor, ...]:
        """``example`` as a tuple of positional inputs, checked to be tensors whose first dimension is
        this device's batch size, so a table's recorded batch is the batch that was timed."""
        args = example if isinstance(example, tuple) else (example,)
        require(
            len(args) > 0 and all(isinstance(arg, torch.Tensor) for arg in args),
            f"example must be a tensor or a non-empty tuple of tensors, but got {type(example).__name__}",
        )
        require(
            all(arg.dim() > 0 and arg.shape[0] == self.batch_size for arg in args),
            f"example batch must equal the device's batch_size={self.batch_size}, but got input shapes "
            f"{[tuple(arg.shape) for arg in args]}",
        )
        return args

    def prepare(self, module: torch.nn.Module, example: Example, protocol: Protocol | None = None) -> Runner:
        """Prepare ``module`` to be timed on ``example`` (a tensor, or a tuple of positional inputs)
        with ``protocol.rotate`` copies of both."""
        return self._make_runner(module, self.example_args(example), protocol or Protocol())

    @abstractmethod
    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        """Build the runner; ``args`` are validated positional inputs."""

    def measure(self, module: torch.nn.Module, example: Example, protocol: Protocol | None = None) -> Measurement:
        """Time one block on its own: prepare, calibrate, time ``protocol.rounds`` blocks, close.

        For tables prefer :func:`interleaved_measure` over batches of prepared runners; this is the
        same protocol for a single entry (a whole network, a quick check).
        """
        protocol = protocol or Protocol()
        with self.prepare(module, example, protocol) as runner:
            return interleaved_measure({0: runner}, protocol)[0]

    def __repr__(self) -> str:
        settings = f"threads={self.threads}, batch_size={self.batch_size}, precision={self.precision!r}"
        return f"{type(self).__name__}({settings})"


#: device backends by name; `hwnas.devices` registers the built-in ones
DEVICES: Registry[type[Device]] = Registry("device")


def _precision_hint(precision: str) -> str:
    """Name the devices that do support ``precision``, so a wrong device choice is obvious."""
    supporting = [name for name in DEVICES.names() if precision in DEVICES.get(name).precisions]
    return f" ({precision} is measured by {', '.join(supporting)})" if supporting else ""

