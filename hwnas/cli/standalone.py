"""``hwnas rank`` and ``hwnas report``: architectures trained stand-alone with one recipe, judging a supernet's
ranking and reporting searches beside the references (`hwnas.judge.rank`, `hwnas.judge.report`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from hwnas.cli.options import BATCH, SEED, Number, default_of, format_option, options, output_path, threads_option
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.outputs import check_output_dir
from hwnas.readers import require_dir
from hwnas.judge.standalone import Recipe

STANDALONE_LAYOUT = """\b
Each architecture is a run directory of its own, OUT/runs/NNN-<digest> (as `hwnas retrain`
writes; its result.json holds the test accuracy once done). Running the same command again
resumes: finished trainings are never redone. Over several processes:
  torchrun --standalone --nproc_per_node N -m hwnas.cli rank|report ...
(each process trains its own architectures; the results are those of one process with the
same --threads: a CPU training's arithmetic depends on its thread count)."""


def _d(name: str) -> Any:
    return default_of(Recipe, name)


def _recipe_options(command: str) -> list:
    """The options of a stand-alone training recipe, worded for ``command`` (rank or report)."""
    from hwnas.training.config import DEVICES
    from hwnas.training.optim import OPTIMIZERS, SCHEDULERS

    return [
        click.option("--epochs", type=Number(int, 1, 10**5), default=_d("epochs"), show_default=True,
                     help="Epochs of every stand-alone training."),
        click.option("--steps-per-epoch", type=Number(int, 0, 10**9), default=_d("steps_per_epoch"), show_default=True,
                     help="Training steps per epoch (0: one pass over the training split)."),
        click.option("--batch-size", type=BATCH, default=_d("batch_size"), show_default=True),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS.names()), default=_d("optimizer"), show_default=True),
        click.option("--lr", type=Number(float, 0, 100, low_open=True), default=_d("lr"), show_default=True),
        click.option("--momentum", type=Number(float, 0, 1, high_open=True), default=_d("momentum"), show_default=True),
        click.option("--weight-decay", type=Number(float, 0, 1), default=_d("weight_decay"), show_default=True),
        click.option("--scheduler", type=click.Choice(SCHEDULERS.names()), default=_d("scheduler"), show_default=True),
        click.option("--label-smoothing", type=Number(float, 0, 1, high_open=True), default=_d("label_smoothing"),
                     show_default=True),
        click.option("--seed", type=SEED, default=_d("seed"), show_default=True,
                     help="Seeds every training alike" + (" and the choice of the architectures."
                                                            if command == "rank" else
                                                            " and the choice of the random architectures (--random).")),
        click.option("--seeds", type=Number(int, 1, 100), default=1, show_default=True,
                     help="Trainings of every architecture, seeded --seed, --seed + 1, ...: its accuracy is their "
                          "mean, and the CSV gives their standard deviation (a single training's accuracy varies by "
                          "chance, see README)."),
        click.option("--reuse", multiple=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
                     help="A ranking or report whose finished trainings with the same recipe, seed and data count "
                          "here too, instead of being done again (repeatable)."),
        click.option("--device", type=click.Choice(DEVICES), default=_d("device"), show_default=True,
                     help="Torch device of the trainings (cuda: process r uses GPU LOCAL_RANK)."),
        click.option("--data-root", type=click.Path(file_okay=False), default=None,
                     help="Dataset folder [default: the supernet run's]." if command == "rank" else
                     "Dataset folder [default: that of the supernet the first search was scored with]."),
        threads_option,
        click.option("--chart", type=click.Path(dir_okay=False), default=None,
                     help="Chart file (.png, .svg, .pdf) [default: OUT/rank.png or OUT/report.png]."),
        click.option("--progress/--no-progress", default=True, help="Progress bar on stderr."),
        format_option,
    ]


def _recipe(settings: dict[str, Any]) -> Recipe:
    return Recipe(**{name: settings.pop(name) for name in list(settings) if name in Recipe.__dataclass_fields__})


def check_chart(path: Path) -> Path:
    from hwnas.outputs import check_output_file
    from hwnas.search.plot import chart_path

    return check_output_file(chart_path(path), "a chart")


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


@click.command("rank", epilog=STANDALONE_LAYOUT)
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--archs", "k", type=Number(int, 2, 10**4), required=True,
              help="Architectures to train stand-alone.")
@click.option("--sample", type=click.Choice(["random", "spread", "target"]), default="random", show_default=True,
              help="How they are chosen: random (uniformly from the space, the population a search explores), "
                   "spread (evenly over the supernet's accuracy range: flatters the ranking), target (random ones "
                   "within --band below --target-latency on the first --table: where a search under it decides). "
                   "With --archs-from: random (or spread) among their architectures.")
@click.option("--target-latency", "target", default=None, help="--sample target: the latency target, e.g. 0.8ms.")
@click.option("--band", type=Number(float, 0, 1, low_open=True, high_open=True), default=0.05, show_default=True,
              help="--sample target: the share below the target that counts as at the target.")
