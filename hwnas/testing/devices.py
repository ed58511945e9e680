"""Conformance suite of device backends (`hwnas.devices.DEVICES`): the `hwnas.devices.Device` contract.

`check_device(name, **settings)` checks, on a tiny conv + BN + ReLU6 block:

- ``availability()`` is a (bool, sentence) pair and has no side effects (two calls agree); an unavailable
  device refuses to be constructed with `hwnas.errors.DeviceError` carrying that sentence, and the
  rest is skipped (`check_device` then returns False);
- the registry name is the class's ``name``; without a ``precision`` the first of ``precisions`` is used,
  and a precision outside ``precisions`` is refused with `hwnas.errors.ConfigError`;
- ``info()`` is flat (numbers, strings, booleans, None), JSON-serialisable, names the device and its
  settings, and holds every ``comparable_fields`` entry; ``fingerprint_key()`` is that subset of it, the
  same on every call, without the host name;
- ``prepare`` leaves the caller's module (training mode, dtype, device, values, BN statistics) and
  example untouched, also after its runner has been timed;
- the runner's ``time_block`` returns positive finite seconds per call and leaves torch's thread count
  and grad mode as it found them; ``close`` may be called twice;
- ``measure`` returns a `Measurement` of ``protocol.rounds`` positive blocks;
- an example whose batch differs from the device's ``batch_size``, or that is not a tensor, is a ConfigError.

A new backend: register it in ``DEVICES`` and call ``check_device("mydevice")`` on a machine that has it;
the project's tests run it for every entry and report unavailable ones as skipped.
"""

from __future__ import annotations

import json
import math
import socket

import torch

from hwnas.devices import DEVICES, Device, get_device
from hwnas.errors import ConfigError, DeviceError
from hwnas.timing.protocol import Measurement, Protocol

#: tiny blocks and short timings: the suite checks behaviour, never speed
FAST_PROTOCOL = Protocol(warmup_s=0.005, min_block_s=0.001, rounds=3, rotate=2, remeasure=0)
#: precisions some backend supports; one a device does not list checks its refusal
KNOWN_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FLAT_TYPES = (str, int, float, bool, type(None))


def tiny_block(channels: int = 8) -> torch.nn.Module:
    """A conv + BN + ReLU6 block in training mode, as a caller would hand it over."""
    return torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1), torch.nn.BatchNorm2d(channels),
                               torch.nn.ReLU6()).train()


def tiny_example(batch: int = 1, channels: int = 8, size: int = 8) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


def check_device(name: str, **settings) -> bool:
    """Every check of this module for device ``name`` built with ``settings``; returns whether the device
    is available here (when it is not, only its refusal to be built was checked)."""
    cls = DEVICES.get(name)
    assert cls.name == name, f"device class {cls.__name__} is registered as {name!r} but names itself {cls.name!r}"
    if not check_availability(cls, **settings):
        return False
    device = get_device(name, **settings)
    if "precision" not in settings:
        assert device.precision == cls.precisions[0], \
            f"device {name!r} must default to its first precision {cls.precisions[0]!r}, but got {device.precision!r}"
    check_unsupported_precision(cls)
    check_info(device)
    check_prepare_leaves_caller_alone(device)
    check_runner(device)
    check_measure(device)
    check_wrong_examples(device)
    return True


def check_availability(cls: type[Device], **settings) -> bool:
    """(bool, sentence) without side effects; an unavailable device raises DeviceError with the sentence."""
    first, second = cls.availability(), cls.availability()
    assert isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], bool) and isinstance(first[1], str) \
        and first[1], f"{cls.__name__}.availability() must return (bool, a sentence), but returned {first!r}"
    assert first == second, f"{cls.__name__}.availability() must not change between calls, but gave {first!r} " \
                            f"then {second!r}"
    available, reason = first
    if available:
        return True
    try:
        cls(**settings)
    except DeviceError as error:
        assert str(error) == reason, f"constructing unavailable device {cls.name!r} must raise DeviceError with " \
                                     f"its availability sentence {reason!r}, but said {str(error)!r}"
        return False
    raise AssertionError(f"unavailable device {cls.name!r} ({reason}) must refuse to be constructed, but was built")


def check_unsupported_precision(cls: type[Device]) -> None:
    unsupported = next((p for p in KNOWN_PRECISIONS if p not in cls.precisions), "fp64")
    try:
        cls(precision=unsupported)
    except ConfigError as error:
        assert repr(unsupported) in str(error), \
            f"device {cls.name!r} must name the refused precision {unsupported!r}, but said {str(error)!r}"
        return
    raise AssertionError(f"device {cls.name!r} supports precisions {cls.precisions} and must refuse "
                         f"precision={unsupported!r} with a ConfigError, but accepted it")


