"""Commands of the search: search (one target or a sweep), plot (Pareto charts), export (JSON, PyTorch, ONNX)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hwnas.cli.options import BATCH, FRACTION, POSITIVE, SEED, WIDTH, Number, default_of, format_option, output_path, threads_option
from hwnas.cli.output import render
from hwnas.cli.progress import ProgressDisplay
from hwnas.search import STRATEGIES, DifferentiableSearch, Evolution, RandomSearch
from hwnas.training.config import DEVICES, RunConfig


def _search_space(space_name: str, profile: str | None, width: float | None, table):
    """The search space: the first table's own when nothing overrides it, else the named one (which the
    table is then checked against)."""
    from hwnas.space import SPACES, get_space, space_from_description

    SPACES.get(space_name)
    described = table.header["space"]
    if described.get("space") == space_name and profile is None and width is None:
        return space_from_description(described)
    return get_space(space_name, profile or described.get("input", {}).get("name", "imagenet"),
                     width=width if width is not None else described.get("width", 1.0))


@click.command()
@click.option("--strategy", "strategy_name", type=click.Choice(STRATEGIES.names()), default="evolution",
              show_default=True, help="Search strategy.")
@click.option("--space", "space_name", required=True, help="Search space (see `hwnas spaces`).")
@click.option("--input", "profile_name", default=None, help="Input profile (default: the first table's).")
@click.option("--width", type=WIDTH, default=None, help="Width multiplier (default: the first table's).")
@click.option("--table", "table_paths", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Lookup table; repeat for several devices. The first constrains, all are reported.")
@click.option("--target-latency", "target", default=None,
              help="Latency target on the first table: 3ms, 2.5ms, 500us, 3 (ms), or a reference architecture's "
                   "name (FBNet-A: its latency on the table, to compare with it at equal latency). A list "
                   "2ms,3ms,FBNet-A runs a sweep with one sub-directory per target (SEARCH_DIR/target_2ms, ...). "
                   "Required unless --max-energy is given.")
@click.option("--max-macs", default=None, help="Upper bound on MACs per sample, e.g. 300M.")
@click.option("--max-params", default=None, help="Upper bound on parameters, e.g. 3.5M.")
@click.option("--max-energy", default=None,
              help="random and evolution: upper bound on energy per inference on the first table, which must carry "
                   "energy per block (`hwnas table import`): 2.5mJ, 800uJ, 2.5 (mJ). Alone (no --target-latency) the "
                   "latency target is the slowest architecture's latency, which bounds nothing.")
@click.option("--supernet", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Trained supernet run directory whose weights score the candidates (with --predictor: re-score "
                   "the last ones).")
@click.option("--predictor", "predictor_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="random and evolution: score candidates with this accuracy predictor (`hwnas predictor fit`; "
                   "thousands a second), then re-score the --rescore best by the supernet and return the best of "
                   "those.")
@click.option("--rescore", type=Number(int, 0, 10**5), default=None,
              help="With --predictor: the best candidates per target re-scored by the supernet (--bn-batches, "
                   "--val-batches: all validation images by default); 0 returns the predictor's best unchecked "
                   "[default: 10 for a predictor of supernet accuracy, 0 for one with a stand-alone stage, which "
                   "already estimates stand-alone accuracy: re-scoring would replace its estimate by the "
                   "supernet's, which `hwnas rank` may show to rank worse].")
@click.option("--dataset", default=None, help="Dataset of the validation split (default: the supernet's).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--download", is_flag=True, help="Download the dataset if it is missing.")
@click.option("--bn-batches", type=POSITIVE, default=None, help="Training batches that recalibrate BN per candidate.")
@click.option("--val-batches", type=POSITIVE, default=None, help="Validation batches per candidate (default: all).")
@click.option("--batch-size", type=BATCH, default=None,
              help="Batch size of recalibration and validation (differentiable: of training too, default "
                   f"{default_of(RunConfig, 'batch_size')}).")
@click.option("--eval-device", type=click.Choice(DEVICES), default=default_of(RunConfig, "device"), show_default=True,
              help="Torch device on which the supernet scores the candidates (differentiable: on which it trains).")
@threads_option
@click.option("--samples", type=Number(int, 1, 10**7), default=None, help=f"random: feasible architectures evaluated (default {default_of(RandomSearch, 'samples')}).")
@click.option("--population", type=Number(int, 1, 10**5), default=None, help=f"evolution: architectures per generation (default {default_of(Evolution, 'population')}).")
@click.option("--generations", type=Number(int, 1, 10**5), default=None,
              help=f"evolution: generations incl. the random first (default {default_of(Evolution, 'generations')}).")
@click.option("--parents", type=Number(int, 1, 10**5), default=None, help=f"evolution: best architectures bred from (default {default_of(Evolution, 'parents')}).")
@click.option("--mutation-prob", type=FRACTION, default=None,
              help=f"evolution: per-layer mutation probability (default {default_of(Evolution, 'mutation_prob')}).")
@click.option("--crossover/--no-crossover", default=None,
              help="evolution: half of each generation by crossover (default on).")
@click.option("--patience", type=Number(int, 1, 10**9), default=None, help="Rejected draws in a row before sampling gives up.")
@click.option("--epochs", type=Number(int, 1, 10**5), default=None, help=f"differentiable: joint epochs (default {default_of(DifferentiableSearch, 'epochs')}).")
@click.option("--warmup-epochs", type=Number(int, 0, 10**5), default=None, help=f"differentiable: weights-only epochs first (default {default_of(DifferentiableSearch, 'warmup_epochs')}).")
@click.option("--steps-per-epoch", type=Number(int, 0, 10**9), default=None,
              help="differentiable: batches per epoch (default: the whole training split).")
@click.option("--sampling", type=click.Choice(["gumbel-hard", "gumbel", "softmax"]), default=None,
              help=f"differentiable: op weights of the forward pass (default {default_of(DifferentiableSearch, 'sampling')}).")
@click.option("--hw-loss", type=click.Choice(["squared", "proxyless"]), default=None,
              help="differentiable: the hardware loss, w*(E[lat]-T)^2 with the miss in % of the target T, or "
                   "CE*(log E[lat]/log T)^beta (ProxylessNAS) (default "
                   f"{default_of(DifferentiableSearch, 'hw_loss')}).")
@click.option("--hc-weight", type=Number(float, 0), default=None, help=f"differentiable: w of the squared loss (default {default_of(DifferentiableSearch, 'hc_weight')}).")
@click.option("--beta", type=Number(float, 0), default=None, help=f"differentiable: beta of the proxyless loss (default {default_of(DifferentiableSearch, 'beta')}).")
@click.option("--arch-lr", type=Number(float, 0, low_open=True), default=None, help=f"differentiable: SGD lr of alpha (default {default_of(DifferentiableSearch, 'arch_lr')}).")
@click.option("--lr", type=Number(float, 0, low_open=True), default=None,
              help=f"differentiable: initial learning rate of the weights (default {default_of(RunConfig, 'lr')}, as "
                   f"`hwnas train`).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--references/--no-references", default=True, show_default=True,
              help="Place the space's reference architectures beside the candidates.")
@click.option("--force", is_flag=True,
              help="Start again in a SEARCH_DIR that holds a search with another configuration.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), callback=output_path, help="SEARCH_DIR.")
@format_option
def search(strategy_name, space_name, profile_name, width, table_paths, target, max_macs, max_params, max_energy,
           run_dir,
           predictor_path, rescore, dataset, data_root, download, bn_batches, val_batches, batch_size, eval_device, threads, samples, population,
           generations, parents, mutation_prob, crossover, patience, epochs, warmup_epochs, steps_per_epoch, sampling,
           hw_loss, hc_weight, beta, arch_lr, lr, seed, references, force, output, fmt) -> None:
    """Search a space for the most accurate architecture under a latency target.

    Every evaluated candidate goes to SEARCH_DIR/candidates.csv with its latency on every table, the
    best to best.json; an interrupted search resumes when run again with the same arguments.

    random and evolution score candidates with a trained supernet (--supernet). differentiable trains
    supernet weights and architecture parameters jointly on --dataset, or warm-started from --supernet
    on that run's own data and validation split, in SEARCH_DIR/supernet (a training run: interrupted,
    it resumes), and records its final architecture.
    """
    from hwnas.errors import ConfigError
    from hwnas.search import Constraint, check_table, parse_count, run_search, run_sweep
    from hwnas.search.constraints import parse_energy
    from hwnas.search.predictor import Predictor, PredictorEvaluator
    from hwnas.search.runner import Rescore, parse_targets
    from hwnas.search.summary import noise_note, summary_row
    from hwnas.threads import configure
    from hwnas.tables import LookupTable
    from hwnas.training import open_evaluator

    bounds = {"max_macs": parse_count(max_macs, "MACs") if max_macs is not None else None,
              "max_params": parse_count(max_params, "params") if max_params is not None else None,
              "max_energy": parse_energy(max_energy) if max_energy is not None else None}
    from hwnas.outputs import check_output_dir

    check_output_dir(output, "a search directory", "search")  # before any table, supernet or predictor is read
    if target is None and max_energy is None:
        raise ConfigError("a search needs a bound: --target-latency, or --max-energy alone, but got neither")
    if max_energy is not None and strategy_name == "differentiable":
        raise ConfigError("--max-energy filters the candidates of random and evolution search, but got --strategy "
                          "differentiable, whose hardware loss is latency's")
    settings = {k: v for k, v in (("samples", samples), ("population", population), ("generations", generations),
                                  ("parents", parents), ("mutation_prob", mutation_prob), ("crossover", crossover),
                                  ("patience", patience), ("epochs", epochs), ("warmup_epochs", warmup_epochs),
                                  ("sampling", sampling), ("hw_loss", hw_loss), ("hc_weight", hc_weight),
                                  ("beta", beta), ("arch_lr", arch_lr))
                if v is not None}
    strategy = STRATEGIES.create(strategy_name, **settings)
    # how a differentiable search trains its weights: a RunConfig's settings, with RunConfig's defaults
    weights = {k: v for k, v in (("steps_per_epoch", steps_per_epoch), ("lr", lr), ("batch_size", batch_size))
               if v is not None} if strategy_name == "differentiable" else {}
    if strategy_name != "differentiable" and (steps_per_epoch is not None or lr is not None):
        raise ConfigError(f"--{'steps-per-epoch' if steps_per_epoch is not None else 'lr'} sets how a differentiable "
                          f"search trains its supernet, but got --strategy {strategy_name}")
    if predictor_path is not None and not strategy.needs_evaluator:
        raise ConfigError(f"--predictor scores the candidates of random and evolution search, but strategy "
                          f"{strategy_name!r} trains its own supernet")
    tables = [LookupTable.load(p) for p in table_paths]
    space = _search_space(space_name, profile_name, width, tables[0])
    if target is None:  # energy alone: no latency bound, i.e. the slowest architecture's latency
        targets = [Constraint(tables[0], 1.0, space=space).maximum_latency() * (1 + 1e-9)]
    else:
        targets = parse_targets(target, tables[0], space)
    predictor = Predictor.load(predictor_path) if predictor_path is not None else None
    if predictor is not None:
        predictor.check_for(space)
    if rescore is None:
        rescore = 0 if predictor is not None and predictor.target == "standalone" else 10
    # everything that can be refused without the supernet is refused before loading it
    for ms in targets:
        Constraint(tables[0], ms, space=space, **bounds).check_reachable()
    for other in tables[1:]:
        check_table(other, space)
    needs_supernet = predictor is None or rescore > 0
    if strategy.needs_evaluator and run_dir is None and needs_supernet:
        raise ConfigError(f"strategy {strategy_name!r} ranks architectures by their accuracy with supernet weights "
                          f"and needs --supernet RUN_DIR" + (" (to re-score the predictor's best; --rescore 0 "
                                                             "returns the predictor's best unchecked)"
                                                             if predictor is not None else ""))
    configure(threads)
    evaluator, training, rescorer = None, None, None
    if strategy_name == "differentiable":
        training = _differentiable_training(space, run_dir, dataset, data_root, download, eval_device, weights)
    elif run_dir is not None and needs_supernet:
        evaluator = open_evaluator(run_dir, space=space, dataset=dataset, data_root=data_root, download=download,
                                   bn_batches=bn_batches, val_batches=val_batches, batch_size=batch_size,
                                   device=eval_device)
    if predictor is not None:
        rescorer = Rescore(evaluator, rescore) if rescore > 0 else None
        evaluator = PredictorEvaluator(predictor)
    common = dict(space=space, tables=tables, evaluator=evaluator, seed=seed, force=force, references=references,
                  training=training, rescore=rescorer, **bounds)
    with ProgressDisplay() as progress:
        if len(targets) == 1:
            results = [run_search(strategy, target_ms=targets[0], output=output, on_progress=progress, **common)]
        else:
            results = run_sweep(strategy, targets_ms=targets, output=output, on_progress=progress, **common)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 reports
    rows = []
    for ms, result in zip(targets, results):
        row = {**summary_row(result), "directory": str(result.path)}
        rows.append(row)
        for note in result.notes:
            click.echo(f"note ({ms:g} ms): {note}", err=True)
        scorer = (result.config.get("rescore") or {}).get("evaluator") if row.get("scored_by", "").startswith(
            "supernet (re") else result.config.get("evaluator")
        noise = noise_note(row, (scorer or {}).get("val_samples"))
        if noise:
            click.echo(f"note ({ms:g} ms): {noise}", err=True)
    click.echo(render(rows, fmt))


@click.command()
@click.argument("search_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_path,
              help="Chart file: .png, .svg or .pdf.")
@click.option("--table", "tables", multiple=True,
              help="Table label(s) to plot (a search's latency_ms[LABEL] columns), or 'all'; default: the "
                   "table each search was constrained by.")
@click.option("--measured", is_flag=True, help="Measure each Pareto front on its table's device and plot it beside "
                                               "the prediction.")
@click.option("--x", "x_axis", type=click.Choice(["latency", "energy"]), default="latency", show_default=True,
              help="The x axis: latency, or energy on tables that carry it (`hwnas table import ... --metric energy`; "
                   "the target drawn is then the search's --max-energy).")
@click.option("--dpi", type=Number(int, 20, 1200), default=150, show_default=True, help="Resolution of a .png chart.")
@click.option("--size", default=None, metavar="WxH",
              help="Width and height in inches, e.g. 6x4 (default: 9 wide, 6.5 high, taller with more series).")
@click.option("--title", default=None, help="The chart's title (default: what is plotted, the space and input).")
@click.option("--log-x", is_flag=True, help="A logarithmic x axis.")
@format_option
def plot(search_dirs, output, tables, measured, x_axis, dpi, size, title, log_x, fmt) -> None:
    """Accuracy vs latency (or energy) of one or more searches: candidates, Pareto front, target, references.

    A sweep directory stands for all its targets; several searches (or devices) are overlaid.
    """
    from hwnas.outputs import check_output_file
    from hwnas.search.measure import measure_front
    from hwnas.search.pareto import chart_data
    from hwnas.search.plot import chart_path, draw_chart
    from hwnas.search.results import expand_search_dirs, load_search

    check_output_file(output, "a chart file")
    chart_path(output)
    inches = _chart_size(size) if size is not None else None
    if measured and x_axis == "energy":
        from hwnas.errors import ConfigError

        raise ConfigError("--measured times each front's latency, but got --x energy (hwnas measures no energy)")
    records = [load_search(p) for p in expand_search_dirs(search_dirs)]
    data = chart_data(records, list(tables) or None, x=x_axis)
    if measured:
        with ProgressDisplay() as progress:
            data = measure_front(data, records, on_progress=progress)
    draw_chart(data, output, dpi=dpi, size=inches, title=title, log_x=log_x)
    rows = []
    for s in data.series:
        for i, (arch, ms, acc) in enumerate(zip(s.front_archs, s.front.latency_ms, s.front.accuracy)):
            row = {"series": s.label, "accuracy": round(float(acc), 3),
                   ("predicted_ms" if x_axis == "latency" else "energy_mj"): round(float(ms), 4)}
            if s.measured_ms is not None:
                row["measured_ms"] = round(float(s.measured_ms[i]), 4)
                row["error_pct"] = round(100 * (float(ms) - float(s.measured_ms[i])) / float(s.measured_ms[i]), 1)
            rows.append({**row, "arch": arch})
    counts = {"series": len(data.series), "front_points": sum(len(s.front.index) for s in data.series),
              "reference_marks": len(data.references)}
    click.echo(render(rows, fmt, extra={"chart": str(output), **counts} if fmt == "json" else None))
    if fmt == "table":
        click.echo(f"{output}: {counts['series']} series, {counts['front_points']} front points, "
                   f"{counts['reference_marks']} reference marks")


@click.command()
@click.argument("source", metavar="SEARCH_DIR|ARCH")
@click.option("--space", "space_name", default=None,
              help="Search space of ARCH (a search directory knows its own).")
@click.option("--input", "profile_name", default="imagenet", show_default=True, help="Input profile of ARCH.")
@click.option("--width", type=WIDTH, default=1.0, show_default=True, help="Width multiplier of ARCH's space.")
@click.option("--supernet", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Take the weights from this trained supernet (inherited through SuperNet.subnet).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the initialisation without --supernet.")
@click.option("--onnx/--no-onnx", default=True, show_default=True,
              help="Also write model.onnx (checked in ONNX Runtime).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), callback=output_path, help="DIR.")
@format_option
def export(source, space_name, profile_name, width, run_dir, seed, onnx, output, fmt) -> None:
    """Write an architecture as JSON, PyTorch weights + build recipe, and ONNX.

    SOURCE is a search directory (its best architecture) or best.json, or with --space a reference name,
    an architecture string or an architecture JSON file.
    """
    from hwnas.errors import ConfigError, quoted
    from hwnas.export import arch_from_search, export_architecture
    from hwnas.outputs import check_apart, check_output_dir
    from hwnas.space import resolve_arch

    check_output_dir(output, "the export directory", "export")  # not another command's results
    path = Path(source)
    read = path.parent if path.name == "best.json" else path
    check_apart(output, [read if read.exists() else None, run_dir], "the export directory", inside=False)
    if path.is_dir() or path.name == "best.json":
        space, arch, figures = arch_from_search(path)
        if space_name is not None and space_name != space.name:
            raise ConfigError(f"--space must name the search's space, but the search in {path} is of space "
                              f"{space.name!r} and --space is {space_name!r}")
    else:
        if space_name is None:
            raise ConfigError(f"exporting an architecture needs --space (or a search directory), but got only "
                              f"{quoted(source)}")
        space, arch = resolve_arch(space_name, source, profile_name, width=width)
        figures = {}
    supernet = None
    if run_dir is not None:
        from hwnas.training import load_supernet

        supernet = load_supernet(run_dir)[0]
    result = export_architecture(space, arch, output, supernet=supernet,
                                 supernet_path=str(run_dir) if run_dir else None, seed=seed, extra=figures,
                                 onnx=onnx)
    weights = f"supernet {run_dir}" if run_dir else f"a fresh initialisation (seed {seed})"
    if fmt == "table":
        click.echo(f"{output}: {', '.join(result.files)}; weights from {weights}"
                   + (f"; ONNX Runtime matches PyTorch to {result.onnx_max_abs_diff:.2e}" if onnx else ""))
        return
    click.echo(render([{"directory": str(output), "arch": str(arch), "files": " ".join(result.files),
                        "weights": weights, "onnx_max_abs_diff": result.onnx_max_abs_diff}], fmt))


def _differentiable_training(space, run_dir, dataset, data_root, download, device, weights: dict):
    """The `RunConfig` a differentiable search's training run starts from: warm-started from RUN_DIR (its
    weights, its data and its own validation split), or fresh on ``dataset`` at the table's input size; how
    the weights train (``weights``: --steps-per-epoch, --lr, --batch-size) with RunConfig's defaults."""
    from hwnas.training import RunConfig

    return RunConfig(space=space.name, **_differentiable_data(space, run_dir, dataset, data_root, download, device),
                     **weights)


