"""`hwnas table`: inspect, compare and adapt lookup tables."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import click
import numpy as np

from hwnas.cli.options import SEED, Number, format_option, output_path
from hwnas.cli.output import render


@click.group()
def table() -> None:
    """Inspect, compare, import and adapt lookup tables."""


@table.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sort", type=click.Choice(["key", "latency", "macs"]), default="key", show_default=True)
@format_option
def show(path: Path, sort: str, fmt: str) -> None:
    """Header and per-block records of a table."""
    from hwnas.tables import LookupTable
    from hwnas.tables.imports import imported_from
    from hwnas.tables.table import ENERGY

    t = LookupTable.load(path)
    rows = [{"key": r.key, "latency_ms": round(r.latency_ms, 4), "raw_ms": round(r.extra.get("raw_ms", r.latency_ms), 4),
             "iqr_ms": round(r.iqr_ms, 4), "rel_iqr": round(r.rel_iqr, 3), "macs": r.macs, "params": r.params}
            for r in t.records.values()]
    if sort != "key":
        rows.sort(key=lambda r: r["latency_ms" if sort == "latency" else "macs"])
    space = t.header["space"]
    dev = t.header["device"]
    extra = {"space": space["space"], "input": space["input"]["name"], "width": space.get("width", 1.0),
             "device": dev["name"], "cpu": dev.get("info", {}).get("cpu_model", ""),
             "threads": dev.get("comparable", {}).get("threads"), "batch": t.header["batch"],
             "dtype": t.header["dtype"], "protocol": t.header["protocol"],
             "reference_level_ms": t.header.get("reference_level_ms"), "calibration": t.header["calibration"],
             "blocks": len(rows)}
    source = imported_from(t)
    if source:  # nothing was measured: no CPU, threads, protocol or reference level to show
        for name in ("cpu", "threads", "protocol", "reference_level_ms"):
            extra.pop(name)
        extra["imported"] = source
        extra["metrics"] = ", ".join(f"{m} ({v['unit']})" for m, v in t.header["imported"].get("metrics", {}).items())
    adapted = t.header.get("adapted")
    if adapted:  # the device is the source table's: say what it was adapted to
        model = adapted["model"]
        extra["adapted"] = (f"from {adapted['measurements']['networks']} networks measured on the target "
                            f"({adapted['measurements']['path']}), {model['name']}" + (
                                " reduced to scale + offset" if model.get("reduced") else "") + "".join(
                                f"; also {o['device']} at {o['price']:.3g} ms per ms" for o in model.get("also", [])))
    if t.has_energy:
        for row, r in zip(rows, t.records.values()):
            row["energy_mj"] = round(r.extra[ENERGY], 6)
    if fmt == "json":
        extra["header"] = t.header
        if adapted:
            extra["adapted"] = adapted
    click.echo(render(rows, fmt, extra=extra))


@table.command()
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--archs", type=Number(int, 2, 10**6), default=1000, show_default=True,
              help="Random architectures whose predicted latencies are rank-correlated between the tables.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@format_option
def compare(a: Path, b: Path, archs: int, seed: int, fmt: str) -> None:
    """Compare two tables of one space on two devices (or runtimes): per-block ratio B/A, its median per op, and
    rank correlations.

    The architecture-level Kendall tau says how far an optimum found with one table transfers to the other:
    across runtimes of one machine (ort-mobile against litert), how much the runtime a network ships with
    matters.
    """
    from scipy.stats import kendalltau

    from hwnas.errors import TableError
    from hwnas.tables import LookupTable

    ta, tb = LookupTable.load(a), LookupTable.load(b)
    if ta.header["space"] != tb.header["space"]:
        raise TableError(f"tables to compare must describe the same space, but {a} has "
                         f"{ta.header['space']['space']}/{ta.header['space']['input']['name']} and {b} has "
                         f"{tb.header['space']['space']}/{tb.header['space']['input']['name']}")
    common = [k for k in ta.records if k in tb.records]
    if not common:
        raise TableError(f"tables to compare must share block keys, but {a} and {b} share none")
    la = np.array([ta.records[k].latency_ms for k in common])
    lb = np.array([tb.records[k].latency_ms for k in common])
    rows = [{"key": k, "a_ms": round(x, 4), "b_ms": round(y, 4), "ratio_b_over_a": round(y / x, 3)}
            for k, x, y in zip(common, la, lb)]
    space = ta.space
    rng = random.Random(seed)
    indices = np.array([space.indices(space.sample(rng)) for _ in range(archs)])
    pa, pb = ta.predict_indices(indices), tb.predict_indices(indices)
    by_op: dict[str, list[float]] = {}
    for k, x, y in zip(common, la, lb):
        by_op.setdefault(str(ta.records[k].block.op), []).append(y / x)
    op_ratios = {op: round(float(np.median(r)), 3) for op, r in sorted(by_op.items(), key=lambda i: np.median(i[1]))}
    summary = {"a": f"{a} ({ta.device_name})", "b": f"{b} ({tb.device_name})", "common_blocks": len(common),
               "median_ratio": round(float(np.median(lb / la)), 4),
               "op_ratios": op_ratios if fmt == "json" else ", ".join(f"{op} {r:g}" for op, r in op_ratios.items()),
               **({"ratio_range": f"{(lb / la).min():.3f}..{(lb / la).max():.3f}"} if fmt == "table" else
                  {"ratio_min": float((lb / la).min()), "ratio_max": float((lb / la).max())}),
               "block_kendall_tau": round(float(kendalltau(la, lb).statistic), 4),
               "arch_kendall_tau": round(float(kendalltau(pa, pb).statistic), 4), "archs": archs}
    click.echo(render(rows, fmt, extra=summary))


@table.group(name="import")
def import_() -> None:
    """Import a table others published (a device you do not own): `hwnas table import hw-nas-bench FILE ...`."""


@import_.command(name="hw-nas-bench")
@click.argument("source", metavar="[FILE]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device", required=True,
              help="A device of FILE: pixel3, raspi4 (measured), eyeriss, fpga (simulated) in the bundled copy.")
@click.option("--metric", "metrics", multiple=True, type=click.Choice(["latency", "energy"]), default=("latency",),
              show_default=True,
              help="What the table carries: latency always (every table predicts it); --metric energy adds the "
                   "device's energy per block (mJ), for `search --max-energy` and `plot --x energy`.")
@click.option("--input", "input_name", type=click.Choice(["cifar10", "cifar100", "imagenet"]), required=True,
              help="Input profile: the CIFAR tables (32x32, 10 or 100 classes) or the ImageNet ones (224x224).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), callback=output_path, required=True,
              help="The imported table (written atomically).")
@format_option
def hw_nas_bench(source: Path, device: str, metrics: tuple[str, ...], input_name: str, output: Path, fmt: str) -> None:
    """Import HW-NAS-Bench's FBNet tables (per-block latency and energy published for real devices) from its
    JSON FILE (default: the copy bundled with hwnas, hwnas/tables/published/) as an hwnas table of the FBNet
    space at width 1.0.

    Every block of the space is mapped to the keys HW-NAS-Bench sums for it (stem, 22 layers, head conv +
    pooling + classifier), so the table predicts exactly HW-NAS-Bench's figure for every architecture. The
    header records the source, its digest, the device, metrics and units, and that nothing was measured;
    `validate` refuses such a table, `table adapt` corrects it from whole networks you measured.
    """
    from hwnas.outputs import check_output_file
    from hwnas.tables.imports import BUNDLED, import_hw_nas_bench

    source = source or BUNDLED
    check_output_file(output, "the imported table")
    if os.path.realpath(output) == os.path.realpath(source):
        from hwnas.errors import ConfigError

        raise ConfigError(f"the imported table must not replace its source, but -o is {source}")
    t = import_hw_nas_bench(source, device, input_name, metrics=metrics)
    output.parent.mkdir(parents=True, exist_ok=True)
    t.save(output)
    space = t.space
    rng = random.Random(0)
    indices = np.array([space.indices(space.sample(rng)) for _ in range(1000)])
    lat = t.predict_indices(indices)
    row = {"table": str(output), "device": device, "input": input_name, "blocks": len(t.records),
           "metrics": ", ".join(t.header["imported"]["metrics"])}
    if fmt == "table":
        row["latency_ms_range"] = (f"{t.minimum_latency():.4g}..{float(np.max(lat)):.4g} (1000 random: median "
                                   f"{float(np.median(lat)):.4g})")
    else:  # numbers as numbers: the fastest architecture, and the slowest and median of 1000 random ones
        row.update(latency_ms_min=t.minimum_latency(), latency_ms_max_random=float(np.max(lat)),
                   latency_ms_median_random=float(np.median(lat)))
    if t.has_energy:
        energy = t.energy_indices(indices)
        row["energy_mj_median"] = round(float(np.median(energy)), 4)
    row["source"] = f"{source} (imported, not measured)"
    click.echo(render([row], fmt))


@table.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("measured", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False), callback=output_path, required=True,
              help="The adapted table (written atomically; never one of the inputs).")
@click.option("--folds", type=Number(int, 2, 1000), default=5, show_default=True,
              help="Cross-validation folds: for the held-out figures and to choose the ridge strengths; with "
                   "fewer than 5 networks per fold, leave-one-out.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the fold assignment.")
@click.option("--also", "also_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="TABLE", help="Another table of the same space, input and width, e.g. a similar device's "
                                    "published one (`table import`): each block's latency there is priced too "
                                    "(repeatable).")
@format_option
def adapt(path: Path, measured: Path, output: Path, folds: int, seed: int, also_paths: tuple[Path, ...],
          fmt: str) -> None:
    """Adapt a table to a target where only whole networks can be timed, from MEASURED (CSV: arch, latency_ms).

    Fits latency = intercept + sum of coefficient * table latency over the blocks, a block's coefficient
    shrunk (ridge, strengths chosen by cross-validation) towards its op and stage group's, the group's
    towards its op's and stage's effects, and those towards one common scale, so few measurements move the
    table gently, plus a price per dense and per depthwise MAC and, with --also, per millisecond of each
    other table's block latency; the fit is constrained so that no coefficient is below 0.01, so no block latency is negative
    (or 0) and no prediction below 0. When this whole model does not beat the table times one scale plus an
    offset by one standard error of its cross-validated error, that reduced model is written instead. Needs
    10 distinct networks; with fewer than 5 per fold the cross-validation is leave-one-out. Prints the
    cross-validated errors beside plain scale + offset and writes a table whose blocks carry the
    coefficients and whose header records the source, the measurements and the model. Duplicate
    architectures are averaged.
    """
    from hwnas.tables import LookupTable
    from hwnas.outputs import check_output_file
    from hwnas.tables.adapt import adapt_table, check_output, read_measurements

    check_output(output, path, measured, *also_paths)
    check_output_file(output, "the adapted table")
    source = LookupTable.load(path)
    also = [LookupTable.load(other) for other in also_paths]
    result = adapt_table(source, read_measurements(measured, source.space), folds=folds, seed=seed, also=also)
    output.parent.mkdir(parents=True, exist_ok=True)
    result.table.save(output)
    info = result.info
    groups = info["model"]["groups"]
    coefficients = [c for g in groups for c in g["blocks"].values()]
    extra = {"table": str(path), "measured": f"{measured} ({info['measurements']['networks']} networks, "
                                             f"{info['measurements']['rows']} rows)",
             "model": info["model"]["name"] + (
                 ", reduced to the table times one scale plus an offset (the whole model did not beat it by one "
                 "standard error in cross-validation)" if result.reduced else ""),
             "groups": f"{len(groups)} (op, stage), {len(coefficients)} blocks",
             "coefficients": f"{min(coefficients):.4g}..{max(coefficients):.4g} ({info['model']['at_floor']} at the "
                             f"floor {info['model']['floor']:g})",
             "ridge": ", ".join(f"{level} {value:g}" for level, value in result.ridge.items()) + (
                 " (chosen, but not used: the reduced model has no deviations to shrink)" if result.reduced else ""),
             **({"also": ", ".join(f"{o['device']} ({p}) at {o['price']:.3g} ms per ms" for o, p in
                                   zip(info["model"]["also"], also_paths))} if also_paths else {}),
             "offset_ms": round(result.table.calibration.offset_ms, 4),
             "held_out": f"{result.scheme} cross-validation ({result.folds} folds)" + (
                 f", fewer than 5 networks per fold for --folds {folds}" if result.folds != folds else "") + (
                 f"; the figures are the whole procedure's, which chose the reduced model in {result.reduced_in} of "
                 f"them" if result.reduced_in else "")}
    if fmt == "json":  # the same figures as numbers
        extra.update(measured=str(measured), networks=info["measurements"]["networks"],
                     measured_rows=info["measurements"]["rows"], groups=len(groups), blocks=len(coefficients),
                     coefficients={"min": min(coefficients), "max": max(coefficients),
                                   "at_floor": info["model"]["at_floor"], "floor": info["model"]["floor"]},
                     ridge=dict(result.ridge), reduced=result.reduced,
                     held_out={"scheme": result.scheme, "folds": result.folds, "reduced_in_folds": result.reduced_in},
                     output=str(output), adapted=info, **({"also": info["model"]["also"]} if also_paths else {}))
    click.echo(render(result.rows(), fmt, extra=extra))
    taus = (result.adapted.kendall_tau, result.baseline.kendall_tau)
    tau = ("Kendall tau undefined (all measured latencies equal)" if all(map(math.isnan, taus)) else
            "Kendall tau {} (scale + offset {})".format(*("undefined" if math.isnan(t) else f"{t:.3f}" for t in taus)))
    click.echo(f"wrote {output}: {path} adapted to {info['measurements']['networks']} measured networks; held-out "
               f"({result.scheme}) {tau}, mean abs error {result.adapted.mean_abs_pct:.2f} % "
               f"({result.baseline.mean_abs_pct:.2f} %)",
               err=fmt != "table")
