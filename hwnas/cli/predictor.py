"""``hwnas predictor fit`` and ``hwnas predictor show``: an accuracy predictor fitted on supernet-scored (and
stand-alone) architectures, for `hwnas search --predictor` (`hwnas.judge.fit`, `hwnas.search.predictor`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hwnas.cli.options import BATCH, POSITIVE, SEED, Number, format_option, output_path, threads_option
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.readers import require_dir


@click.group("predictor")
def predictor() -> None:
    """Fit and inspect accuracy predictors (searches of thousands of candidates a second)."""


@predictor.command("fit", epilog="""\b
Over several processes (each scores its share of the architectures; the scores
equal one process's with the same --threads):
  torchrun --standalone --nproc_per_node N -m hwnas.cli predictor fit ...""")
@click.option("--supernet", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Trained supernet run directory whose scores the predictor learns.")
@click.option("--samples", type=Number(int, 20, 10**6), default=500, show_default=True,
              help="Architectures drawn uniformly from the space and scored by the supernet.")
@click.option("--standalone", multiple=True, type=click.Path(file_okay=False), metavar="RANK_DIR|REPORT_DIR",
              help="A ranking or report whose architectures were trained stand-alone on the supernet's data: their "
                   "validation accuracies become a second stage, so that the predictor estimates stand-alone "
                   "accuracy (repeatable; the test split is never used to fit).")
@click.option("--table", "table_path", type=click.Path(dir_okay=False), default=None,
              help="Lookup table of the space: its latency becomes a feature too.")
@click.option("--bn-batches", type=POSITIVE, default=None, help="Training batches that recalibrate BN per "
                                                                  "architecture [default: the run's].")
@click.option("--val-batches", type=POSITIVE, default=None,
              help="Validation batches per architecture [default: the whole validation split].")
@click.option("--batch-size", type=BATCH, default=None, help="Batch size of recalibration and validation "
                                                              "[default: the run's].")
@click.option("--folds", type=Number(int, 2, 100), default=5, show_default=True,
              help="Folds of the held-out figures against supernet scores.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the sample of architectures.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Torch device on which the supernet scores the architectures.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset folder [default: the supernet run's].")
@threads_option
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_path, metavar="PRED",
              help="Predictor file (JSON); its scores are kept beside it in PRED.scores.jsonl and reused.")
@format_option
def fit(run_dir: str, samples: int, standalone: tuple[str, ...], table_path: str | None, bn_batches: int | None,
        val_batches: int | None, batch_size: int | None, folds: int, seed: int, device: str | None,
        data_root: str | None, threads: int | None, progress: bool, output: Path, fmt: str) -> None:
    """Fit an accuracy predictor on architectures scored by a trained supernet.

    SAMPLES random architectures are scored by the supernet (BN recalibrated, the run's validation split);
    a ridge regression learns their accuracy from the op choice of every layer and their MACs and params.
    With --standalone, the stand-alone validation accuracies of rankings' or reports' architectures
    become a second stage on top (the first is its prior), and the predictor estimates stand-alone
    accuracy. Prints held-out Kendall tau and top-k overlap against supernet scores (out of fold) and,
    where stand-alone accuracies are known, against their test accuracy (the stand-alone stage cross-
    validated), beside the raw supernet, MACs and params, with bootstrap intervals and paired differences.
    """
    from hwnas.errors import ConfigError
    from hwnas.judge.fit import check_predictor_output, fit_predictor
    from hwnas.tables import LookupTable
    from hwnas.threads import configure
    from hwnas.training.run_dir import read_run
    from hwnas.training.trained import data_settings, open_evaluator

    check_predictor_output(output, [run_dir, *standalone, table_path])  # before the supernet is opened
    require_dir(run_dir, "--supernet must be a trained supernet's run directory", ConfigError)
    for folder in standalone:
        require_dir(folder, "--standalone must name a ranking or report directory", ConfigError)
    table = LookupTable.load(table_path) if table_path else None
    configure(threads)
    evaluator = open_evaluator(run_dir, bn_batches=bn_batches, val_batches=val_batches, batch_size=batch_size,
                               device=device, data_root=data_root)
    if table is not None:
        table.check_built_for(evaluator.space)
    data = {**data_settings(read_run(run_dir).config), **({"data_root": data_root} if data_root else {})}
    with ProgressDisplay(enabled=progress and os.environ.get("RANK", "0") == "0") as display:
        result = fit_predictor(evaluator, data, output, samples=samples, seed=seed, standalone=standalone,
                               table=table, folds=folds, on_progress=display)
    if result is None:
        return
    extra = {"predictor": str(output), "target": result.predictor.target, "noise": result.noise}
    if fmt == "table":
        click.echo(render(result.rows(), "table", extra=extra))
        click.echo("paired differences (first - second, 95 % interval of the difference):")
        click.echo(render(result.difference_rows(), "table"))
        return
    rows = result.rows()
    click.echo(render(rows, fmt, extra={**extra, "differences": result.difference_rows()} if fmt == "json" else None))


@predictor.command("show")
@click.argument("path", type=click.Path(dir_okay=False), metavar="PRED")
@format_option
def show(path: str, fmt: str) -> None:
    """What a predictor estimates, what it was fitted on, and its held-out figures."""
    from hwnas.search.predictor import Predictor

    loaded = Predictor.load(path)
    fitted = loaded.fitted_on
    space = loaded.space
    extra = {"predictor": path, "target": loaded.target, "space": space.get("space"),
             "input": (space.get("input") or {}).get("name"), "width": space.get("width"),
             "supernet": fitted.get("supernet"), "samples": fitted.get("samples"),
             "standalone_archs": fitted.get("standalone_archs"), "latency_feature": loaded.uses_latency,
             "noise": (fitted.get("heldout") or {}).get("noise")}
    rows = (fitted.get("heldout") or {}).get("rows") or []
    click.echo(render(rows, fmt, extra=extra if fmt != "csv" else None))
