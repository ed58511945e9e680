"""Whole-network measurements for `hwnas table adapt`: MEASURED.csv (``arch``, ``latency_ms``; what `hwnas
validate --export` asks to be filled in) read and validated against a table's space."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hwnas.errors import ArchitectureError, DataError, quoted
from hwnas.readers import read_text
from hwnas.space.architecture import Architecture

if TYPE_CHECKING:
    from hwnas.space.space import SearchSpace

#: the whole-network latencies (ms) a measurement can be: below 1 ns or above ~3 h is a unit or input error, and
#: numbers near the float limits would overflow the fit
MIN_MS, MAX_MS = 1e-6, 1e7

__all__ = ["MAX_MS", "MIN_MS", "Measurements", "measurements_from_frame", "read_measurements"]


def _columns(frame: pd.DataFrame) -> str:
    """A frame's column names for an error: as they are, or quoted cut when they are too long to read."""
    names = ", ".join(map(str, frame.columns)) or "none"
    return names if len(names) <= 100 else quoted(names)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Measurements:
    """Whole-network latencies of distinct architectures (duplicates in the file are averaged)."""

    archs: list[Architecture]
    latency_ms: np.ndarray
    rows: int  # rows read, before averaging duplicates
    source: str = "(in memory)"
    sha256: str | None = None


def measurements_from_frame(frame: pd.DataFrame, space: SearchSpace, *, source: str = "(in memory)",
                            sha256: str | None = None) -> Measurements:
    """Validate a frame with columns ``arch`` and ``latency_ms`` against ``space`` (its i-th row, from 0, is
    line i + 2 of a CSV): every arch must be one of the space, every latency a finite number > 0. Duplicates
    are averaged; rows with neither (blank lines) are skipped."""
    for column in ("arch", "latency_ms"):
        if column not in frame.columns:
            raise DataError(f"measurements need columns 'arch' and 'latency_ms', but {source} lacks {column!r} "
                            f"(its columns: {_columns(frame)})")
    archs, latencies = [], []
    for position, (arch_text, value) in enumerate(zip(frame["arch"], frame["latency_ms"])):
        line = position + 2
        if arch_text is None or (isinstance(arch_text, float) and np.isnan(arch_text)):
            arch_text = ""
        arch_text = str(arch_text)
        value_text = "" if value is None else str(value).strip()
        if not arch_text.strip() and value_text in ("", "nan"):
            continue  # a blank line
        if not arch_text.strip():
            raise DataError(f"every row of {source} needs an arch, but line {line} has none")
        try:
            arch = space.validate(Architecture.parse(arch_text))
        except ArchitectureError as exc:
            raise ArchitectureError(f"every arch in {source} must belong to the table's space, but line {line} "
                                    f"does not: {_one_line(exc)}") from None
        try:
            latency = float(value_text)
        except ValueError:
            latency = float("nan")
        if not np.isfinite(latency) or not MIN_MS <= latency <= MAX_MS:
            raise DataError(f"every latency_ms in {source} must be a finite number from {MIN_MS:g} to {MAX_MS:g} "
                            f"(1 ns to about 3 h), but line {line} has " + (quoted(value_text) if value_text else "none"))
        archs.append(arch)
        latencies.append(latency)
    by_arch: dict[str, list[float]] = {}
    first: dict[str, Architecture] = {}
    for arch, latency in zip(archs, latencies):
        by_arch.setdefault(str(arch), []).append(latency)
        first.setdefault(str(arch), arch)
    return Measurements(list(first.values()), np.array([np.mean(v) for v in by_arch.values()]), len(archs),
                        source, sha256)


def _check_fields(text: str, path: Path) -> None:
    """Refuse a row with more fields than the header: pandas would take its first fields as the row's index and
    shift the arch column, so the error would blame the arch."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        for row in reader:
            if header is not None and len(row) > len(header):
                raise DataError(f"every row of a measurements file must have at most the {len(header)} fields of its "
                                f"header, but {path} line {reader.line_num} has {len(row)}")
    except csv.Error:
        return  # a field over csv's size limit: pandas reads it, and the error quotes it cut


def read_measurements(path: str | Path, space: SearchSpace) -> Measurements:
    """MEASURED.csv (columns ``arch``, the compact string, and ``latency_ms``) validated against ``space``."""
    path = Path(path)
    text = read_text(path, "a measurements file", DataError)  # names the file and line of bytes that are not text
    _check_fields(text, path)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"measurements must be a CSV file with columns arch and latency_ms, but {path} could not "
                        f"be read as one: {_one_line(exc)}") from None
    return measurements_from_frame(frame, space, source=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
