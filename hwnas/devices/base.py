"""The device contract, the measurement protocol and the interleaved timing loop shared by all devices.

A lookup table is only as good as the numbers in it, so every device is timed the same way:

1. ``Device.prepare`` turns a block into a :class:`Runner` that owns everything needed to call it
   (``rotate`` copies of weights and inputs, an ONNX Runtime session, CUDA buffers, ...), so that the
   timed loop contains nothing but the calls.
2. :meth:`Runner.calibrate` warms the runner up and picks the number of calls per timed block so that a
   block lasts about ``Protocol.min_block_s``: long enough for timer overhead and clock granularity to
   vanish, short enough to take many blocks.
3. :func:`interleaved_measure` times ``Protocol.rounds`` rounds, each round one block of every runner in
   a shuffled order, so that slow drift of the machine (frequency scaling, a neighbour's load) hits all
   entries of a batch alike instead of whichever entry happened to run during it.
4. Entries whose IQR/median exceeds ``Protocol.max_rel_iqr`` are measured again, at most
   ``Protocol.remeasure`` more times, and the calmest attempt is kept.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import timeit
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import logging

import numpy as np
import torch

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that no CUDA runtime
# exists; hwnas never builds extensions, so the warning only confuses users.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Timer  # noqa: E402

from hwnas.devices import fingerprint
from hwnas.errors import ConfigError, DeviceError, require

Example = torch.Tensor | tuple[torch.Tensor, ...]
K = TypeVar("K", bound=Hashable)
STATISTICS = ("min", "median")


@dataclass(frozen=True)
class Protocol:
    """How blocks are timed; stored in every table header so that a table says how it was made.

    The defaults are tuned for small NAS blocks (tens of microseconds to a few milliseconds) on a
    desktop or server CPU.

    Attributes:
        warmup_s: seconds each runner is exercised before timing, long enough for lazy kernel
            selection, allocator growth and CPU frequency ramp-up to settle.
        min_block_s: target duration of one timed block; calls per block grow until a block lasts
            about this long, as in ``torch.utils.benchmark``'s ``blocked_autorange``.
        rounds: timed blocks per entry; the median and IQR are taken over them.
        rotate: copies of weights and inputs that the timed calls cycle through. A block timed alone
            on one copy runs hot in cache, unlike the same block inside a whole network; measured
            for hwnas on an x86 CPU, the sum of single-copy blocks underestimated whole networks by 11-32 %
            and four copies brought that to about -4 %.
        max_rel_iqr: an entry whose IQR/median is above this is measured again. 5 % keeps the
            noise well below the few-percent errors a table is judged by, while a shared 2-core
            VM still passes most entries at the first attempt.
        remeasure: how many extra attempts a noisy entry gets before its calmest attempt is kept; with
            drift correction on, also how many times a batch caught by a burst of other work is timed
            again, and, when not 0, whether entries still measured in a burst are measured once more
            when the table is complete (see :mod:`hwnas.profiler.build`).
        statistic: which summary of the timed blocks is the entry's latency: ``"min"`` (the fastest
            block) or ``"median"``. Median and IQR are stored either way. On a shared machine other
            tenants only ever add time, in bursts of seconds that can cover most of an entry's rounds;
            the fastest block is then the reproducible figure, as Python's ``timeit`` documentation
            argues. Measured for hwnas on a shared 2-core VM, six repeats of the same 12 blocks
            agreed within a median 1.0 % (ONNX Runtime) and 1.5 % (torch) by the minimum, against
            4.6 % and 2.2 % by the median. A re-measured entry keeps the attempt with the fastest block
            under ``"min"`` and its calmest attempt (smallest IQR/median) under ``"median"``.
        drift_correction: once a table is complete, scale every entry by (the reference block's
            level over the table: its fastest time under ``"min"``, its median time under
            ``"median"``) / (the reference over the rounds the entry was measured in). Bursts of
            other work can outlast a whole batch, and then every entry in it, the reference
            included, is slow by about the same factor (1.6-1.9x on the VM hwnas was built on); the
            reference exposes that and the scaling removes it. Whole networks measured by
            ``hwnas validate`` are scaled to the same level. Raw times stay in every record.
    """

    warmup_s: float = 0.1
    min_block_s: float = 0.02
    rounds: int = 7
    rotate: int = 4
    max_rel_iqr: float = 0.05
    remeasure: int = 2
    statistic: str = "min"
    drift_correction: bool = True

    def __post_init__(self) -> None:
        require(self.warmup_s >= 0, f"warmup_s must be >= 0, but got warmup_s={self.warmup_s}")
        require(self.min_block_s > 0, f"min_block_s must be > 0, but got min_block_s={self.min_block_s}")
        # With fewer than three blocks the quartiles are the extremes and the IQR says nothing.
        require(self.rounds >= 3, f"rounds must be >= 3, but got rounds={self.rounds}")
        require(self.rotate >= 1, f"rotate must be >= 1, but got rotate={self.rotate}")
        require(self.max_rel_iqr > 0, f"max_rel_iqr must be > 0, but got max_rel_iqr={self.max_rel_iqr}")
        require(self.remeasure >= 0, f"remeasure must be >= 0, but got remeasure={self.remeasure}")
        require(self.statistic in STATISTICS,
                f"statistic must be one of {', '.join(STATISTICS)}, but got statistic={self.statistic!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Protocol:
        """Rebuild a protocol from a table header; unknown keys mean the table came from another
        version of hwnas, and silently dropping a setting would misreport how it was measured."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        require(not unknown, f"protocol settings must be among {sorted(known)}, but got unknown {unknown}")
        # Tables written before these settings existed were summarised by the median, uncorrected.
        return cls(**{"statistic": "median", "drift_correction": False, **data})

    def latency_ms(self, measurement: Measurement) -> float:
        """The entry's latency under this protocol's ``statistic``."""
        return measurement.min_ms if self.statistic == "min" else measurement.median_ms


