"""Options shared by several commands. Defaults are read from the library's dataclasses, so that ``--help``
shows what the library does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from hwnas.cli.output import FORMATS

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="Output format.")


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
            self.fail(f"threads must be 'auto' or an integer >= 1, but got {value!r}", param, ctx)
        return threads


threads_option = click.option(
    "--threads", type=Threads(), default="auto", show_default=True,
    help="PyTorch CPU threads: auto uses as many as there are idle cores when the command starts (a core busy "
         "with other work would otherwise slow every step several times over).")


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
        click.option("--workers", type=int, default=default_of(RunConfig, "workers"), show_default=True,
                     help="Data-loading processes."),
        click.option("--device", type=click.Choice(DEVICES), default=default_of(RunConfig, "device"),
                     show_default=True, help="Torch device to run on."),
        threads_option,
    ]