@click.option("--archs-from", multiple=True, type=click.Path(file_okay=False), metavar="SEARCH_DIR|RANK_DIR",
              help="Take them from this search's candidates instead, or from another ranking (another supernet of "
                   "the space: the same architectures, whose finished trainings with the same recipe and data are "
                   "reused, not redone). Repeatable: the union of their architectures (--archs their number takes "
                   "them all).")
@click.option("--pool-seed", type=SEED, default=None,
              help="Seed of the random sample the architectures are chosen from [default: --seed]: another pool "
                   "seed, other architectures, e.g. to add up with an earlier ranking through --archs-from.")
@click.option("--predictor", "predictor_path", type=click.Path(dir_okay=False), default=None,
              help="Also rank by this accuracy predictor (`hwnas predictor fit`), beside the supernet.")
@click.option("--bn-batches", type=Number(int, 1, 10**4), default=None,
              help="Training batches that recalibrate BN per architecture, as the search uses [default: the run's].")
@click.option("--val-batches", type=Number(int, 1, 10**6), default=None,
              help="Validation batches (of the run's batch size) per architecture, as the search uses [default: "
                   "the whole validation split].")
@click.option("--table", "table_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Lookup table of the run's space (repeatable): a latency column per table in rank.csv.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), callback=output_path,
              metavar="RANK_DIR", help="Ranking directory (created, or resumed if it holds this ranking).")
@options(*_recipe_options("rank"))
def rank(run_dir: str, k: int, sample: str, target: str | None, band: float, archs_from: tuple[str, ...],
         pool_seed: int | None, predictor_path: str | None, bn_batches: int | None, val_batches: int | None,
         table_paths: tuple[str, ...], output: Path, data_root: str | None, threads: int | None, chart: str | None,
         progress: bool, fmt: str, seeds: int, reuse: tuple[str, ...], **settings: Any) -> None:
    """How well a trained supernet ranks architectures: K of them trained stand-alone, Kendall tau.

    K architectures (drawn uniformly from the space by default; --sample) are each trained from scratch
    with one recipe on the supernet run's data and evaluated on the test split, which neither the
    supernet nor a search ever saw. The supernet scores them as a search would (its --bn-batches and
    --val-batches), with BN recalibrated and inherited; --predictor adds a predictor's estimate. Prints
    Kendall tau, Spearman rho and top-k overlap (k = max(2, K // 4); chance level k / K) of stand-alone
    accuracy against every estimate and against two baselines the supernet should beat, params and MACs,
    each with a bootstrap 95 % interval, and the paired differences between estimators with their
    intervals; writes RANK_DIR/rank.csv (per architecture: the estimates, stand-alone test and
    validation accuracy, latency per table, MACs, params), rank.json (settings, the sample, statistics,
    differences, verdict) and a scatter chart. With --seeds 2 or more it also says how far the stand-alone
    accuracies can be trusted: the Kendall tau a perfect estimator would reach against them (the ceiling of
    every estimate) and that of a second training of the same architectures.
    """
    from hwnas.errors import ConfigError
    from hwnas.judge.charts import draw_rank_chart
    from hwnas.judge.rank import Sample, plain, rank_supernet
    from hwnas.search.constraints import parse_latency
    from hwnas.search.predictor import Predictor
    from hwnas.tables import LookupTable
    from hwnas.threads import configure
    from hwnas.training.run_dir import read_run
    from hwnas.training.trained import data_settings, open_evaluator

    recipe = _recipe(settings)
    chosen = Sample(sample, parse_latency(target) if target is not None else None, band)
    check_output_dir(output, "a ranking directory", "ranking")
    require_dir(run_dir, "RUN_DIR must be a trained supernet's run directory", ConfigError)
    chart_path = check_chart(Path(chart) if chart else output / "rank.png")
    tables = [LookupTable.load(p) for p in table_paths]
    predictor = Predictor.load(predictor_path) if predictor_path else None
    configure(threads)
    evaluator = open_evaluator(run_dir, device=recipe.device, data_root=data_root, bn_batches=bn_batches,
                               val_batches=val_batches)
    stored = read_run(run_dir)
    data = {**data_settings(stored.config), **({"data_root": data_root} if data_root else {})}
    with ProgressDisplay(enabled=progress and _main_process()) as display:
        result = rank_supernet(evaluator, data, recipe, output, archs=k, seed=recipe.seed, sample=chosen,
                               archs_from=archs_from or None, seeds=seeds, pool_seed=pool_seed, reuse=reuse,
                               tables=tables, predictor=predictor, on_progress=display)
    if result is None:
        return
    draw_rank_chart(result.rows, plain(result.agreement), chart_path,
                    title=f"{result.config['space']['space']} supernet {Path(run_dir).name}: {len(result.rows)} "
                          f"architectures {chosen.describe() if not archs_from else 'from ' + ', '.join(archs_from)}, "
                          f"{recipe.epochs} stand-alone epochs each" + (f", mean of {seeds} seeds" if seeds > 1 else ""))
    extra = {"ranking": str(output), "architectures": len(result.rows),
             "sample": chosen.describe() if not archs_from else f"from {', '.join(archs_from)} ({sample})",
             "top_k": result.top_k, "top_k_chance": round(result.comparison.chance_top_k, 4),
             "verdict": result.verdict, "truth": _truth(result.truth, fmt), "chart": str(chart_path)}
    differences = result.comparison.difference_rows()
    if fmt == "table":
        click.echo(render(result.summary_rows(), "table", extra=extra))
        click.echo("paired differences (first - second, 95 % interval of the difference):")
        click.echo(render(differences, "table"))
        return
    click.echo(render(result.summary_rows(), fmt, extra={**extra, "differences": differences} if fmt == "json" else None))


