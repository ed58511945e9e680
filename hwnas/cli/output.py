"""Rendering rows of results as a text table, CSV or JSON (the CLI's ``--format``): one convention for every
command.

- ``table``: the command's summary as ``key: value`` lines above the rows, footer rows (totals) below them;
  numbers may be shown in human units (``244.45M``).
- ``csv``: the rows only, nothing else (no totals, no summary): numbers as numbers (an integer column stays
  integer), a nested dict as its own columns named ``outer.inner`` (``fingerprint.threads``), a list as its JSON
  text, an empty or undefined value (NaN, an infinity, ``""``) as an empty cell. ``pd.read_csv(io.StringIO(text))``
  reads it.
- ``json``: strict JSON ``{"rows": [...], "summary": {...}}``: the same rows as the CSV (flattened the same way,
  every row with every column, null where empty) and beside them the command's summary (statistics, settings,
  totals), nested as it is, its numbers as numbers (never display text such as ``244.45M`` or ``1.23 ms``).
  ``pd.DataFrame(json.loads(text)["rows"])`` gives the CSV's DataFrame. Values are converted by
  `hwnas.files.plain`, as in hwnas's files, except that every non-finite number is null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwnas.files import dump_json, plain

FORMATS = ("table", "json", "csv")


def render(rows: Sequence[Mapping[str, Any]], fmt: str, *, extra: Mapping[str, Any] | None = None,
           footer: Sequence[Mapping[str, Any]] = ()) -> str:
    """``rows`` in ``fmt``. ``extra`` is the command's summary (context such as the space, statistics): lines
    above the table, ``"summary"`` in JSON, left out of CSV. ``footer`` rows (totals) follow the rows of the
    table and are the summary's ``"total"`` in JSON (left out of CSV)."""
    if fmt == "table":
        shown = [*rows, *footer]
        columns = list(dict.fromkeys(key for row in shown for key in row))
        data = frame([{key: row.get(key) for key in columns} for row in shown])
        for column in data.columns[data.dtypes == "Int64"]:  # na_rep does not reach pandas' <NA>
            data[column] = data[column].astype(object).where(data[column].notna(), "")
        text = data.to_string(index=False, na_rep="")
        if extra:
            text = "\n".join(f"{k}: {v}" for k, v in extra.items()) + "\n" + text
        return text
    flat = flat_rows(rows)
    if fmt == "csv":
        return frame(flat).to_csv(index=False).rstrip("\n")
    if fmt != "json":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, but got {fmt!r}")
    summary = dict(extra or {})
    if footer:
        summary["total"] = footer[0] if len(footer) == 1 else list(footer)
    return dump_json({"rows": flat, "summary": summary}, nonfinite_as_null=True, indent=2)  # hwnas's strict writer


def flat_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` as the CSV and the JSON hold them: flattened (see the module docstring), every row with every
    column (in the order they first appear), None where a row has no value."""
    flat = [_flatten(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    return [{key: row.get(key) for key in columns} for row in flat]


def frame(flat: list[dict[str, Any]]) -> pd.DataFrame:
    """``flat`` rows as a DataFrame whose integer columns stay integer where a value is missing (written as
    ``1``, not ``1.0``)."""
    data = pd.DataFrame(flat)
    for column in data.columns:
        values = [row[column] for row in flat if row[column] is not None]
        if values and len(values) < len(flat) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            data[column] = pd.array([row[column] for row in flat], dtype="Int64")
    return data


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple, np.ndarray)):
            out[name] = dump_json(value, nonfinite_as_null=True)
        else:
            value = plain(value, nonfinite_as_null=True, where=f"row[{name!r}]")
            out[name] = None if value == "" else value
    return out


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
