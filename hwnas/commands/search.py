"""Commands of the search: search (one target or a sweep), plot (Pareto charts), export (JSON, PyTorch, ONNX)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hwnas.output import render


def register(cli: click.Group) -> None:
    cli.add_command(search)
    cli.add_command(plot)
    cli.add_command(export)


def _search_space(space_name: str, profile: str | None, width: float | None, table):
    """The search space: the first table's own when nothing overrides it, else the named one (which the
    table is then checked against)."""
    from hwnas.supernet.spaces import SPACES, get_space, space_from_description

    SPACES.get(space_name)
    described = table.header["space"]
    if described.get("space") == space_name and profile is None and width is None:
        return space_from_description(described)
    return get_space(space_name, profile or described.get("input", {}).get("name", "imagenet"),
                     width=width if width is not None else described.get("width", 1.0))


class _SearchProgress:
    """Progress per target: generation (or samples) done, best accuracy, feasible count. A click progress bar
    on a terminal; one line per step otherwise (logs of long searches)."""

    def __init__(self, label: str):
        self.label, self.bar, self.done = label, None, 0
        self.tty = sys.stderr.isatty()

    def __call__(self, p) -> None:
        if not self.tty:
            if p.done > self.done or p.done == 0 == p.evaluated:  # a line per step, not per candidate
                click.echo(f"{self.label}: {p.done}/{p.total}  {self._describe(p)}", err=True)
                self.done = p.done
            return
        if self.bar is None:
            self.bar = click.progressbar(length=p.total, label=self.label, show_pos=True, show_eta=True,
                                         file=sys.stderr, item_show_func=self._describe)
            self.bar.__enter__()
        self.bar.update(p.done - self.done, current_item=p)
        self.done = p.done

    @staticmethod
    def _describe(p) -> str | None:
        if p is None:
            return None
        best = f"{p.best_accuracy:.2f} %" if p.best_accuracy is not None else "-"
        return f"gen {p.generation}  best {best}  feasible {p.feasible}/{p.evaluated}  rejected {p.rejected}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.command()
@click.option("--strategy", "strategy_name", default="evolution", show_default=True,
              help="Search strategy: random, evolution or differentiable.")
@click.option("--space", "space_name", required=True, help="Search space (see `hwnas spaces`).")
@click.option("--input", "profile_name", default=None, help="Input profile (default: the first table's).")
@click.option("--width", type=float, default=None, help="Width multiplier (default: the first table's).")
@click.option("--table", "table_paths", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Lookup table; repeat for several devices. The first constrains, all are reported.")
@click.option("--target-latency", "target", required=True,
              help="Latency target on the first table: 3ms, 2.5ms, 500us, 3 (ms). A list 2ms,3ms,4ms runs a sweep "
                   "with one sub-directory per target (SEARCH_DIR/target_2ms, ...).")
@click.option("--max-macs", default=None, help="Upper bound on MACs per sample, e.g. 300M.")
@click.option("--max-params", default=None, help="Upper bound on parameters, e.g. 3.5M.")
@click.option("--supernet", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Trained supernet run directory whose weights score the candidates.")
@click.option("--dataset", default=None, help="Dataset of the validation split (default: the supernet's).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--download", is_flag=True, help="Download the dataset if it is missing.")
@click.option("--bn-batches", type=int, default=None, help="Training batches that recalibrate BN per candidate.")
@click.option("--val-batches", type=int, default=None, help="Validation batches per candidate (default: all).")
@click.option("--batch-size", type=int, default=None, help="Batch size of recalibration and validation.")
@click.option("--eval-device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Where candidates are evaluated (default: cuda when available).")
@click.option("--threads", type=int, default=None, help="PyTorch CPU threads for evaluation (default: PyTorch's).")
@click.option("--samples", type=int, default=None, help="random: feasible architectures evaluated (default 1000).")
@click.option("--population", type=int, default=None, help="evolution: architectures per generation (default 60).")
@click.option("--generations", type=int, default=None,
              help="evolution: generations incl. the random first (default 20).")
@click.option("--parents", type=int, default=None, help="evolution: best architectures bred from (default 10).")
@click.option("--mutation-prob", type=float, default=None,
              help="evolution: per-layer mutation probability (default 0.1).")
@click.option("--crossover/--no-crossover", default=None,
              help="evolution: half of each generation by crossover (default on).")
@click.option("--patience", type=int, default=None, help="Rejected draws in a row before sampling gives up.")
@click.option("--epochs", type=int, default=None, help="differentiable: joint epochs (default 10).")
@click.option("--warmup-epochs", type=int, default=None, help="differentiable: weights-only epochs first (default 2).")
@click.option("--steps-per-epoch", type=int, default=None,
              help="differentiable: batches per epoch (default: the whole training split).")
@click.option("--sampling", type=click.Choice(["gumbel-hard", "gumbel", "softmax"]), default=None,
              help="differentiable: op weights of the forward pass (default gumbel-hard).")
@click.option("--hw-loss", type=click.Choice(["squared", "proxyless"]), default=None,
              help="differentiable: w*(E[lat]-T)^2 in % of T (seed), or CE*(log E[lat]/log T)^beta (ProxylessNAS).")
@click.option("--hc-weight", type=float, default=None, help="differentiable: w of the squared loss (default 0.005).")
@click.option("--beta", type=float, default=None, help="differentiable: beta of the proxyless loss (default 0.6).")
@click.option("--arch-lr", type=float, default=None, help="differentiable: SGD lr of alpha (default 0.05).")
@click.option("--lr", type=float, default=None, help="differentiable: SGD lr of the weights (default 0.05).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--references/--no-references", default=True, show_default=True,
              help="Place the space's reference architectures beside the candidates.")
@click.option("--force", is_flag=True,
              help="Start again in a SEARCH_DIR that holds a search with another configuration.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="SEARCH_DIR.")
def search(strategy_name, space_name, profile_name, width, table_paths, target, max_macs, max_params, run_dir, dataset,
           data_root, download, bn_batches, val_batches, batch_size, eval_device, threads, samples, population,
           generations, parents, mutation_prob, crossover, patience, epochs, warmup_epochs, steps_per_epoch, sampling,
           hw_loss, hc_weight, beta, arch_lr, lr, seed, references, force, output) -> None:
    """Search a space for the most accurate architecture under a latency target.

    Every evaluated candidate goes to SEARCH_DIR/candidates.csv with its latency on every table, the
    best to best.json; an interrupted search resumes when run again with the same arguments.

    random and evolution score candidates with a trained supernet (--supernet). differentiable trains
    supernet weights and architecture parameters jointly on --dataset (warm-started from --supernet when
    given) and records its final architecture.
    """
    from hwnas.errors import ConfigError
    from hwnas.search import (Constraint, check_table, make_strategy, parse_count, parse_latencies, run_search,
                              run_sweep)
    from hwnas.search.supernet_evaluator import evaluator_for_run
    from hwnas.tables import LookupTable

    targets = parse_latencies(target)
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, but got threads={threads}")
        import torch

        torch.set_num_threads(threads)
    bounds = {"max_macs": parse_count(max_macs, "MACs") if max_macs is not None else None,
              "max_params": parse_count(max_params, "params") if max_params is not None else None}
    settings = {k: v for k, v in (("samples", samples), ("population", population), ("generations", generations),
                                  ("parents", parents), ("mutation_prob", mutation_prob), ("crossover", crossover),
                                  ("patience", patience), ("epochs", epochs), ("warmup_epochs", warmup_epochs),
                                  ("steps_per_epoch", steps_per_epoch), ("sampling", sampling), ("hw_loss", hw_loss),
                                  ("hc_weight", hc_weight), ("beta", beta), ("arch_lr", arch_lr), ("lr", lr))
                if v is not None}
    strategy = make_strategy(strategy_name, **settings)
    tables = [LookupTable.load(p) for p in table_paths]
    space = _search_space(space_name, profile_name, width, tables[0])
    # everything that can be refused without the supernet is refused before loading it
    for ms in targets:
        Constraint(tables[0], ms, space=space, **bounds).check_reachable()
    for other in tables[1:]:
        check_table(other, space)
    if strategy.needs_evaluator and run_dir is None:
        raise ConfigError(f"strategy {strategy_name!r} ranks architectures by their accuracy with supernet weights "
                          f"and needs --supernet RUN_DIR")
    evaluator, supernet, data = None, None, None
    if strategy_name == "differentiable":
        supernet, data = _differentiable_inputs(space, run_dir, dataset, data_root, download, batch_size, seed)
    elif run_dir is not None:
        evaluator, supernet = evaluator_for_run(run_dir, space, dataset=dataset, data_root=data_root,
                                                download=download, bn_batches=bn_batches, val_batches=val_batches,
                                                batch_size=batch_size, device=eval_device)
    common = dict(space=space, tables=tables, evaluator=evaluator, seed=seed, force=force, references=references,
                  supernet=supernet, data=data, **bounds)
    if len(targets) == 1:
        progress = _SearchProgress(f"{strategy_name} search, target {targets[0]:g} ms")
        try:
            results = [run_search(strategy, target_ms=targets[0], output=output, on_progress=progress, **common)]
        finally:
            progress.close()
    else:
        bars: list[_SearchProgress] = []

        def on_target(ms: float) -> None:
            if bars:
                bars[-1].close()
            bars.append(_SearchProgress(f"{strategy_name} search, target {ms:g} ms"))

        try:
            results = run_sweep(strategy, targets_ms=targets, output=output, on_target=on_target,
                                on_progress=lambda p: bars[-1](p), **common)
        finally:
            if bars:
                bars[-1].close()
    rows = []
    for ms, result in zip(targets, results):
        best = result.best
        row = {"target_ms": ms, "directory": str(result.path), "candidates": len(result.candidates),
               "evaluated_now": result.evaluations}
        if best is not None:
            row.update({"best_accuracy": round(best.accuracy, 3),
                        **{f"latency_ms[{label}]": round(v, 4) for label, v in zip(result.labels, best.latency_ms)},
                        "macs": best.macs, "params": best.params, "arch": str(best.arch)})
        rows.append(row)
        for note in result.notes:
            click.echo(f"note ({ms:g} ms): {note}", err=True)
    click.echo(render(rows, "table"))


@click.command()
@click.argument("search_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Chart file: .png, .svg or .pdf.")
@click.option("--table", "tables", multiple=True,
              help="Table label(s) to plot (a search's latency_ms[LABEL] columns), or 'all'; default: the "
                   "table each search was constrained by.")
@click.option("--measured", is_flag=True, help="Measure each Pareto front on its table's device and plot it beside "
                                               "the prediction.")
def plot(search_dirs, output, tables, measured) -> None:
    """Accuracy vs latency of one or more searches: candidates, Pareto front, target, references.

    A sweep directory stands for all its targets; several searches (or devices) are overlaid.
    """
    from hwnas.errors import ConfigError
    from hwnas.search.pareto import chart_data, measure_front
    from hwnas.search.plot import FORMATS, draw_chart
    from hwnas.search.results import expand_search_dirs, load_search

    if output.suffix.lower() not in FORMATS:
        raise ConfigError(f"a chart file must end in {', '.join(FORMATS)}, but got {output.name!r}")
    records = [load_search(p) for p in expand_search_dirs(search_dirs)]
    data = chart_data(records, list(tables) or None)
    if measured:
        data = measure_front(data, records)
    draw_chart(data, output)
    rows = []
    for s in data.series:
        for i, (arch, ms, acc) in enumerate(zip(s.front_archs, s.front.latency_ms, s.front.accuracy)):
            row = {"series": s.label, "accuracy": round(float(acc), 3), "predicted_ms": round(float(ms), 4)}
            if s.measured_ms is not None:
                row["measured_ms"] = round(float(s.measured_ms[i]), 4)
                row["error_pct"] = round(100 * (float(ms) - float(s.measured_ms[i])) / float(s.measured_ms[i]), 1)
            rows.append({**row, "arch": arch})
    click.echo(render(rows, "table"))
    click.echo(f"{output}: {len(data.series)} series, {sum(len(s.front.index) for s in data.series)} front points, "
               f"{len(data.references)} reference marks")


@click.command()
@click.argument("source", metavar="SEARCH_DIR|ARCH")
@click.option("--space", "space_name", default=None,
              help="Search space of ARCH (a search directory knows its own).")
@click.option("--input", "profile_name", default="imagenet", show_default=True, help="Input profile of ARCH.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier of ARCH's space.")
@click.option("--supernet", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Take the weights from this trained supernet (inherited through SuperNet.subnet).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation without --supernet.")
@click.option("--onnx/--no-onnx", default=True, show_default=True,
              help="Also write model.onnx (checked in ONNX Runtime).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path), help="DIR.")
def export(source, space_name, profile_name, width, run_dir, seed, onnx, output) -> None:
    """Write an architecture as JSON, PyTorch weights + build recipe, and ONNX.

    SOURCE is a search directory (its best architecture) or best.json, or with --space a reference name,
    an architecture string or an architecture JSON file.
    """
    from hwnas.errors import ConfigError
    from hwnas.search.export import arch_from_search, export_architecture
    from hwnas.supernet.references import resolve_arch

    path = Path(source)
    if path.is_dir() or path.name == "best.json":
        space, arch, figures = arch_from_search(path)
        if space_name is not None and space_name != space.name:
            raise ConfigError(f"--space must name the search's space, but the search in {path} is of space "
                              f"{space.name!r} and --space is {space_name!r}")
    else:
        if space_name is None:
            raise ConfigError(f"exporting an architecture needs --space (or a search directory), but got only "
                              f"{source!r}")
        space, arch = resolve_arch(space_name, source, profile_name, width=width)
        figures = {}
    supernet = None
    if run_dir is not None:
        from hwnas.search.supernet_evaluator import load_run

        supernet = load_run(run_dir)[0]
    result = export_architecture(space, arch, output, supernet=supernet,
                                 supernet_path=str(run_dir) if run_dir else None, seed=seed, extra=figures,
                                 onnx=onnx)
    click.echo(f"{output}: {', '.join(result.files)}; weights from "
               f"{'supernet ' + str(run_dir) if run_dir else f'a fresh initialisation (seed {seed})'}"
               + (f"; ONNX Runtime matches PyTorch to {result.onnx_max_abs_diff:.2e}" if onnx else ""))


def _differentiable_inputs(space, run_dir, dataset, data_root, download, batch_size, seed):
    """The supernet (fresh, or warm-started from RUN_DIR) and the data a differentiable search trains on."""
    import torch

    from hwnas.errors import ConfigError
    from hwnas.search.supernet_evaluator import check_supernet_space, load_run
    from hwnas.supernet.data import build_loaders
    from hwnas.supernet.supernet import SuperNet

    if run_dir is not None:
        supernet, run_config = load_run(run_dir)
        check_supernet_space(supernet, space, str(run_dir))
        dataset = dataset or run_config.dataset
    else:
        torch.manual_seed(seed)
        supernet = SuperNet(space)
    if dataset is None:
        raise ConfigError("differentiable search trains on a dataset, but got neither --dataset nor --supernet")
    # images at the table's resolution (a supernet trained with `hwnas train --resolution` was trained at it)
    data = build_loaders(dataset, data_root, batch_size=batch_size or 64, seed=seed, download=download,
                         resolution=space.profile.resolution)
    spec = data.spec
    profile = space.profile
    if (spec.channels, spec.resolution, spec.num_classes) != (profile.channels, profile.resolution, profile.num_classes):
        raise ConfigError(f"the dataset must fit the table's input profile, but {dataset} gives "
                          f"{spec.channels}x{spec.resolution} images of {spec.num_classes} classes and the table "
                          f"was built for {profile.channels}x{profile.resolution}, {profile.num_classes} classes")
    return supernet.to(memory_format=torch.channels_last).train(), data
