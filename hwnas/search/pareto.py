"""Accuracy-latency Pareto fronts and the data of a chart, kept apart from drawing (`hwnas.search.plot`).

`chart_data` turns search directories into a `ChartData`: one `Series` per (search, table) with all
candidates, the front and the target, plus the reference architectures; `hwnas.search.measure` adds the
front's latency measured end to end on the table's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hwnas.errors import ConfigError
from hwnas.search.results import SearchRecord, energy_column, latency_column


class ParetoFront(NamedTuple):
    """The non-dominated points, fastest first: ``index`` are their positions in the input arrays."""

    index: np.ndarray
    latency_ms: np.ndarray
    accuracy: np.ndarray


def pareto_front(latency_ms: Sequence[float], accuracy: Sequence[float]) -> ParetoFront:
    """Points that no other point beats on both lower latency and higher accuracy.

    Of points with equal latency only the most accurate can be on the front, and of identical points
    the first; along the front both latency and accuracy strictly increase.
    """
    latency, acc = np.asarray(latency_ms, dtype=float), np.asarray(accuracy, dtype=float)
    if latency.shape != acc.shape:
        raise ConfigError(f"latency and accuracy must have one value per point, but got shapes "
                          f"{latency.shape} and {acc.shape}")
    valid = np.flatnonzero(~(np.isnan(latency) | np.isnan(acc)))
    order = valid[np.lexsort((np.arange(len(valid)), -acc[valid], latency[valid]))]
    keep, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            keep.append(i)
            best = acc[i]
    index = np.array(keep, dtype=int)
    return ParetoFront(index, latency[index], acc[index])


@dataclass(frozen=True)
class Series:
    """One search seen on one table: every candidate, the feasible front, the target when this table
    is the one that constrained the search, and (optionally) the front measured on the device."""

    label: str
    search: str
    table: str
    device: str
    latency_ms: np.ndarray
    accuracy: np.ndarray
    feasible: np.ndarray
    front: ParetoFront
    front_archs: tuple[str, ...]
    target_ms: float | None
    measured_ms: np.ndarray | None = None
    best_ms: float | None = None  # the architecture the search returned (best.json), constraining table only
    best_accuracy: float | None = None


@dataclass(frozen=True)
class ReferenceMark:
    """A reference architecture on one table; ``accuracy`` is None when it was not evaluated."""

    name: str
    table: str
    device: str
    latency_ms: float
    accuracy: float | None


@dataclass(frozen=True)
class ChartData:
    series: tuple[Series, ...]
    references: tuple[ReferenceMark, ...]
    xlabel: str
    ylabel: str
    title: str
    x_name: str = "latency"  # what the x axis (Series.latency_ms, ReferenceMark.latency_ms) holds: latency or energy
    x_unit: str = "ms"


def chart_data(records: Sequence[SearchRecord], tables: Sequence[str] | None = None, *,
               x: str = "latency") -> ChartData:
    """The chart of ``records``: for each, the constraining table, or each of ``tables`` (labels; ``"all"``
    for every table of the search) that it has. ``x`` is ``"latency"`` or ``"energy"`` (each table's energy
    column, which a search writes for a table that carries energy; the target is then the search's energy bound)."""
    if not records:
        raise ConfigError("a chart needs at least one search directory, but got none")
    if x not in ("latency", "energy"):
        raise ConfigError(f"a chart's x axis must be latency or energy, but got {x!r}")
    column = latency_column if x == "latency" else energy_column
    series: list[Series] = []
    marks: dict[tuple[str, str], ReferenceMark] = {}
    for record in records:
        labels = record.labels
        wanted = [labels[0]] if not tables else labels if list(tables) == ["all"] else list(tables)
        unknown = [t for t in wanted if t not in labels]
        if unknown:
            raise ConfigError(f"tables to plot must be among those of search {record.path} ({', '.join(labels)}), "
                              f"but got {', '.join(unknown)}")
        frame = record.candidates
        for label in wanted:
            if column(label) not in frame:
                raise ConfigError(f"an energy chart needs each search's energy, but search {record.path} has none on "
                                  f"table {label!r} (search with a table that carries energy: `hwnas table import "
                                  f"... --metric energy`)")
            latency = frame[column(label)].to_numpy(float)
            accuracy = frame["accuracy"].to_numpy(float)
            feasible = frame["feasible"].to_numpy(bool)
            front = pareto_front(np.where(feasible, latency, np.nan), accuracy)
            device = record.devices[label]
            constraining = label == labels[0]
            best = record.best if constraining and record.best is not None else {}
            best_ms = best.get("latency_ms" if x == "latency" else "energy_mj", {}).get(label)
            target = record.target_ms if x == "latency" else record.config.get("max_energy_mj")
            series.append(Series(
                f"{record.name} ({label})", record.name, label, device, latency, accuracy, feasible, front,
                tuple(frame["arch"].iloc[front.index]), target if constraining else None,
                best_ms=None if best_ms is None else float(best_ms),
                best_accuracy=None if best_ms is None else float(best["accuracy"])))
            if record.references is not None and column(label) in record.references:
                for _, row in record.references.iterrows():
                    ms = float(row[column(label)])
                    if math.isnan(ms):
                        continue
                    acc = float(row["accuracy"]) if not math.isnan(float(row["accuracy"])) else None
                    key = (str(row["name"]), label)
                    if key not in marks or (marks[key].accuracy is None and acc is not None):
                        marks[key] = ReferenceMark(str(row["name"]), label, device, ms, acc)
    devices = list(dict.fromkeys(s.device for s in series))
    spaces = list(dict.fromkeys(f"{r.config['space']['space']} / {r.config['space']['input']['name']}"
                                for r in records))
    kinds = {(r.config.get("evaluator") or {}).get("kind") == "predictor" for r in records}
    ylabel = {frozenset({True}): "predicted accuracy (%, the predictor the search ran on)",
              frozenset({False}): "validation accuracy (%)"}.get(frozenset(kinds),
                                                                 "accuracy (%) as each search's estimator gives it")
    unit = "ms" if x == "latency" else "mJ"
    return ChartData(tuple(series), tuple(marks.values()), f"{x} ({unit}) on {', '.join(devices)}", ylabel,
                     "; ".join(spaces), x, unit)
