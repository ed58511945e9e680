"""Rendering rows of results as a text table, CSV or JSON (the CLI's ``--format``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

FORMATS = ("table", "json", "csv")


def render(rows: Sequence[dict[str, Any]], fmt: str, *, extra: dict[str, Any] | None = None,
           footer: Sequence[dict[str, Any]] = ()) -> str:
    """``rows`` as one table; ``footer`` rows (totals) are appended to table and CSV, and kept apart in JSON
    together with ``extra`` (context such as the space and input profile)."""
    if fmt == "json":
        data: dict[str, Any] = dict(extra or {})
        data["rows"] = list(rows)
        if footer:
            data["total"] = footer[0] if len(footer) == 1 else list(footer)
        return json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    frame = pd.DataFrame([*rows, *footer])
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    text = frame.to_string(index=False, na_rep="")
    if extra:
        text = "\n".join(f"{k}: {v}" for k, v in extra.items()) + "\n" + text
    return text


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (an undefined statistic, e.g. Kendall tau of a constant) as None, so
    that ``--format json`` is strict JSON that every parser reads (null, not NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
