"""Charts of architectures trained stand-alone (matplotlib's Agg backend): how a supernet ranks them
(`hwnas rank`) and the found architectures beside the references (`hwnas report`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.search.plot import chart_path, new_figure


def _interval(a: dict) -> str:
    if a["value"] is None or (isinstance(a["value"], float) and math.isnan(a["value"])):
        return "n/a"
    return f"{a['value']:.2f} [{a['low']:.2f}, {a['high']:.2f}]"


def draw_rank_chart(rows: pd.DataFrame, agreement: dict[str, dict[str, dict]], path: str | Path, *,
                    title: str, dpi: int = 150) -> Path:
    """Stand-alone test accuracy against each supernet estimate (BN recalibrated: filled; inherited: hollow),
    with Kendall tau and its 95 % interval in the legend; with several seeds, +- one standard deviation of the
    stand-alone accuracy as error bars on the filled points."""
    path = chart_path(path)
    fig, colours = new_figure((8, 6.5))
    ax = fig.add_subplot()
    y = rows["standalone_test_acc"].to_numpy(float)
    for i, (estimate, column, filled) in enumerate((("recalibrated_bn", "supernet_acc_recalibrated_bn", True),
                                                    ("inherited_bn", "supernet_acc_inherited_bn", False))):
        x = rows[column].to_numpy(float)
        stats = agreement[estimate]
        label = (f"BN {estimate.split('_')[0]}: Kendall tau {_interval(stats['kendall_tau'])}, "
                 f"Spearman rho {_interval(stats['spearman_rho'])}")
        ax.scatter(x, y, s=46, color=colours[i], facecolors=colours[i] if filled else "none", linewidths=1.5,
                   label=label, zorder=3)
        if filled and "standalone_test_acc_sd" in rows:  # several seeds: +- one sd of the stand-alone accuracy
            ax.errorbar(x, y, yerr=rows["standalone_test_acc_sd"].to_numpy(float), fmt="none", ecolor=colours[i],
                        elinewidth=1, capsize=3, alpha=0.7, zorder=2)
        if filled:
            for n, (xi, yi) in enumerate(zip(x, y)):
                ax.annotate(str(n), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7, color="0.3")
    ax.set_xlabel("supernet accuracy (%, validation split, inherited weights)")
    ax.set_ylabel("stand-alone accuracy (%, test split)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    fig.savefig(path, dpi=dpi)
    return path


def draw_report_chart(rows: pd.DataFrame, latency: str, path: str | Path, *, title: str,
                      measured: str | None = None, dpi: int = 150) -> Path:
    """Test accuracy against latency (column ``latency``): each search's architecture a diamond in its own
    colour, references black stars, each named; with ``measured``, the measured latency a hollow square
    joined to the table's."""
    path = chart_path(path)
    fig, colours = new_figure((9, 6.5))
    ax = fig.add_subplot()
    found = rows[rows["kind"] == "found"]
    refs = rows[rows["kind"] == "reference"]
    for i, (_, row) in enumerate(found.iterrows()):
        colour = colours[i % len(colours)]
        ax.plot([row[latency]], [row["test_acc"]], "D", color=colour, markersize=10, markeredgecolor="black",
                label=f"{row['name']}", zorder=4)
    if len(refs):
        ax.plot(refs[latency], refs["test_acc"], "*", color="black", markersize=13, label="reference architectures",
                zorder=4)
    has_measured = measured is not None and measured in rows
    undrawn = []
    for _, row in rows.iterrows():
        name = row["name"] if row["kind"] == "reference" else ", ".join(n.split("/")[-1] for n in row["name"].split(", "))
        if not np.isnan(row[latency]):
            ax.annotate(name, (row[latency], row["test_acc"]), textcoords="offset points", xytext=(7, 5), fontsize=8)
        elif has_measured and not np.isnan(row[measured]):  # a network the table cannot predict (other channels)
            ax.annotate(f"{name} (measured only)", (row[measured], row["test_acc"]), textcoords="offset points",
                        xytext=(7, 5), fontsize=8)
        else:
            undrawn.append(name)
    if has_measured:
        ok = rows[~rows[measured].isna()]
        for _, row in ok.iterrows():
            ax.plot([row[latency], row[measured]], [row["test_acc"]] * 2, ":", color="0.4", linewidth=1)
        ax.plot(ok[measured], ok["test_acc"], "s", color="0.3", markerfacecolor="none", markersize=8,
                markeredgewidth=1.5, label="measured on the table's device", zorder=3)
    ax.set_xlabel(f"latency (ms, {latency.removeprefix('latency_ms[').removesuffix(']')})")
    ax.set_ylabel("stand-alone accuracy (%, test split)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if undrawn:
        ax.text(0.01, 0.01, f"not drawn, the table lacks their blocks (--measured times them): {', '.join(undrawn)}",
                transform=ax.transAxes, fontsize=7, color="0.35")
    fig.legend(loc="outside lower center", fontsize=8, frameon=False, ncols=2)
    fig.savefig(path, dpi=dpi)
    return path
