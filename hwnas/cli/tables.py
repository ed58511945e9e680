"""`hwnas table`: inspect, compare and adapt lookup tables."""

from __future__ import annotations

import random
from pathlib import Path

import click
import numpy as np

from hwnas.cli.options import format_option
from hwnas.cli.output import render


@click.group()
def table() -> None:
    """Inspect, compare and adapt lookup tables."""


@table.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sort", type=click.Choice(["key", "latency", "macs"]), default="key", show_default=True)
@format_option
def show(path: Path, sort: str, fmt: str) -> None:
    """Header and per-block records of a table."""
    from hwnas.tables import LookupTable

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
    if fmt == "json":
        extra["header"] = t.header
    click.echo(render(rows, fmt, extra=extra))


@table.command()
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--archs", type=int, default=1000, show_default=True,
              help="Random architectures whose predicted latencies are rank-correlated between the tables.")
@click.option("--seed", type=int, default=0, show_default=True)
@format_option
def compare(a: Path, b: Path, archs: int, seed: int, fmt: str) -> None:
    """Compare two tables of one space on two devices: per-block ratio B/A and rank correlations.

    The architecture-level Kendall tau says how far an optimum found with one table transfers to the other.
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
    summary = {"a": f"{a} ({ta.device_name})", "b": f"{b} ({tb.device_name})", "common_blocks": len(common),
               "median_ratio": round(float(np.median(lb / la)), 4),
               "ratio_range": f"{(lb / la).min():.3f}..{(lb / la).max():.3f}",
               "block_kendall_tau": round(float(kendalltau(la, lb).statistic), 4),
               "arch_kendall_tau": round(float(kendalltau(pa, pb).statistic), 4), "archs": archs}
    click.echo(render(rows, fmt, extra=summary))
