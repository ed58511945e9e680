"""``litert``: blocks converted from PyTorch with the LiteRT converter (litert-torch) and timed in the LiteRT
interpreter (TFLite's runtime, what Android apps ship), with its default XNNPACK delegate and fixed threads.

An optional extra: ``pip install 'hwnas[litert]'`` (litert-torch, which brings ai-edge-litert). Conversion
takes about a second or two per block on a CPU; the converter's progress lines are kept off the terminal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.devices.base import Device
from hwnas.devices.cpu import torch_copies
from hwnas.errors import DeviceError
from hwnas.timing.litert import DELEGATE
from hwnas.timing.protocol import Protocol, Runner
from hwnas.timing.runners import package_version
from hwnas.timing.runtimes import LiteRt

EXTRA = "pip install 'hwnas[litert]'"


@contextlib.contextmanager
def _quiet():
    """Python's and the C++ libraries' output (file descriptors 1 and 2) discarded for the duration: the
    converter's progress lines would otherwise land in a command's --format json on stdout."""
    with open(os.devnull, "wb") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)


def no_zero_weights(module: torch.nn.Module, seed: int = 0) -> int:
    """Give every parameter that is exactly zero small random values (seeded); returns how many there were.

    A freshly built residual block zero-initialises its last BN's scale, so its branch computes zeros; LiteRT's
    converter removes such a branch altogether (measured: an fbnet k5_e6 block at 4x4 timed at the ~0.6 us of
    an empty invoke, PyTorch's output matched exactly), which no trained network allows. Timing needs the
    work a trained network does, not the shortcut of an untrained one."""
    generator = torch.Generator().manual_seed(seed)
    replaced = 0
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.numel() and not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator) + 0.5)
                replaced += 1
    return replaced


def convert(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> bytes:
    """The .tflite model litert-torch converts ``module`` (an fp32 CPU copy in eval mode) to, for ``args``."""
    with _quiet():  # torchao, which litert-torch imports, warns through torch's logging on import
        import litert_torch

    [(block, inputs)] = torch_copies(module, args, 1, torch.device("cpu"), torch.float32)
    no_zero_weights(block)
    with tempfile.TemporaryDirectory(prefix="hwnas-litert-") as tmp:
        path = Path(tmp) / "block.tflite"
        try:
            with _quiet():
                litert_torch.convert(block, inputs).export(str(path))
        except Exception as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise DeviceError(f"blocks timed in LiteRT must convert with litert-torch, but it failed on "
                              f"{type(module).__name__}: {first}") from error
        return path.read_bytes()


class LiteRtDevice(Device):
    """The LiteRT interpreter on this CPU: XNNPACK, ``threads`` threads (1 by default), fp32."""

    name = "litert"
    comparable_fields = Device.comparable_fields + ("backend", "litert", "litert_torch", "delegate")

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        missing = [name for name in ("litert_torch", "ai_edge_litert") if importlib.util.find_spec(name) is None]
        if missing:
            return False, f"device {cls.name!r} needs the LiteRT extra ({', '.join(missing)} missing): {EXTRA}"
        return True, f"LiteRT {LiteRt.version()} interpreter, {DELEGATE}"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "backend": "litert", "litert": LiteRt.version(),
                "litert_torch": package_version("litert-torch"), "delegate": DELEGATE}

    def tflite_model(self, module: torch.nn.Module, example: Any) -> bytes:
        """The .tflite model this device times for ``module``."""
        return convert(module, self.example_args(example))

    def _make_runner(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], protocol: Protocol) -> Runner:
        model = convert(module, args)
        feed = [arg.detach().cpu().to(torch.float32).numpy() for arg in args]
        feeds = [{f"input{i}": np.array(a, copy=True) for i, a in enumerate(feed)} for _ in range(protocol.rotate)]
        with _quiet():  # the interpreter announces its delegate on stderr
            return LiteRt(self.threads).runner(model, feeds)
