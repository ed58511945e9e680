"""Conformance suite of runtimes (`hwnas.timing.runtimes.RUNTIMES`): the `hwnas.timing.runtimes.Runtime`
contract, which a target's measuring process relies on.

`check_runtime(name, settings, model, feed, expected)` checks, on the bytes of a model in the runtime's format:

- the registry name is the class's ``name``; ``modules`` and ``pip_names`` are non-empty, of one length and
  start with numpy (a target needs it for the protocol); ``suffix`` is a file suffix; ``missing()`` is a list
  of those modules, and ``pip_command`` names every pip name (then, where modules are missing here, the rest
  is skipped and `check_runtime` returns False);
- ``version()`` is a string; the settings survive JSON and ``from_settings(settings())`` gives the same
  settings and ``threads``; `get_runtime` builds the runtime from its name and settings, and refuses an unknown
  name with a ValueError that names the known ones;
- ``outputs`` on ``feed`` equal ``expected`` (what PyTorch computes for the model) within ``atol``;
- ``runner`` makes one copy per feed; its ``time_block`` returns positive finite seconds per call; ``close``
  may be called twice.

A new runtime: register it, make a model of it from a small block (as tests/testing/test_runtimes_suite.py does)
and call `check_runtime` on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwnas.timing.runtimes import RUNTIMES, Runtime, get_runtime


def check_runtime(name: str, settings: Mapping[str, Any], model: bytes, feed: Mapping[str, np.ndarray],
                  expected: list[np.ndarray], *, atol: float = 1e-4) -> bool:
    """Every check of this module for runtime ``name``; returns whether the runtime is usable here (when it is
    not, only its declarations were checked)."""
    cls = RUNTIMES[name]
    check_declarations(name, cls)
    if cls.missing():
        return False
    runtime = check_settings(name, dict(settings))
    check_outputs(runtime, model, dict(feed), expected, atol)
    check_runner(runtime, model, dict(feed))
    return True


def check_declarations(name: str, cls: type[Runtime]) -> None:
    assert cls.name == name, f"runtime class {cls.__name__} is registered as {name!r} but names itself {cls.name!r}"
    assert cls.modules and len(cls.modules) == len(cls.pip_names), \
        f"runtime {name!r} must list its modules and one pip name each, but has {cls.modules} and {cls.pip_names}"
    assert cls.modules[0] == "numpy", f"runtime {name!r} must need numpy first (the protocol uses it)"
    assert cls.suffix.startswith(".") and len(cls.suffix) > 1, f"runtime {name!r} has no file suffix: {cls.suffix!r}"
    missing = cls.missing()
    assert isinstance(missing, list) and set(missing) <= set(cls.modules), \
        f"{cls.__name__}.missing() must list some of {cls.modules}, but returned {missing!r}"
    command = cls.pip_command("py")
    assert command.startswith("py -m pip install ") and all(p in command.split() for p in cls.pip_names), \
        f"{cls.__name__}.pip_command must install {cls.pip_names}, but is {command!r}"


def check_settings(name: str, settings: dict[str, Any]) -> Runtime:
    runtime = get_runtime(name, settings)
    assert isinstance(runtime, RUNTIMES[name]), f"get_runtime({name!r}) built a {type(runtime).__name__}"
    version = runtime.version()
    assert isinstance(version, str) and version, f"runtime {name!r} is usable here but its version is {version!r}"
    data = runtime.settings()
    assert json.loads(json.dumps(data)) == data, f"runtime {name!r}'s settings must survive JSON, but are {data!r}"
    again = type(runtime).from_settings(data)
    assert again.settings() == data and again.threads == runtime.threads, \
        f"runtime {name!r}: from_settings(settings()) must give the same settings, but gave {again.settings()!r}"
    assert isinstance(runtime.threads, int) and runtime.threads >= 1, f"runtime {name!r} threads {runtime.threads!r}"
    try:
        get_runtime("no-such-runtime", data)
    except ValueError as error:
        assert all(n in str(error) for n in RUNTIMES), f"an unknown runtime must name the known ones: {error}"
    else:
        raise AssertionError("get_runtime must refuse an unknown runtime name")
    return runtime


def check_outputs(runtime: Runtime, model: bytes, feed: dict[str, np.ndarray], expected: list[np.ndarray],
                  atol: float) -> None:
    outputs = runtime.outputs(model, feed)
    assert len(outputs) == len(expected), f"runtime {runtime.name!r} gave {len(outputs)} outputs, not {len(expected)}"
    for got, want in zip(outputs, expected):
        assert np.shape(got) == np.shape(want), f"runtime {runtime.name!r} output shape {np.shape(got)} != " \
                                                f"{np.shape(want)}"
        error = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)))
        assert error <= atol, f"runtime {runtime.name!r} output differs from PyTorch's by {error:.3g} (> {atol})"


def check_runner(runtime: Runtime, model: bytes, feed: dict[str, np.ndarray]) -> None:
    feeds = [{k: v.copy() for k, v in feed.items()} for _ in range(2)]
    runner = runtime.runner(model, feeds)
    try:
        seconds = runner.time_block(3)
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0, \
            f"runtime {runtime.name!r}: time_block must return positive finite seconds, but returned {seconds!r}"
    finally:
        runner.close()
    runner.close()