def _differentiable_data(space, run_dir, dataset, data_root, download, device) -> dict:
    import torch

    from hwnas.errors import ConfigError
    from hwnas.space import space_from_description
    from hwnas.training.run_dir import read_run
    from hwnas.training.trained import check_supernet_space, warm_start

    environment = dict(download=download, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if data_root is not None:
        environment["data_root"] = str(data_root)
    if run_dir is not None:
        training = warm_start(run_dir)
        check_supernet_space(space_from_description(read_run(run_dir).space), space, f"the supernet in {run_dir}")
        if dataset is not None and dataset != training["dataset"]:
            raise ConfigError(f"a warm-started search trains on the supernet's dataset ({training['dataset']!r} in "
                              f"{run_dir}), but got dataset {dataset!r}")
        return {**training, **environment}
    if dataset is None:
        raise ConfigError("differentiable search trains on a dataset, but got neither --dataset nor --supernet")
    training = dict(dataset=dataset, resolution=space.profile.resolution, width=space.config.get("width", 1.0))
    if dataset == "synthetic":
        training["synthetic_like"] = space.profile.name
    return {**training, **environment}


def _chart_size(text: str) -> tuple[float, float]:
    """``"6x4"`` -> (6.0, 4.0): width and height in inches, each finite and in 1..100."""
    from hwnas.errors import ConfigError, quoted

    parts = text.lower().replace(" ", "").split("x")
    try:
        width, height = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--size must be WIDTHxHEIGHT in inches such as 6x4, but got {quoted(text)}") from None
    if not all(1 <= v <= 100 for v in (width, height)):  # also refuses nan and inf
        raise ConfigError(f"--size must be between 1x1 and 100x100 inches, but got {quoted(text)}")
    return width, height
