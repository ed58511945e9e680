"""``executorch``: blocks exported with ``torch.export``, lowered to ExecuTorch with the XNNPACK delegate and timed
by ExecuTorch's runtime (through its Python bindings) on this CPU.

An optional extra: ``pip install 'hwnas[executorch]'``. Lowering takes a few seconds per block. As for
``litert``, every all-zero parameter gets small random values first (`hwnas.devices.litert.no_zero_weights`),
so that no optimiser can drop a branch a trained network would compute. Host only: the runtime's Python
bindings need torch, so no board without it can run them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from hwnas.devices.base import Device
from hwnas.devices.cpu import torch_copies
from hwnas.devices.litert import _quiet, no_zero_weights
from hwnas.errors import DeviceError
from hwnas.timing.protocol import Protocol, Runner
from hwnas.timing.runners import CycleRunner, package_version

EXTRA = "pip install 'hwnas[executorch]'"
DELEGATE = "XNNPACK (XnnpackPartitioner)"


def lower(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> bytes:
    """The .pte program ExecuTorch runs for ``module`` (an fp32 CPU copy in eval mode, no all-zero parameter)."""
    [(block, inputs)] = torch_copies(module, args, 1, torch.device("cpu"), torch.float32)
    no_zero_weights(block)
    try:
        with _quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            exported = torch.export.export(block, inputs)
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        return bytes(program.buffer)
    except Exception as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DeviceError(f"blocks timed in ExecuTorch must export and lower to XNNPACK, but it failed on "
                          f"{type(module).__name__}: {first}") from error


def load_method(program: bytes) -> tuple[Any, Any]:
    """(the loaded program, its ``forward``): the method refers to the program's memory, so the caller keeps both
    (and ``program``'s bytes) alive while it runs; a method whose program was collected reads freed memory."""
    with _quiet():  # the runtime reports its CPU probing on stderr
        from executorch.runtime import Runtime

        loaded = Runtime.get().load_program(program)
        return loaded, loaded.load_method("forward")


class ExecuTorchRunner(CycleRunner):
    """Cycles ``execute`` over one loaded method per copy, each with its own inputs (timed as every
    `CycleRunner`)."""

    def __init__(self, program: bytes, loaded: list[tuple[Any, Any]], inputs: list[list[torch.Tensor]]):
        super().__init__([(lambda m=m, x=x: m.execute(x)) for (_, m), x in zip(loaded, inputs)])
        self._keep = (program, loaded, inputs)  # everything the methods point into

    def close(self) -> None:
        self._keep = (b"", [], [])
        super().close()


class ExecuTorchDevice(Device):
    """ExecuTorch's runtime on this CPU with the XNNPACK delegate, fp32, its threadpool at ``threads`` threads
    (default 1; the pool is ExecuTorch's own, process-wide, not torch's)."""

    name = "executorch"
    comparable_fields = Device.comparable_fields + ("backend", "executorch", "delegate")

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("executorch") is None:
            return False, f"device {cls.name!r} needs the ExecuTorch extra (executorch missing): {EXTRA}"
        return True, f"ExecuTorch {package_version('executorch')} runtime, {DELEGATE}"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "backend": "executorch", "executorch": package_version("executorch"), "delegate": DELEGATE}

    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        program = lower(module, args)
        with _quiet():  # ExecuTorch's one threadpool (XNNPACK runs on it) at this device's threads; it says so
            from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, \
                _unsafe_reset_threadpool

            if _threadpool_get_thread_count() != self.threads:
                _unsafe_reset_threadpool(self.threads)
        loaded = [load_method(program) for _ in range(protocol.rotate)]
        inputs = [[a.detach().cpu().to(torch.float32).clone() for a in args] for _ in range(protocol.rotate)]
        return ExecuTorchRunner(program, loaded, inputs)