@dataclass
class Measurement:
    """The timing of one entry: per-call times of each timed block and their median and IQR.

    ``times_ms`` keeps every block (in the order it was taken) so that a table can be re-summarised
    or checked for drift later; ``attempts`` counts the measurements taken before this one was
    accepted (1 when the first was calm enough). ``reference_ms`` is the latency of the reference
    block over the same rounds (see :func:`interleaved_measure`), None when there was none.
    """

    median_ms: float
    iqr_ms: float
    rounds: int
    calls_per_block: int
    times_ms: list[float]
    attempts: int = 1
    reference_ms: float | None = None

    @classmethod
    def from_times(cls, times_ms: Sequence[float], calls_per_block: int, attempts: int = 1,
                   reference_ms: float | None = None) -> Measurement:
        require(len(times_ms) > 0, "a measurement needs at least one timed block, but got none")
        q1, median, q3 = np.percentile(np.asarray(times_ms, dtype=float), [25, 50, 75])
        return cls(
            median_ms=float(median),
            iqr_ms=float(q3 - q1),
            rounds=len(times_ms),
            calls_per_block=calls_per_block,
            times_ms=[float(t) for t in times_ms],
            attempts=attempts,
            reference_ms=reference_ms,
        )

    @property
    def min_ms(self) -> float:
        """The fastest timed block: the least disturbed by other work on the machine."""
        return min(self.times_ms)

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread that decides whether an entry is measured again."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(**data)


class Runner(ABC):
    """One block prepared on one device, ready to be called in a tight timed loop.

    Contract for implementations:

    - everything that is not part of a call (copies, sessions, buffers, compilation) is done before
      the runner is returned, so :meth:`time_block` only calls;
    - :meth:`time_block` runs ``number`` calls back to back and returns seconds per call; it may
      do a short untimed warm-up of its own first, but must leave global state (thread counts,
      grad mode) as it found it;
    - :meth:`close` releases the memory and is safe to call twice.

    Runners are context managers, so ``with device.prepare(block, x) as runner:`` closes them.
    """

    @abstractmethod
    def time_block(self, number: int) -> float:
        """Run ``number`` calls as one timed block and return the mean seconds per call."""

    @abstractmethod
    def close(self) -> None:
        """Release copies, sessions and buffers."""

    def calibrate(self, protocol: Protocol) -> int:
        """Warm up for ``protocol.warmup_s`` and return the calls per block that make a block last
        about ``protocol.min_block_s``.

        The block size doubles (up to tenfold at a step when calls are very fast) until a block
        reaches the target and the warm-up time is spent. The count is then set from the fastest
        per-call time seen: first calls are slow (lazy initialisation) and a block hit by an
        interruption is slow too, and either would make the count, and so every block, too short.
        """
        number, spent, fastest = 1, 0.0, float("inf")
        while True:
            per_call = self.time_block(number)
            fastest = min(fastest, max(per_call, 1e-9))  # a 0 s reading must not divide by zero
            spent += per_call * number
            if per_call * number >= protocol.min_block_s and spent >= protocol.warmup_s:
                return max(1, math.ceil(protocol.min_block_s / fastest))
            if per_call * number < protocol.min_block_s:
                number = min(10 * number, max(2 * number, math.ceil(protocol.min_block_s / fastest)))

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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


