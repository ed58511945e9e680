"""``cpu``: PyTorch eager on the host CPU, with a fixed number of threads."""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch

from hwnas.devices.base import Device, HostCallRunner
from hwnas.timing.protocol import Protocol, Runner

TorchCopy = tuple[torch.nn.Module, tuple[torch.Tensor, ...]]


def torch_copies(
    module: torch.nn.Module, args: tuple[torch.Tensor, ...], count: int, device: torch.device, dtype: torch.dtype
) -> list[TorchCopy]:
    """``count`` independent eval-mode copies of ``module`` and its inputs on ``device`` in ``dtype``.

    Independent storage is the point: cycling through the copies call by call keeps a block's
    weights and input from sitting in cache between calls, as they would not inside a whole
    network. Integer inputs keep their dtype; the caller's module and tensors are left untouched.
    """
    copies = []
    for _ in range(count):
        block = copy.deepcopy(module).eval().to(device=device, dtype=dtype)
        inputs = tuple(
            arg.detach().to(device=device, dtype=dtype if arg.is_floating_point() else arg.dtype, copy=True)
            for arg in args
        )
        copies.append((block, inputs))
    return copies


class CpuDevice(Device):
    """PyTorch eager in fp32 under ``torch.inference_mode()`` with ``threads`` intra-op threads
    (default 1, the setting per-block tables add up best in)."""

    name = "cpu"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, f"PyTorch {torch.__version__} on the host CPU"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "backend": "pytorch-eager", "onednn": torch.backends.mkldnn.is_available()}

    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        copies = torch_copies(module, args, protocol.rotate, torch.device("cpu"), torch.float32)
        return HostCallRunner(
            [functools.partial(block, *inputs) for block, inputs in copies], torch_threads=self.threads
        )