def _truth(truth: Any, fmt: str) -> Any:
    """How far the stand-alone accuracies can be trusted (`hwnas.judge.agreement.Reliability`), as text or numbers."""
    if fmt == "json":
        return None if truth is None else truth.row()
    return ("unknown with one seed: --seeds 2 or more say how far the stand-alone accuracies can be trusted"
            if truth is None else truth.text())


@click.command("report", epilog=STANDALONE_LAYOUT)
@click.argument("searches", nargs=-1, required=True, type=click.Path(file_okay=False), metavar="SEARCH_DIR...")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), callback=output_path,
              metavar="REPORT_DIR", help="Report directory (created, or resumed if it holds this report).")
@click.option("--references/--no-references", default=True, show_default=True,
              help="Train the space's reference architectures beside the searches' own.")
@click.option("--reference", "reference_names", multiple=True, metavar="NAME",
              help="Only this reference (repeatable), e.g. FBNet-A [default: every reference of the space].")
@click.option("--measured", is_flag=True,
              help="Also time every network end to end on the first table's device (this machine), with the "
                   "table's protocol: references of other channels too, which the table cannot predict.")
@click.option("--random", "random_archs", type=Number(int, 0, 1000), default=8, show_default=True,
              help="Random architectures within --band of each found one's table latency, trained with the same "
                   "recipe: the found one is compared with the best of them (0: none).")
@click.option("--band", type=Number(float, 0, 1, low_open=True, high_open=True), default=0.05, show_default=True,
              help="The share of the found architecture's latency within which a random one counts as equal.")
@options(*_recipe_options("report"))
def report(searches: tuple[str, ...], output: Path, references: bool, reference_names: tuple[str, ...], measured: bool,
           random_archs: int, band: float,
           data_root: str | None, threads: int | None, chart: str | None, progress: bool, fmt: str, seeds: int,
           reuse: tuple[str, ...], **settings: Any) -> None:
    """The architectures searches returned, retrained stand-alone beside the space's references.

    Each search's returned architecture (a sweep directory stands for its searches), --random random
    architectures of the same table latency (within --band) beside each, and the reference architectures
    of its space (FBNet-A/B/C for fbnet, ...) are trained from scratch with one recipe, on the data the
    searches were scored on, at their input profile and width, and evaluated on the test split. Each found
    architecture is compared at equal latency with the best of its random neighbours and with every
    reference whose table latency a search that returned it targeted (`hwnas search --target-latency
    FBNet-A`): the difference with a 95 % interval (the sd of one training pooled over --seeds >= 2). Writes
    REPORT_DIR/report.csv (name, test and validation accuracy, latency on each table of the first search,
    measured latency with --measured, MACs, params), comparisons.csv, report.json and a chart of accuracy
    against latency beside the differences.
    """
    from hwnas.errors import ConfigError
    from hwnas.judge.charts import draw_report_chart
    from hwnas.judge.report import report_searches
    from hwnas.search.results import latency_column
    from hwnas.threads import configure

    recipe = _recipe(settings)
    if reference_names and not references:
        raise ConfigError("--reference chooses among the references, but --no-references trains none; give one "
                          "or the other")
    check_output_dir(output, "a report directory", "report")
    chart_path = check_chart(Path(chart) if chart else output / "report.png")
    configure(threads)
    with ProgressDisplay(enabled=progress and _main_process()) as display:
        result = report_searches(searches, recipe, output,
                                 references=list(reference_names) if reference_names else references, measured=measured,
                                 data_root=data_root, seeds=seeds, random=random_archs, band=band, reuse=reuse,
                                 on_progress=display)
    if result is None:
        return
    draw_report_chart(result.rows, latency_column(result.labels[0]), chart_path, measured=result.measured,
                      comparisons=result.comparisons,
                      title=f"stand-alone, {recipe.epochs} epochs each"
                            + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
                            + f", on {result.config['data']['dataset']} (test split)")
    shown = result.rows.drop(columns=["run", "arch"]).round(3).to_dict("records")
    extra = {"report": str(output), "chart": str(chart_path)}
    compared = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items()
                 if k not in ("sd_one_training", "df", "against_name")} for c in result.comparisons]
    if fmt == "table":
        click.echo(render(shown, "table", extra=extra))
        if compared:
            click.echo("at equal latency (found - other, 95 % interval):")
            click.echo(render(compared, "table"))
        return
    click.echo(render(shown, fmt, extra={**extra, "comparisons": result.comparisons} if fmt == "json" else None))
