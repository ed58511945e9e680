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
    ]
