"""``hwnas train``, ``hwnas eval`` and ``hwnas retrain``: thin commands over `hwnas.training`."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import click

from hwnas.cli.options import BATCH, RESOLUTION, SEED, WIDTH, Number, data_options, default_of, format_option, options, output_path
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.errors import ConfigError
from hwnas.readers import require_dir
from hwnas.training.config import RunConfig

RUN_DIR_LAYOUT = """\b
RUN_DIR holds:
  config.json    space description, dataset, strategy, every setting, seed, hwnas version
  checkpoint.pt  model/optimizer/scheduler/strategy state, epoch, global step (written
                 atomically; read with torch.load(weights_only=True))
  log.csv        per epoch: epoch, train_loss, train_acc (%), val_acc (%), lr, images_per_s, wall_s
  events.*       TensorBoard events (tensorboard --logdir RUN_DIR)
Running the same command again resumes from the last checkpoint; a RUN_DIR that holds
another run is refused. Distributed: torchrun --nproc_per_node N -m hwnas.cli {command} ..."""


def _default(name: str) -> Any:
    return default_of(RunConfig, name)


def _training_options() -> list:
    """The options `train` and `retrain` share; defaults are RunConfig's, choices the registries'."""
    from hwnas.data import DATASETS
    from hwnas.space import SPACES
    from hwnas.training.optim import OPTIMIZERS, SCHEDULERS

    return [
        click.option("--space", required=True, help=f"Search space: {', '.join(SPACES)}."),
        click.option("--dataset", required=True,
                     help=f"Dataset: {', '.join(DATASETS)} (fashion-mnist is the embedded fashion-mnist-subset "
                          f"where the full set is not found and --download is not given)."),
        click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False), callback=output_path,
                     metavar="RUN_DIR",
                     help="Run directory (created, or resumed if it holds this run)."),
        click.option("--epochs", type=Number(int, 1, 10**5), default=_default("epochs"), show_default=True),
        click.option("--steps-per-epoch", type=Number(int, 0, 10**9), default=_default("steps_per_epoch"), show_default=True,
                     help="Training steps per epoch (0: one pass over the training split)."),
        click.option("--batch-size", type=BATCH, default=_default("batch_size"), show_default=True,
                     help="Per process."),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS.names()), default=_default("optimizer"), show_default=True,
                     help="Optimizer of the weights."),
        click.option("--lr", type=Number(float, 0, 100, low_open=True), default=_default("lr"), show_default=True, help="Initial learning rate."),
        click.option("--momentum", type=Number(float, 0, 1, high_open=True), default=_default("momentum"), show_default=True,
                     help="sgd and rmsprop momentum."),
        click.option("--weight-decay", type=Number(float, 0, 1), default=_default("weight_decay"), show_default=True),
        click.option("--scheduler", type=click.Choice(SCHEDULERS.names()), default=_default("scheduler"), show_default=True,
                     help="Learning-rate schedule, stepped every training step."),
        click.option("--step-size", type=Number(int, 1, 10**5), default=None,
                     help="step schedule: epochs between decays [default: a third of --epochs]."),
        click.option("--gamma", type=Number(float, 0, 1, low_open=True), default=_default("gamma"), show_default=True,
                     help="step schedule: decay factor."),
        click.option("--label-smoothing", type=Number(float, 0, 1, high_open=True), default=_default("label_smoothing"), show_default=True),
        click.option("--width", type=WIDTH, default=_default("width"), show_default=True, help="Width multiplier."),
        click.option("--seed", type=SEED, default=_default("seed"), show_default=True,
                     help="Seeds weights, data order, paths and the validation split."),
        click.option("--val-fraction", type=Number(float, 0, 1, low_open=True, high_open=True), default=_default("val_fraction"), show_default=True,
                     help="Share of the training split held out for validation."),
        click.option("--resolution", type=RESOLUTION, default=None, help="Resize inputs to this size [default: native]."),
        click.option("--synthetic-size", type=Number(int, 2, 10**7), default=_default("synthetic_size"), show_default=True,
                     help="synthetic dataset: training images."),
        click.option("--synthetic-like", default=_default("synthetic_like"), show_default=True,
                     help="synthetic dataset: whose channels, resolution and classes to imitate."),
        *data_options(),
        click.option("--progress/--no-progress", default=True,
                     help="Progress bar on stderr."),
        format_option,
    ]


def _run(settings: dict[str, Any], *, run_dir: str, progress: bool, fmt: str) -> None:
    from hwnas.threads import configure
    from hwnas.training import train

    threads = settings.pop("threads")
    config = RunConfig(**settings)
    configure(threads)
    with ProgressDisplay(enabled=progress) as display:
        result = train(config, run_dir, on_progress=display,
                       on_epoch=lambda stats: click.echo(stats.summary(config.epochs), err=fmt != "table"))
    if result.rank != 0:
        return
    if fmt == "table":
        if not result.history:
            click.echo(f"{run_dir} already holds all {config.epochs} epochs; nothing to train")
        if result.arch is not None:
            click.echo(f"architecture {result.arch}: test accuracy {result.test_acc:.2f} %")
        return
    extra = {"run": run_dir, "space": result.space.name, "epochs_before": result.start_epoch,
             "arch": None if result.arch is None else str(result.arch), "test_acc": result.test_acc}
    click.echo(render([stats.row() for stats in result.history], fmt, extra=extra if fmt == "json" else None))


@click.command("train", epilog=RUN_DIR_LAYOUT.format(command="train"))
@options(*_training_options())
@click.option("--strategy", type=click.Choice(["uniform", "fairness", "sandwich", "anchored"]),
              default=_default("strategy"), show_default=True,
              help="Path sampling: uniform (one random path per step), fairness (strict fairness: every op "
                   "of every layer once per step), sandwich (the largest path on the labels, the smallest and "
                   "--random-paths random ones on its soft predictions: BigNAS's sandwich rule with in-place "
                   "distillation; with several paths a step, each parameter's gradient is the mean over the paths "
                   "that used it) or anchored (uniform, but in layers without a residual the ops outside the "
                   "largest weight-sharing group also learn to reproduce that group's output, and draw only "
                   "that group for --anchor-epochs). Differentiable supernets are trained by "
                   "`hwnas search --strategy differentiable`.")
@click.option("--random-paths", type=Number(int, 0, 100), default=None,
              help="sandwich: random paths per step besides the largest and the smallest [default: 2].")
@click.option("--distill/--no-distill", default=None,
              help="sandwich: train the smallest and random paths on the largest path's soft predictions "
                   "(in-place distillation) [default: on].")
@click.option("--anchor-epochs", type=Number(int, 0, 10**6), default=None,
              help="anchored: first epochs in which layers without a residual draw only their anchor ops "
                   "[default: 0].")
@click.option("--align-weight", type=Number(float, 0), default=None,
              help="anchored: weight of the loss that aligns the other ops with the anchors [default: 1.0].")
@click.option("--weight-sharing", type=click.Choice(["entangled", "independent"]), default=_default("weight_sharing"),
              show_default=True,
              help="entangled: the MBConv ops of a layer share one set of conv weights (a k3 kernel is the centre "
                   "of the k5 one, e3 the first channels of e6), which makes single-path supernets train; "
                   "independent: every op has its own weights.")
@click.option("--eval-paths", type=Number(int, 0, 1000), default=_default("eval_paths"), show_default=True,
              help="Fixed random paths validated after every epoch (0: none).")
@click.option("--bn-batches", type=Number(int, 1, 10**4), default=_default("bn_batches"), show_default=True,
              help="Training batches that recalibrate BN before each validation.")
def train_command(run_dir: str, progress: bool, fmt: str, **settings: Any) -> None:
    """Train a supernet of a search space on a dataset.

    A progress bar shows loss, accuracy and images/s; after every epoch one line, a row in log.csv,
    TensorBoard scalars and a checkpoint. Bad settings are refused before anything is written.
    """
    for strategy, names in (("sandwich", ("random_paths", "distill")), ("anchored", ("anchor_epochs", "align_weight"))):
        given = {name: value for name in names if (value := settings.pop(name)) is not None}
        if given and settings["strategy"] != strategy:
            raise ConfigError(f"--{next(iter(given)).replace('_', '-')} is a setting of --strategy {strategy}, but "
                              f"got --strategy {settings['strategy']}")
        if settings["strategy"] == strategy:
            settings["strategy_settings"] = given
    _run(settings, run_dir=run_dir, progress=progress, fmt=fmt)


@click.command("retrain", epilog=RUN_DIR_LAYOUT.format(command="retrain"))
@options(*_training_options())
@click.option("--arch", required=True,
              help="Reference name (see `hwnas references`), architecture string, or .json file.")
def retrain_command(run_dir: str, progress: bool, fmt: str, **settings: Any) -> None:
    """Train one architecture of a search space from scratch, as a standalone network.

    The same machinery as `hwnas train` (optimizers, schedules, logs, checkpoints, resumption,
    torchrun); log.csv's val_acc is the network's own, and the test accuracy is printed at the end.
    """
    _run({**settings, "strategy": None}, run_dir=run_dir, progress=progress, fmt=fmt)


def _parse_arch(space, text: str):
    """An architecture of ``space`` from a reference name, an architecture string or a .json file."""
    from hwnas.space import Architecture, find_reference

    ref = find_reference(text)
    if ref is not None:
        if ref.space != space.name:
            raise ConfigError(f"reference {ref.name!r} belongs to space {ref.space!r}, but the run trained "
                              f"space {space.name!r}")
        return space.validate(ref.arch)
    if text.endswith(".json") and Path(text).is_file():
        return space.validate(Architecture.from_file(text))
    return space.validate(Architecture.parse(text))


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--arch", "arch_texts", multiple=True,
              help="Architecture to evaluate (repeatable): reference name, architecture string or .json file.")
@click.option("--random", "samples", type=Number(int, 0, 10**6), default=0, show_default=True,
              help="Also evaluate this many random architectures of the space.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of --random.")
@click.option("--bn-batches", type=Number(int, 1, 10**4), default=None,
              help="Training batches for BN recalibration [default: the run's].")
@options(*data_options())
@format_option
def eval_command(run_dir: str, arch_texts: tuple[str, ...], samples: int, seed: int, bn_batches: int | None,
                 data_root: str | None, download: bool, workers: int, device: str, threads: int | None,
                 fmt: str) -> None:
    """Validation accuracy (%) of subnets of a trained supernet, with inherited weights.

    Each architecture is measured twice: with the BN statistics the supernet accumulated, and after
    recalibrating them on training batches. Validation is the run's held-out part of the training split.
    """
    from hwnas.threads import configure
    from hwnas.training import open_evaluator

    if not arch_texts and samples < 1:
        raise ConfigError("eval needs architectures: give --arch (repeatable) and/or --random N with N >= 1")
    if bn_batches is not None and bn_batches < 1:
        raise ConfigError(f"BN recalibration needs >= 1 batch, but got bn_batches={bn_batches}")
    require_dir(run_dir, "RUN_DIR must be a run directory", ConfigError)
    configure(threads)
    evaluator = open_evaluator(run_dir, bn_batches=bn_batches, device=device, data_root=data_root,
                               download=download, workers=workers)
    space = evaluator.space
    archs = [_parse_arch(space, text) for text in arch_texts]
    rng = random.Random(seed)
    archs += [space.sample(rng) for _ in range(samples)]
    rows = [{"arch": str(arch), "val_acc_inherited_bn": evaluator.accuracy(arch, recalibrate=False),
             "val_acc_recalibrated_bn": evaluator.accuracy(arch)} for arch in archs]
    extra = {"run": run_dir, "space": space.name, "bn_batches": len(evaluator.calibration)}
    click.echo(render(rows, fmt, extra=extra if fmt != "csv" else None))
