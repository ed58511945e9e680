"""Pareto fronts measured on the device: each series' front, built as whole networks and timed on its
table's device with the table's protocol (as `hwnas validate` measures), beside the prediction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from hwnas.errors import TableError
from hwnas.timing.protocol import Protocol
from hwnas.profiler.session import check_same_device, table_device
from hwnas.profiler.validate import check_measurable, measure_archs
from hwnas.progress import ProgressCallback
from hwnas.search.pareto import ChartData
from hwnas.search.results import SearchRecord
from hwnas.tables import LookupTable


def measure_front(data: ChartData, records: Sequence[SearchRecord],
                  on_progress: ProgressCallback | None = None) -> ChartData:
    """``data`` with each series' front measured end to end on its table's device (as `hwnas validate`
    measures: same device settings and protocol as the table), which must be this machine's."""
    by_name = {r.name: r for r in records}
    measured = []
    for s in data.series:
        record = by_name[s.search]
        entry = next(t for t in record.config["tables"] if t["label"] == s.table)
        if not entry.get("path"):
            raise TableError(f"measuring the front needs the table file of {s.table!r}, but search {record.path} "
                             f"was run with an in-memory table")
        table = LookupTable.load(entry["path"])
        check_measurable(table)
        device = table_device(table)
        check_same_device(table, device)
        archs = [table.space.validate(a) for a in s.front_archs]
        ms = measure_archs(table, device, archs, Protocol.from_dict(table.header["protocol"]), on_progress=on_progress)
        measured.append(replace(s, measured_ms=np.asarray(ms)))
    return replace(data, series=tuple(measured))