def interleaved_measure(
    runners: Mapping[K, Runner],
    protocol: Protocol,
    *,
    reference: K | None = None,
    seed: int = 0,
) -> dict[K, Measurement]:
    """Time several runners in interleaved rounds and return one :class:`Measurement` per key.

    Each round times one block of every runner, in an order shuffled per round (with ``seed``) so
    that no entry always follows the same neighbour and inherits its cache state. Entries whose
    IQR/median exceeds ``protocol.max_rel_iqr`` are re-measured together in fresh rounds, up to
    ``protocol.remeasure`` times; under the ``"median"`` statistic the attempt with the smallest
    IQR/median is kept, under ``"min"`` the attempt with the fastest block.

    ``reference``, when given, is the key of a fixed block that the caller measures in every batch
    to watch the machine drift between batches. It joins every round, re-measurement rounds
    included, and all its blocks are kept, so its measurement spans the whole batch. Every other
    entry records in ``reference_ms`` the reference's latency over the rounds of the attempt it
    kept, so that it can be scaled by the state of the machine it was measured in.

    The runners are calibrated here but not closed; the caller owns them.
    """
    require(
        reference is None or reference in runners,
        f"reference must be one of the runner keys, but got reference={reference!r}",
    )
    rng = random.Random(seed)
    numbers = {key: runner.calibrate(protocol) for key, runner in runners.items()}

    def run_rounds(keys: list[K]) -> dict[K, list[float]]:
        times: dict[K, list[float]] = {key: [] for key in keys}
        for _ in range(protocol.rounds):
            order = list(keys)
            rng.shuffle(order)
            for key in order:
                times[key].append(1e3 * runners[key].time_block(numbers[key]))
        return times

    def summarise(times: dict[K, list[float]], attempt: int) -> dict[K, Measurement]:
        """Each entry of one attempt, with the reference's latency over that attempt's rounds."""
        ref_ms = None if reference is None else protocol.latency_ms(Measurement.from_times(times[reference], 1))
        return {key: Measurement.from_times(t, numbers[key], attempts=attempt,
                                            reference_ms=None if key == reference else ref_ms)
                for key, t in times.items()}

    first = run_rounds(list(runners))
    results = summarise(first, 1)
    reference_times = first.get(reference, [])

    for attempt in range(2, protocol.remeasure + 2):
        noisy = [key for key, m in results.items() if key != reference and m.rel_iqr > protocol.max_rel_iqr]
        if not noisy:
            break
        again = run_rounds(noisy + ([reference] if reference is not None else []))
        retries = summarise(again, attempt)
        for key in noisy:
            retry = retries[key]
            better = retry.min_ms < results[key].min_ms if protocol.statistic == "min" else (
                retry.rel_iqr < results[key].rel_iqr)
            results[key] = retry if better else dataclasses.replace(results[key], attempts=attempt)
        if reference is not None:
            reference_times += again[reference]
            results[reference] = Measurement.from_times(reference_times, numbers[reference], attempts=attempt)
    return results


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


def _precision_hint(precision: str) -> str:
    """Name the devices that do support ``precision``, so a wrong device choice is obvious."""
    from hwnas.devices import DEVICES  # the registry imports this module; look it up at call time

    supporting = [name for name in DEVICES.names() if precision in DEVICES.get(name).precisions]
    return f" ({precision} is measured by {', '.join(supporting)})" if supporting else ""

