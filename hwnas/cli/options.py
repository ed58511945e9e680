"""Options shared by several commands. Defaults are read from the library's dataclasses, so that ``--help``
shows what the library does."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hwnas.cli.output import FORMATS
from hwnas.errors import quoted

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="Output format: table (for reading: summary, rows, totals), csv (the rows only) "
                                  "or json ({\"rows\": [...], \"summary\": {...}}, the same rows and the summary).")


class Number(click.ParamType):
    """A finite number of ``kind`` (int or float) in a range, e.g. ``Number(float, low=0, low_open=True)``
    for a float > 0: infinities, NaN, numbers that overflow (1e309) and values outside the range are refused
    with the range in the message, before the command does anything."""

    def __init__(self, kind: type = float, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.name = "integer" if kind is int else "float"

    def range_text(self) -> str:
        def shown(v: float) -> str:
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        low = None if self.low is None else f"{'>' if self.low_open else '>='} {shown(self.low)}"
        high = None if self.high is None else f"{'<' if self.high_open else '<='} {shown(self.high)}"
        bounds = " and ".join(b for b in (low, high) if b)
        return f"a finite {'integer' if self.kind is int else 'number'}" + (f" {bounds}" if bounds else "")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | float:
        try:
            number = float(value)
            if self.kind is int:
                if not math.isfinite(number) or number != int(number):
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"must be {self.range_text()}, but got {quoted(value)}", param, ctx)
        out_of_range = (not math.isfinite(number)
                        or (self.low is not None and (number <= self.low if self.low_open else number < self.low))
                        or (self.high is not None and (number >= self.high if self.high_open else number > self.high)))
        if out_of_range:
            self.fail(f"must be {self.range_text()}, but got {quoted(value)}", param, ctx)
        return number


#: the ranges of options that recur across commands
WIDTH = Number(float, 0, 16, low_open=True)  # a width multiplier: wider than 16x is a typo, not a network
RESOLUTION = Number(int, 1, 2048)
SEED = Number(int, 0, 2**32 - 1)
BATCH = Number(int, 1, 65536)
POSITIVE = Number(int, 1)
COUNT = Number(int, 0)
FRACTION = Number(float, 0, 1)


class Threads(click.ParamType):
    """``auto`` (as many threads as there are idle cores when the command starts) or a number >= 1."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or value == "auto":
            return None
        try:
            threads = int(value)
        except (TypeError, ValueError):
            threads = 0
        if threads < 1:
            self.fail(f"threads must be 'auto' or an integer >= 1, but got {quoted(value)}", param, ctx)
        return threads


threads_option = click.option(
    "--threads", type=Threads(), default="auto", show_default=True,
    help="PyTorch CPU threads: auto uses as many as there are idle cores when the command starts (a core busy "
         "with other work would otherwise slow every step several times over).")


def device_names() -> list[str]:
    """The device backends a table can be measured on (`hwnas devices`), for a ``--device`` choice."""
    from hwnas.devices import DEVICES

    return DEVICES.names()


def output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """An output path as given: an empty one is refused here (``Path("")`` would silently be ``.``)."""
    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter("an output must be named, but got an empty path", ctx, param)
    return Path(value)


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls``."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{cls.__name__}.{name} has no default")


def options(*decorators: Callable) -> Callable:
    """Apply several option decorators in the order given (the first is listed first in --help)."""

    def decorate(command: Callable) -> Callable:
        for option in reversed(decorators):
            command = option(command)
        return command

    return decorate


def data_options() -> list[Callable]:
    """Where a dataset is and what runs on it: `train`, `retrain`, `eval`."""
    from hwnas.training.config import DEVICES, RunConfig

    return [
        click.option("--data-root", type=click.Path(file_okay=False), default=None,
                     help="Dataset folder [default: $HWNAS_DATA or ~/.cache/hwnas/data; Fashion-MNIST also "
                          "/usr/share/datasets/fashion-mnist]."),
        click.option("--download", is_flag=True, help="Download the dataset if it is missing."),
        click.option("--workers", type=Number(int, 0, 256), default=default_of(RunConfig, "workers"), show_default=True,
                     help="Data-loading processes."),
        click.option("--device", type=click.Choice(DEVICES), default=default_of(RunConfig, "device"),
                     show_default=True, help="Torch device to run on."),
        threads_option,
    ]