def check_info(device: Device) -> None:
    """Flat, JSON-serialisable, naming the settings; the fingerprint key is its comparable, stable subset."""
    info = device.info()
    assert isinstance(info, dict), f"{device!r}.info() must be a dict, but is {type(info).__name__}"
    nested = {k: type(v).__name__ for k, v in info.items() if not isinstance(v, FLAT_TYPES)}
    assert not nested, f"{device!r}.info() must be flat (numbers, strings, booleans, None), but has {nested}"
    assert json.loads(json.dumps(info)) == info, f"{device!r}.info() must survive JSON, but does not: {info}"
    settings = {"device": device.name, "threads": device.threads, "batch_size": device.batch_size,
                "precision": device.precision}
    wrong = {k: info.get(k) for k, v in settings.items() if info.get(k) != v}
    assert not wrong, f"{device!r}.info() must record its settings {settings}, but has {wrong}"
    missing = [f for f in device.comparable_fields if f not in info]
    assert not missing, f"{device!r}.info() must hold every comparable field, but lacks {missing}"
    key = device.fingerprint_key()
    assert key == {f: info[f] for f in device.comparable_fields}, \
        f"{device!r}.fingerprint_key() must be info() restricted to comparable_fields, but is {key}"
    assert device.fingerprint_key() == key, f"{device!r}.fingerprint_key() must not change between calls"
    host = socket.gethostname()
    leaked = [f for f, v in key.items() if len(host) >= 4 and host in str(v)]
    assert not leaked, f"{device!r}.fingerprint_key() must not hold the host name, but fields {leaked} do"


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_prepare_leaves_caller_alone(device: Device) -> None:
    """Neither preparing nor timing touches the caller's module or example."""
    block, example = tiny_block(), tiny_example(device.batch_size)
    state, x = _snapshot(block), example.clone()
    kinds = {k: (v.dtype, v.device, v.requires_grad) for k, v in block.named_parameters()}
    with device.prepare(block, example, FAST_PROTOCOL) as runner:
        runner.time_block(2)
    changed = [k for k, v in block.state_dict().items() if v.dtype != state[k].dtype or v.device != state[k].device
               or not torch.equal(v, state[k])]
    assert not changed, f"{device!r}.prepare must work on copies, but changed the caller's {changed}"
    moved = [k for k, v in block.named_parameters() if (v.dtype, v.device, v.requires_grad) != kinds[k]]
    assert not moved, f"{device!r}.prepare must leave the caller's parameters where they were, but moved {moved}"
    assert all(m.training for m in block.modules()), \
        f"{device!r}.prepare must leave the caller's module in training mode, but switched it to eval"
    assert example.dtype == x.dtype and example.device == x.device and torch.equal(example, x), \
        f"{device!r}.prepare must leave the caller's example untouched, but changed it"


def check_runner(device: Device) -> None:
    """Positive seconds per call, global torch state as found, ``close`` twice."""
    threads, grad = torch.get_num_threads(), torch.is_grad_enabled()
    runner = device.prepare(tiny_block(), tiny_example(device.batch_size), FAST_PROTOCOL)
    try:
        for number in (1, 3):
            seconds = runner.time_block(number)
            assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0, \
                f"{device!r}'s runner must return positive seconds per call, but time_block({number}) " \
                f"returned {seconds!r}"
        after = torch.get_num_threads(), torch.is_grad_enabled()
        assert after == (threads, grad), f"{device!r}'s runner must leave (torch threads, grad mode) at " \
                                         f"{(threads, grad)}, but left {after}"
    finally:
        runner.close()
    runner.close()


def check_measure(device: Device, protocol: Protocol = FAST_PROTOCOL) -> None:
    m = device.measure(tiny_block(), tiny_example(device.batch_size), protocol)
    assert isinstance(m, Measurement), f"{device!r}.measure must return a Measurement, but returned {type(m).__name__}"
    assert m.rounds == len(m.times_ms) == protocol.rounds, \
        f"{device!r}.measure must time protocol.rounds={protocol.rounds} blocks, but rounds={m.rounds} " \
        f"with {len(m.times_ms)} times"
    assert m.median_ms > 0 and m.iqr_ms >= 0 and m.calls_per_block >= 1 and all(t > 0 for t in m.times_ms), \
        f"{device!r}.measure must give positive times, but gave {m}"


def check_wrong_examples(device: Device) -> None:
    wrong = {f"a batch of {device.batch_size + 1}": tiny_example(device.batch_size + 1),
             "a list instead of a tensor": [tiny_example(device.batch_size)]}
    for what, example in wrong.items():
        try:
            device.prepare(tiny_block(), example, FAST_PROTOCOL).close()
        except ConfigError:
            continue
        raise AssertionError(f"{device!r} has batch_size={device.batch_size} and must refuse an example of "
                             f"{what} with a ConfigError, but prepared it")
