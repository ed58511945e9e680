"""The ``hwnas`` command line: thin commands over the library, one module per area.

Every `HwnasError`, and every usage error of a subcommand (a missing option, a value of the wrong type),
becomes one line on stderr and exit code 2; anything else is a bug and keeps its traceback. Notices the
library logs to the ``hwnas`` logger (a run resumed, data found elsewhere) are printed on stderr.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from hwnas import __version__
from hwnas.errors import HwnasError


class HwnasGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HwnasError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except click.UsageError as exc:  # a subcommand's option of the wrong type, a missing option, ...
            click.echo(f"Error: {exc.format_message()}", err=True)  # one line, as for every other bad input
            ctx.exit(2)


class _EchoHandler(logging.Handler):
    """The library's notices as plain lines on stderr (click's echo, so that tests capture them)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _show_notices() -> None:
    logger = logging.getLogger("hwnas")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.INFO)


@click.group(cls=HwnasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwnas")
def cli() -> None:
    """Hardware-aware neural architecture search around per-device lookup tables.

    Search spaces: proxylessnas, fbnet, spos, single_path_nas. Input profiles: imagenet, cifar10,
    cifar100, fashion-mnist.
    """
    _show_notices()


#: modules of hwnas.cli whose `register(cli)` adds their commands to the group
COMMAND_MODULES: tuple[str, ...] = ("space", "profiling", "training", "search", "demo")

for _name in COMMAND_MODULES:
    importlib.import_module(f"hwnas.cli.{_name}").register(cli)


def main() -> None:
    cli(prog_name="hwnas")


if __name__ == "__main__":
    sys.exit(main())
