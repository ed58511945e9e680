"""``cuda``: PyTorch on an NVIDIA GPU, timed with CUDA events, optionally replaying CUDA graphs."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from typing import Any

import torch

from hwnas.devices.base import Device, cycle_calls
from hwnas.timing.protocol import Protocol, Runner
from hwnas.devices.cpu import TorchCopy, torch_copies

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@functools.cache
def _driver_version() -> str:
    """The NVIDIA driver release; torch reports only the CUDA runtime it was built with."""
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"


def _graph_replay(block: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """Capture one call of ``block`` in a CUDA graph and return its replay.

    Warm-up runs on a side stream first, as capture requires, so that lazy initialisation (cuDNN
    algorithm choice, allocator growth) is not recorded into the graph.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(3):
            block(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        block(*inputs)
    return graph.replay


class TorchCudaRunner(Runner):
    """Times a block of calls between two CUDA events recorded on the current stream.

    The GPU is synchronised before the start event so that earlier work is not counted, and the
    end event is waited for, so the time covers launch overhead plus kernels, as a deployed eager
    (or graph-replayed) model pays them.
    """

    def __init__(self, copies: list[TorchCopy], threads: int, graphs: bool):
        self._threads = threads
        if graphs:
            calls = [_graph_replay(block, inputs) for block, inputs in copies]
        else:
            calls = [functools.partial(block, *inputs) for block, inputs in copies]
        self._call: Callable[[], None] | None = cycle_calls(calls)

    def time_block(self, number: int) -> float:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self._threads)
        try:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            with torch.inference_mode():
                torch.cuda.synchronize()
                start.record()
                for _ in range(number):
                    self._call()
                end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number
        finally:
            torch.set_num_threads(previous_threads)

    def close(self) -> None:
        self._call = None  # it holds the copies and graphs
        torch.cuda.empty_cache()


class CudaDevice(Device):
    """PyTorch on the current CUDA device in fp32 or fp16, eager or as CUDA graph replays.

    Global cuDNN/TF32 settings are left as the caller set them and recorded in :meth:`info`, since
    they change which kernels run.
    """

    name = "cuda"
    precisions = ("fp32", "fp16")
    comparable_fields = Device.comparable_fields + (
        "gpu_name", "gpu_capability", "cuda_runtime", "cudnn", "cuda_graphs", "conv_fp32_precision",
        "matmul_fp32_precision", "cudnn_benchmark",
    )

    def __init__(
        self, *, threads: int | None = None, batch_size: int = 1, precision: str | None = None,
        cuda_graphs: bool = False,
    ):
        super().__init__(threads=threads, batch_size=batch_size, precision=precision)
        self.cuda_graphs = cuda_graphs

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if not torch.cuda.is_available():
            return False, f"device {cls.name!r} needs an NVIDIA GPU, but torch.cuda.is_available() is False"
        return True, torch.cuda.get_device_name()

    def info(self) -> dict[str, Any]:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return {
            **super().info(),
            "backend": "pytorch-cuda-graphs" if self.cuda_graphs else "pytorch-eager",
            "gpu_name": props.name,
            "gpu_capability": f"{props.major}.{props.minor}",
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_driver": _driver_version(),
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cuda_graphs": self.cuda_graphs,
            "conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
            "matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        }

    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        copies = torch_copies(module, args, protocol.rotate, torch.device("cuda"), DTYPES[self.precision])
        return TorchCudaRunner(copies, self.threads, self.cuda_graphs)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, cuda_graphs={self.cuda_graphs})"
