"""`hwnas demo`: profile, train, search at three targets, plot, on Fashion-MNIST."""

from __future__ import annotations

import time

import click

from hwnas.cli.options import (POSITIVE, RESOLUTION, SEED, WIDTH, Number, default_of, device_names, format_option,
                               output_path, threads_option)
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.demo import DemoSettings


def _default(name: str):
    return default_of(DemoSettings, name)


@click.command()
@click.option("-o", "--output", default="hwnas-demo", show_default=True,
              type=click.Path(file_okay=False), callback=output_path, help="Directory for every file the demo writes.")
@click.option("--space", default=_default("space"), show_default=True)
@click.option("--width", type=WIDTH, default=_default("width"), show_default=True)
@click.option("--resolution", type=RESOLUTION, default=_default("resolution"), show_default=True,
              help="Input size: Fashion-MNIST's 28x28 images are resized to it.")
@click.option("--device", type=click.Choice(device_names()), default=_default("device"), show_default=True,
              help="Device backend the table is measured on (see `hwnas devices`).")
@click.option("--epochs", type=POSITIVE, default=_default("epochs"), show_default=True, help="Supernet training epochs.")
@click.option("--steps-per-epoch", type=Number(int, 1), default=_default("steps_per_epoch"), show_default=True,
              help="Training steps per epoch (the same on the full data set and on the embedded subset).")
@click.option("--predictor-samples", type=Number(int, 20, 10**6), default=_default("predictor_samples"),
              show_default=True, help="Random architectures scored by the supernet to fit the accuracy predictor on.")
@click.option("--generations", type=POSITIVE, default=_default("generations"), show_default=True,
              help="Evolution generations per target (scored by the predictor).")
@click.option("--population", type=POSITIVE, default=_default("population"), show_default=True,
              help="Evolution population (scored by the predictor).")
@click.option("--rescore", type=POSITIVE, default=_default("rescore"), show_default=True,
              help="Each target's best candidates re-scored by the supernet on the whole validation split.")
@click.option("--data-root", default=None,
              help="Where Fashion-MNIST is [default: the cache, then Debian's package, else the subset embedded in "
                   "hwnas].")
@click.option("--download", is_flag=True, help="Download the full Fashion-MNIST when it is found nowhere (without it, "
                                               "the embedded subset is used).")
@threads_option
@click.option("--seed", type=SEED, default=_default("seed"), show_default=True)
@format_option
def demo(output, space, width, resolution, device, epochs, steps_per_epoch, predictor_samples, generations, population,
         rescore, data_root, download, threads, seed, fmt) -> None:
    """The whole pipeline in minutes on a CPU with no network.

    Profile a lookup table, train a supernet on Fashion-MNIST (the subset embedded in hwnas where the full
    set is not found), fit an accuracy predictor on architectures it scores, run evolution at three
    latency targets on the predictor and re-score each target's best with the supernet, measure the
    results on the device, draw the Pareto chart and summarise. Everything is checked before the first
    step's work.
    """
    from hwnas import demo as library

    settings = library.DemoSettings(space=space, width=width, resolution=resolution, device=device, epochs=epochs,
                                    steps_per_epoch=steps_per_epoch, generations=generations, population=population,
                                    predictor_samples=predictor_samples, rescore=rescore, data_root=data_root, download=download, threads=threads, seed=seed)
    start = time.perf_counter()
    with ProgressDisplay() as progress:
        result = library.run_demo(output, settings, on_progress=progress)
    total = time.perf_counter() - start
    if fmt != "table":
        extra = {"dataset": result.dataset, "seconds": {**result.seconds, "total": total}, "table": str(result.table),
                 "predictor": str(result.predictor),
                 "run": str(result.run_dir), "search": str(result.search_dir), "chart": str(result.chart),
                 "notes": result.notes}
        click.echo(render(result.rows, fmt, extra=extra if fmt == "json" else None))
        return
    click.echo("")
    click.echo(render(result.rows, "table"))
    click.echo("(best_accuracy and se: % on the whole validation split, re-scored by the supernet; lead: over the "
               "runner-up; ahead_of: runners-up it leads by more than two standard errors of the difference; "
               "predicted_ms: the table; measured_ms: the whole network on the device)")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo("")
    steps = ", ".join(f"{name} {s:.0f} s" for name, s in result.seconds.items())
    click.echo(f"data: {result.dataset}\ntime: {steps}, total {total:.0f} s")
    click.echo(f"table     {result.table}\nrun       {result.run_dir}\npredictor {result.predictor}\n"
               f"search    {result.search_dir}\nchart     {result.chart}")
    click.echo("the same by hand:\n"
               f"  hwnas profile --space {space} --input fashion-mnist --width {width} --resolution {resolution} "
               f"--device {device} --rounds 5 --min-block-ms 10 --warmup-ms 50 --calm-wait-s 5 --calm-budget-s 20 "
               f"-o {result.table}\n"
               f"  hwnas train --space {space} --dataset {result.dataset} --width {width} --resolution {resolution} "
               f"--strategy anchored --anchor-epochs {epochs // 4} --epochs {epochs} --steps-per-epoch {steps_per_epoch} "
               f"--eval-paths 2 "
               f"--bn-batches 4 -o {result.run_dir}\n"
               f"  hwnas predictor fit --supernet {result.run_dir} --samples {predictor_samples} --bn-batches 4 "
               f"--val-batches 8 -o {result.predictor}\n"
               f"  hwnas search --strategy evolution --space {space} --table {result.table} --target-latency "
               f"{','.join(f'{t:g}ms' for t in result.targets_ms)} --supernet {result.run_dir} --predictor "
               f"{result.predictor} --population {population} --generations {generations} --parents "
               f"{min(library.DemoSettings().parents, population)} --rescore {rescore} --bn-batches 4 "
               f"-o {result.search_dir}\n"
               f"  hwnas plot {result.search_dir} -o {result.chart}")
