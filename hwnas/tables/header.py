"""The settings of a lookup table's header, checked by type and range when the file is read.

A header's space description, batch, dtype, device and protocol are used far from where the file is read (a
search's constraint, `hwnas validate`'s measurements, `hwnas table adapt`'s fit): a value of the wrong type or
length there was a traceback ("zip() argument 2 is shorter", "can't multiply sequence by non-int"). Here each
setting is checked against what hwnas can use, and the first that is not is one `TableError` naming the file,
the line, the setting and the value; the space is built once, so whatever the checks let through and the space
builder refuses is refused here too.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import HwnasError, TableError, quoted

if TYPE_CHECKING:
    from hwnas.space.space import SearchSpace

#: the largest batch, input resolution and channel count a table may name (the command line's own bounds)
MAX_BATCH, MAX_RESOLUTION, MAX_CHANNELS = 65536, 2048, 100_000


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any, low: int = 1, high: float = math.inf) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class _Checker:
    def __init__(self, path: Path | str, line: int):
        self.where = f"{path} line {line}"

    def fail(self, setting: str, expected: str, value: Any) -> None:
        raise TableError(f"a lookup table's header must hold {setting} as {expected}, but {self.where} has "
                         f"{quoted(value)}")

    def need(self, ok: bool, setting: str, expected: str, value: Any) -> None:
        if not ok:
            self.fail(setting, expected, value)


def check_header(header: dict, path: Path | str, line: int) -> SearchSpace:
    """Check every setting of a table header (whose fields have their JSON types already) and return its space."""
    check = _Checker(path, line)
    check.need(_whole(header["batch"], 1, MAX_BATCH), "batch", f"a whole number in [1, {MAX_BATCH}]", header["batch"])
    from hwnas.space import DTYPES

    check.need(header["dtype"] in DTYPES, "dtype", f"one of {', '.join(DTYPES)}", header["dtype"])
    _check_device(check, header["device"])
    _check_protocol(check, header["protocol"])
    calibration = header.get("calibration")  # its scale and offset are checked beside the header's fields
    if calibration is not None:
        if "fitted_on" in calibration:
            check.need(_whole(calibration["fitted_on"], 0), "calibration.fitted_on", "a whole number >= 0",
                       calibration["fitted_on"])
    return check_space_description(check, header["space"])


def _check_device(check: _Checker, device: dict) -> None:
    name = device.get("name")
    check.need(isinstance(name, str) and name.strip() != "", "device.name", "a non-empty string", name)
    for part in ("comparable", "info"):
        if part in device:
            check.need(isinstance(device[part], dict), f"device.{part}", "an object", device[part])
    threads = device.get("comparable", {}).get("threads")
    if threads is not None:
        check.need(_whole(threads), "device.comparable.threads", "a whole number >= 1 or null", threads)


def _check_protocol(check: _Checker, protocol: dict) -> None:
    if "imported" in protocol:  # a table imported from a publication: measured by others, with no protocol of ours
        check.need(set(protocol) == {"imported"} and isinstance(protocol["imported"], str), "protocol",
                   "the measurement protocol's settings or {\"imported\": SOURCE}", protocol)
        return
    from hwnas.timing.protocol import Protocol

    fields = {f.name: f.default for f in dataclasses.fields(Protocol)}
    for name, value in protocol.items():
        if name in fields:
            kind = type(fields[name])
            ok = (isinstance(value, bool) if kind is bool else _number(value) if kind is float
                  else _whole(value, -2**62) if kind is int else isinstance(value, kind))
            check.need(ok, f"protocol.{name}", {bool: "true or false", float: "a number", int: "a whole number",
                                                str: "a string"}.get(kind, kind.__name__), value)
    try:  # the ranges of the settings it names (one it lacks or does not know is refused where it measures)
        Protocol(**{**fields, **{k: v for k, v in protocol.items() if k in fields}})
    except HwnasError as exc:
        raise TableError(f"a lookup table's header must hold a valid measurement protocol, but {check.where} does "
                         f"not: {exc}") from None


def check_space_description(check: _Checker, space: dict) -> SearchSpace:
    """Check a space description setting by setting (by the types of its builder's defaults) and build it."""
    from hwnas.space import SPACES, get_space
    from hwnas.space.profiles import STYLES

    name = space.get("space")
    check.need(isinstance(name, str) and name in SPACES, "space.space", f"one of {', '.join(SPACES)}", name)
    profile = space.get("input")
    check.need(isinstance(profile, dict), "space.input", "an object (name, channels, resolution, num_classes, "
               "style)", profile)
    check.need(isinstance(profile.get("name"), str) and profile["name"] != "", "space.input.name",
               "a non-empty string", profile.get("name"))
    for field, high in (("channels", MAX_CHANNELS), ("resolution", MAX_RESOLUTION), ("num_classes", 10**6)):
        check.need(_whole(profile.get(field), 1, high), f"space.input.{field}", f"a whole number in [1, {high}]",
                   profile.get(field))
    check.need(profile.get("style") in STYLES, "space.input.style", f"one of {', '.join(STYLES)}", profile.get("style"))
    width = space.get("width", 1.0)
    check.need(_number(width) and 0 < width <= 16, "space.width", "a number > 0 and <= 16", width)
    builder = SPACES.get(name)
    defaults = {p.name: p.default for p in inspect.signature(builder).parameters.values()
                if p.name not in ("profile", "width")}
    unknown = sorted(set(space) - {"space", "input", "width"} - set(defaults))
    if unknown:  # another space's settings under this name, say: named before any of their values
        raise TableError(f"a lookup table's header must describe a space hwnas can build, but {check.where} does "
                         f"not: space {name!r} takes settings {', '.join(defaults)}, but got "
                         f"{quoted(', '.join(unknown))}")
    for key, value in space.items():
        if key not in ("space", "input", "width"):
            _check_setting(check, f"space.{key}", defaults[key], value, name)
    try:
        return get_space(name, profile, **{k: v for k, v in space.items() if k not in ("space", "input")})
    except (HwnasError, TypeError, ValueError, KeyError) as exc:
        raise TableError(f"a lookup table's header must describe a space hwnas can build, but {check.where} "
                         f"does not: {' '.join(str(exc).split())[:200]}") from None


def _check_setting(check: _Checker, setting: str, default: Any, value: Any, space: str) -> None:
    """A space builder's setting: a whole number of channels where its default is one, a list of as many as the
    default where that is a sequence, a value of the default's type otherwise."""
    if isinstance(default, bool) or default is None or default is inspect.Parameter.empty:
        if isinstance(default, bool):
            check.need(isinstance(value, bool), setting, "true or false", value)
        elif setting.endswith("_channels"):  # None: the builder's own choice
            check.need(value is None or _whole(value, 1, MAX_CHANNELS), setting,
                       f"a whole number in [1, {MAX_CHANNELS}] or null", value)
        return
    if isinstance(default, int):
        check.need(_whole(value, 1, MAX_CHANNELS), setting, f"a whole number in [1, {MAX_CHANNELS}]", value)
    elif isinstance(default, Sequence) and not isinstance(default, str):
        check.need(isinstance(value, list) and len(value) == len(default)
                   and all(_whole(v, 1, MAX_CHANNELS) for v in value), setting,
                   f"a list of {len(default)} whole numbers in [1, {MAX_CHANNELS}] (space {space})", value)
    elif isinstance(default, float):
        check.need(_number(value), setting, "a number", value)
    elif isinstance(default, str):
        check.need(isinstance(value, str), setting, "a string", value)
