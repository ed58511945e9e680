"""Charts of architectures trained stand-alone (matplotlib's Agg backend): how a supernet ranks them
(`hwnas rank`) and the found architectures beside the references (`hwnas report`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.files import write_atomic
from hwnas.search.plot import chart_path, new_figure


def _interval(a: dict) -> str:
    if a["value"] is None or (isinstance(a["value"], float) and math.isnan(a["value"])):
        return "n/a"
    return f"{a['value']:.2f} [{a['low']:.2f}, {a['high']:.2f}]"


def draw_rank_chart(rows: pd.DataFrame, agreement: dict[str, dict[str, dict]], path: str | Path, *,
                    title: str, dpi: int = 150) -> Path:
    """Stand-alone test accuracy against each supernet estimate (BN recalibrated: filled; inherited: hollow),
    with Kendall tau and its 95 % interval in the legend, and, when rows hold a predictor's estimate, against
    it in a second panel; with several seeds, +- one standard deviation of the stand-alone accuracy as error
    bars on the filled points."""
    path = chart_path(path)
    predicted = "predicted_acc" in rows and "predictor" in agreement
    fig, colours = new_figure((13 if predicted else 8, 6.5))
    axes = fig.subplots(1, 2, sharey=True) if predicted else [fig.add_subplot()]
    y = rows["standalone_test_acc"].to_numpy(float)
    sd = rows["standalone_test_acc_sd"].to_numpy(float) if "standalone_test_acc_sd" in rows else None
    panels = [(axes[0], (("recalibrated_bn", "supernet_acc_recalibrated_bn", True, "BN recalibrated"),
                         ("inherited_bn", "supernet_acc_inherited_bn", False, "BN inherited")),
               "supernet accuracy (%, validation split, inherited weights)")]
    if predicted:
        panels.append((axes[1], (("predictor", "predicted_acc", True, "predictor"),), "predicted accuracy (%)"))
    for ax, estimates, xlabel in panels:
        for i, (estimate, column, filled, name) in enumerate(estimates):
            x = rows[column].to_numpy(float)
            stats = agreement[estimate]
            colour = colours[2] if estimate == "predictor" else colours[i]
            label = (f"{name}: Kendall tau {_interval(stats['kendall_tau'])}, "
                     f"Spearman rho {_interval(stats['spearman_rho'])}")
            ax.scatter(x, y, s=46, color=colour, facecolors=colour if filled else "none", linewidths=1.5,
                       label=label, zorder=3)
            if filled and sd is not None:  # several seeds: +- one sd of the stand-alone accuracy
                ax.errorbar(x, y, yerr=sd, fmt="none", ecolor=colour, elinewidth=1, capsize=3, alpha=0.7, zorder=2)
            if filled:
                for n, (xi, yi) in enumerate(zip(x, y)):
                    ax.annotate(str(n), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=7, color="0.3")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("stand-alone accuracy (%, test split)")
    fig.suptitle(title, fontsize=10)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:]))  # a symlink is replaced
    return path


def draw_report_chart(rows: pd.DataFrame, latency: str, path: str | Path, *, title: str,
                      measured: str | None = None, comparisons: list[dict] | None = None, dpi: int = 150) -> Path:
    """Test accuracy against latency (column ``latency``): each search's architecture a diamond in its own
    colour, its random neighbours of equal latency small dots of the same colour, references black stars, each
    named; with ``measured``, the measured latency a hollow square joined to the table's. With ``comparisons``
    (`hwnas.judge.equal_latency`), a second panel draws each difference at equal latency with its 95 % interval
    against zero."""
    path = chart_path(path)
    shown = [c for c in (comparisons or []) if not np.isnan(c["difference"])]
    fig, colours = new_figure((14 if shown else 9, 6.5))
    if shown:
        ax, forest = fig.subplots(1, 2, width_ratios=[3, 2])
    else:
        ax, forest = fig.add_subplot(), None
    found = rows[rows["kind"] == "found"]
    refs = rows[rows["kind"] == "reference"]
    randoms = rows[rows["kind"] == "random"] if "near" in rows else rows.iloc[0:0]
    sd = rows["test_acc_sd"] if "test_acc_sd" in rows else None
    for i, (_, row) in enumerate(found.iterrows()):
        colour = colours[i % len(colours)]
        ax.plot([row[latency]], [row["test_acc"]], "D", color=colour, markersize=10, markeredgecolor="black",
                label=f"{row['name']}", zorder=4)
        near = randoms[randoms["near"] == row["name"]] if "near" in randoms else randoms
        if len(near):
            ax.scatter(near[latency], near["test_acc"], s=22, color=colour, alpha=0.6, zorder=3,
                       label=f"{len(near)} random at its latency")
            if sd is not None:
                ax.errorbar(near[latency], near["test_acc"], yerr=sd[near.index], fmt="none", ecolor=colour,
                            alpha=0.4, elinewidth=1, zorder=2)
    if len(refs):
        ax.plot(refs[latency], refs["test_acc"], "*", color="black", markersize=13, label="reference architectures",
                zorder=4)
    if sd is not None and len(found) + len(refs):
        named = rows[rows["kind"] != "random"]
        ax.errorbar(named[latency], named["test_acc"], yerr=sd[named.index], fmt="none", ecolor="0.3", elinewidth=1,
                    capsize=3, zorder=2)
    has_measured = measured is not None and measured in rows
    undrawn = []
    for _, row in rows[rows["kind"] != "random"].iterrows():
        name = row["name"] if row["kind"] == "reference" else _short(row["name"])
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
    if forest is not None:
        ys = np.arange(len(shown))[::-1]
        for y, c in zip(ys, shown):
            colour = "tab:green" if c["low"] > 0 else "tab:red" if c["high"] < 0 else "0.35"
            if not np.isnan(c["low"]):
                forest.plot([c["low"], c["high"]], [y, y], color=colour, linewidth=2)
            forest.plot([c["difference"]], [y], "o", color=colour)
        forest.axvline(0, color="black", linewidth=1)
        forest.set_yticks(ys, [f"{_short(c['found'])}\nvs {c['against']}" for c in shown], fontsize=7)
        forest.set_xlabel("found - other (points of stand-alone accuracy, 95 % interval)")
        forest.set_title("at equal latency", fontsize=10)
        forest.grid(True, axis="x", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8, frameon=False, ncols=2)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:]))  # a symlink is replaced
    return path


def _short(names: str) -> str:
    """A found row's name without its search folder: "s/target_1ms, s/target_2ms" -> "target_1ms, target_2ms"."""
    return ", ".join(n.split("/")[-1] for n in names.split(", "))
