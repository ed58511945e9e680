"""A scripted device for the profiler's tests: its runners take a fixed, known time per call, so that table
builds, sessions and their bookkeeping can be tested to the last digit without timing anything."""

import pytest
import torch

from hwnas.devices import Device
from hwnas.errors import DeviceError
from hwnas.timing.protocol import Runner


class Timed(torch.nn.Module):
    """A module whose runner on the scripted device takes ``ms`` per call (None: it cannot be prepared;
    negative: timing it fails)."""

    def __init__(self, ms: float | None):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        return x


def scripted_ms(module: torch.nn.Module) -> float:
    """The time per call of a module on the scripted device: its own ``ms``, or for a real block a fixed
    function of its parameter count."""
    ms = getattr(module, "ms", None)
    return ms if isinstance(module, Timed) else 0.1 + 1e-5 * sum(p.numel() for p in module.parameters())


class ScriptedRunner(Runner):
    def __init__(self, device: "ScriptedDevice", ms: float):
        self.device, self.ms, self.closed = device, ms, False

    def time_block(self, number: int) -> float:
        if self.ms < 0:
            raise RuntimeError("the block failed")
        return self.ms * self.device.factor / 1e3  # the machine's state when the block runs

    def close(self) -> None:
        self.closed = True


class ScriptedDevice(Device):
    """Runners take `scripted_ms` per call times ``factor`` (> 1: a burst of other work on the machine).
    ``runners`` are all the runners it made, ``examples`` the input shapes it was handed."""

    name = "scripted"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, "scripted runners"

    def __init__(self, **settings):
        super().__init__(**settings)
        self.factor = 1.0
        self.runners: list[ScriptedRunner] = []
        self.examples: list[tuple[int, ...]] = []

    def _make_runner(self, module, args, protocol) -> Runner:
        if isinstance(module, Timed) and module.ms is None:
            raise DeviceError("the block cannot be prepared")
        self.examples.append(tuple(args[0].shape))
        self.runners.append(ScriptedRunner(self, scripted_ms(module)))
        return self.runners[-1]


@pytest.fixture
def device() -> ScriptedDevice:
    return ScriptedDevice()


@pytest.fixture
def timed():
    """``timed(ms)``: a (module, example) pair whose calls take ``ms`` on the scripted device."""
    return lambda ms: (Timed(ms), torch.zeros(1, 1))


@pytest.fixture
def block_ms():
    """``block_ms(block)``: a block's time per call on the calm scripted device."""
    return lambda block: scripted_ms(block.build())


@pytest.fixture
def module_ms():
    """``module_ms(module)``: a module's (a whole network's) time per call on the calm scripted device."""
    return scripted_ms
