"""The ``hwnas`` command line: thin commands over the library, one module per area.

Every `HwnasError`, and every usage error of a subcommand (a missing option, a value of the wrong type),
becomes one line on stderr and exit code 2; anything else is a bug and keeps its traceback. Notices the
library logs to the ``hwnas`` logger (a run resumed, data found elsewhere) are printed on stderr.

A command's module is imported only when the command runs or shows its help (`COMMANDS`), so that
``hwnas --help`` and ``hwnas --version`` answer without importing torch.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from hwnas import __version__
from hwnas.errors import HwnasError


#: command -> (module of hwnas.cli that defines it, its name there, the line ``hwnas --help`` shows for it,
#: which is the first sentence of its docstring: a test keeps them equal)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "arch": ("space", "arch", "Per-block MACs and params of one architecture of SPACE."),
    "demo": ("demo", "demo", "The whole pipeline in minutes on a CPU with no network."),
    "devices": ("profiling", "devices", "List the device backends, whether this machine can run them, and their "
                                        "fingerprint."),
    "eval": ("training", "eval_command", "Validation accuracy (%) of subnets of a trained supernet, with inherited "
                                         "weights."),
    "export": ("search", "export", "Write an architecture as JSON, PyTorch weights + build recipe, and ONNX."),
    "plot": ("search", "plot", "Accuracy vs latency (or energy) of one or more searches: candidates, Pareto front, "
                               "target, references."),
    "predictor": ("predictor", "predictor", "Fit and inspect accuracy predictors (searches of thousands of candidates a "
                                            "second)."),
    "profile": ("profiling", "profile", "Measure every block of a space on a device into a lookup table."),
    "rank": ("standalone", "rank", "How well a trained supernet ranks architectures: K of them trained stand-alone, "
                                   "Kendall tau."),
    "references": ("space", "references", "List the reference architectures with their published and counted "
                                          "ImageNet MACs/params."),
    "report": ("standalone", "report", "The architectures searches returned, retrained stand-alone beside the space's "
                                       "references."),
    "retrain": ("training", "retrain_command", "Train one architecture of a search space from scratch, as a "
                                               "standalone network."),
    "search": ("search", "search", "Search a space for the most accurate architecture under a latency target."),
    "spaces": ("space", "spaces", "List the search spaces: layers, ops per layer and number of architectures."),
    "table": ("tables", "table", "Inspect, compare, import and adapt lookup tables."),
    "train": ("training", "train_command", "Train a supernet of a search space on a dataset."),
    "validate": ("profiling", "validate", "Measure random whole architectures on the table's device and report how "
                                          "well the table predicts them."),
}


class HwnasGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        from hwnas.cli.config import add_config_option  # --config FILE on every command, added here once

        return add_config_option(getattr(importlib.import_module(f"hwnas.cli.{module}"), attribute))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

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


def main() -> None:
    cli(prog_name="hwnas")


if __name__ == "__main__":
    sys.exit(main())
