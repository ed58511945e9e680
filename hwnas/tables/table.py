"""The lookup table: per-block latency, MACs and params for one (device, space, input profile).

On disk it is JSON Lines: a header line (``"type": "header"``: schema version, tool version, device
fingerprint, space description, measurement protocol, calibration) and then one ``"type": "block"`` line
per block key. Records are appended one by one with flush + fsync, so a killed profiling run loses at
most the line it was writing, and that truncated line is dropped with a warning on load.
``LookupTable.load(path).to_pandas()`` gives the records as a DataFrame, and so do pandas and the standard library
alone: ``pd.DataFrame(map(json.loads, Path(path).read_text().splitlines()[1:])).drop(columns="type")`` (the same
frame; not ``pd.read_json(path, lines=True)``, which mixes the header line in as a row and turns integer columns
into floats); nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas import __version__
from hwnas.errors import HwnasError, TableError, quoted
from hwnas.files import dump_json, write_atomic
from hwnas.readers import check_fields, read_json_lines
from hwnas.space.architecture import Architecture, as_architecture
from hwnas.space.block import BlockSpec
from hwnas.tables.header import check_header
from hwnas.tables.writer import TableWriter  # noqa: F401  (re-exported: tables are written through it)

if TYPE_CHECKING:
    import torch

    from hwnas.space.space import SearchSpace

SCHEMA_VERSION = 2
KIND = "hwnas-lookup-table"


@dataclass(frozen=True)
class Record:
    """One measured block."""

    block: BlockSpec
    latency_ms: float
    iqr_ms: float
    rounds: int
    calls_per_block: int
    macs: int
    params: int
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return self.block.key

    @property
    def rel_iqr(self) -> float:
        """IQR / median of the timed blocks (tables whose latency is the median record no separate median)."""
        median = self.extra.get("median_ms", self.latency_ms)
        return self.iqr_ms / median if median > 0 else math.inf

    def to_json(self) -> dict:
        b = self.block.to_dict()
        return {"type": "block", "key": self.key, "op": b["op"], "op_params": b["params"], "cin": b["cin"],
                "cout": b["cout"], "stride": b["stride"], "height": b["height"], "width": b["width"],
                "batch": b["batch"], "dtype": b["dtype"], "latency_ms": self.latency_ms, "iqr_ms": self.iqr_ms,
                "rel_iqr": round(self.rel_iqr, 6) if math.isfinite(self.rel_iqr) else None,  # a zero median: null
                "rounds": self.rounds, "calls_per_block": self.calls_per_block, "macs": self.macs,
                "params": self.params, **self.extra}

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        """A record from its JSON object; a missing field or a value of the wrong type or range is a TableError
        naming the field and the value."""
        check_fields(data, RECORD_FIELDS, "this one", "a block record", TableError)
        for name in ("latency_ms", "iqr_ms", *TIMES, ENERGY):
            value = data.get(name)
            if value is not None and not (_number(value) and 0 <= value < math.inf):
                raise TableError(f"{name} must be a finite number >= 0, but got {json.dumps(value)}")
            if value is not None and value > MAX_BLOCK:
                raise TableError(f"{name} must be at most {MAX_BLOCK:g} for one block (more is a unit or input "
                                 f"error), but got {json.dumps(value)}")
        for name in ("rounds", "calls_per_block", "macs", "params"):
            if data[name] < 0:
                raise TableError(f"{name} must be a whole number >= 0, but got {data[name]}")
        block = BlockSpec.from_dict({"op": data["op"], "params": data["op_params"], **{
            k: data[k] for k in ("cin", "cout", "stride", "height", "width", "batch", "dtype")}})
        if block.key != data["key"]:
            raise TableError(f"a record's key must match its block, but got key {quoted(data['key'])} for {block.key!r}")
        return cls(block, float(data["latency_ms"]), float(data["iqr_ms"]), data["rounds"], data["calls_per_block"],
                   data["macs"], data["params"], {k: v for k, v in data.items() if k not in RECORD_KEYS})


#: the fields of a block record and their JSON types
RECORD_FIELDS = {"key": str, "op": str, "op_params": dict, "cin": int, "cout": int, "stride": int, "height": int,
                 "width": int, "batch": int, "dtype": str, "latency_ms": float, "iqr_ms": float, "rounds": int,
                 "calls_per_block": int, "macs": int, "params": int}
RECORD_KEYS = {"type", "rel_iqr", *RECORD_FIELDS}
#: optional times of a record (median, uncorrected time, reference time of its batch): finite and >= 0 when given
TIMES = ("median_ms", "raw_ms", "reference_ms")
#: a record's optional energy per call (millijoules): finite and >= 0 when given; a table carries energy when every
#: record does (imported from a source that publishes it)
ENERGY = "energy_mj"
#: the most a block's latency, IQR or time (ms) or energy (mJ) can be: over ~3 h for one block is a unit or input
#: error, and numbers near the float limits would overflow sums over a network (adapt bounds whole networks alike)
MAX_BLOCK = 1e7
#: the fields of a table header and their JSON types
HEADER_FIELDS = {"device": dict, "space": dict, "protocol": dict, "batch": int, "dtype": str,
                 "calibration": dict | None}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Calibration:
    """Whole-network latency = scale * (sum of block latencies) + offset_ms, fitted by `hwnas validate`."""

    scale: float
    offset_ms: float
    fitted_on: int = 0

    def apply(self, raw_ms):
        return self.scale * raw_ms + self.offset_ms

    def to_dict(self) -> dict:
        return {"scale": self.scale, "offset_ms": self.offset_ms, "fitted_on": self.fitted_on}


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    raw_latency_ms: float
    macs: int
    params: int


def make_header(*, device: dict, space: SearchSpace, protocol: dict, batch: int, dtype: str) -> dict:
    return {"type": "header", "kind": KIND, "schema": SCHEMA_VERSION, "hwnas": __version__,
            "device": device, "space": space.describe(), "protocol": protocol, "batch": batch, "dtype": dtype,
            "calibration": None}


class LookupTable:
    """Header + records by block key; predicts whole-architecture latency, MACs and params."""

    def __init__(self, header: dict, records: Iterable[Record] = (), path: Path | None = None):
        self.header = header
        self.records: dict[str, Record] = {r.key: r for r in records}
        self.path = path
        self._space: SearchSpace | None = None
        self._matrix: tuple[float, list[np.ndarray]] | None = None
        self._energy: tuple[float, list[np.ndarray]] | None = None

    # ----- identity -------------------------------------------------------------------------------------
    @property
    def space(self) -> SearchSpace:
        """The space this table was built for."""
        if self._space is None:
            from hwnas.space import space_from_description

            try:
                self._space = space_from_description(self.header["space"])
            except HwnasError as exc:
                raise TableError(f"table {self._name()} describes a space hwnas cannot build: {exc}") from None
        return self._space

    @property
    def device_name(self) -> str:
        return self.header["device"].get("name", "?")

    @property
    def calibration(self) -> Calibration | None:
        c = self.header.get("calibration")
        return Calibration(c["scale"], c["offset_ms"], c.get("fitted_on", 0)) if c else None

    def set_calibration(self, calibration: Calibration | None) -> None:
        self.header["calibration"] = calibration.to_dict() if calibration else None
        self._matrix = None

    def _name(self) -> str:
        return str(self.path) if self.path else f"(in-memory table of {self.device_name})"

    # ----- coverage -------------------------------------------------------------------------------------
    def missing(self, blocks: Iterable[BlockSpec]) -> list[str]:
        return list(dict.fromkeys(b.key for b in blocks if b.key not in self.records))

    def check_space(self, space: SearchSpace) -> None:
        """Refuse a table built for another space or input profile, or one that lacks blocks of ``space``."""
        mine = self.header["space"]
        if mine.get("space") != space.name:
            raise TableError(f"table {self._name()} was built for space {mine.get('space')!r}, "
                             f"but space {space.name!r} was asked for")
        if mine.get("input", {}).get("name") != space.profile.name:
            raise TableError(f"table {self._name()} was built for input {mine.get('input', {}).get('name')!r}, "
                             f"but input {space.profile.name!r} was asked for")
        self.check_covers(space.all_blocks(self.header["batch"], self.header["dtype"]))

    def check_built_for(self, space: SearchSpace) -> None:
        """Refuse a table built for another space, input profile or width than ``space`` (naming the settings
        that differ), or one that lacks blocks of it."""
        mine, theirs = self.header["space"], space.describe()
        same_kind = mine.get("space") == space.name and mine.get("input", {}).get("name") == space.profile.name
        if same_kind and mine != theirs:
            diffs = [f"{key} {mine.get(key)!r} != {theirs.get(key)!r}" for key in sorted(set(mine) | set(theirs))
                     if mine.get(key) != theirs.get(key)]
            raise TableError(f"table {self._name()} must be built for the search space, but its {space.name} space "
                             f"differs: {'; '.join(diffs[:3])} (table != search)")
        self.check_space(space)  # names the space or input that differs, or the blocks the table lacks

    def check_covers(self, blocks: Iterable[BlockSpec]) -> None:
        missing = self.missing(blocks)
        if missing:
            shown = "; ".join(missing[:3]) + (f"; and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise TableError(f"table {self._name()} must hold every block asked for, but lacks {len(missing)}: "
                             f"{shown}")

    # ----- prediction -----------------------------------------------------------------------------------
    def _blocks(self, arch: Architecture | str | Sequence[str]) -> list[BlockSpec]:
        return [b for _, b in self.space.blocks(as_architecture(arch), self.header["batch"], self.header["dtype"])]

    def predict(self, arch: Architecture | str | Sequence[str]) -> Prediction:
        """Latency (calibrated when a calibration is stored), MACs and params of a whole architecture."""
        blocks = self._blocks(arch)
        self.check_covers(blocks)
        recs = [self.records[b.key] for b in blocks]
        raw = sum(r.latency_ms for r in recs)
        cal = self.calibration
        return Prediction(cal.apply(raw) if cal else raw, raw, sum(r.macs for r in recs),
                          sum(r.params for r in recs))

    def latency_matrix(self) -> tuple[float, list[np.ndarray]]:
        """(fixed ms of stem + head, per-layer arrays of op latencies in op order), uncalibrated."""
        if self._matrix is None:
            space, batch, dtype = self.space, self.header["batch"], self.header["dtype"]
            self.check_space(space)
            fixed = sum(self.records[f.block.with_(batch=batch, dtype=dtype).key].latency_ms
                        for f in space.stem + space.head)
            per_layer = [np.array([self.records[layer.block(op, batch, dtype).key].latency_ms
                                   for op in layer.op_names]) for layer in space.layers]
            self._matrix = (fixed, per_layer)
        return self._matrix

    def predict_indices(self, indices: np.ndarray) -> np.ndarray:
        """Calibrated latencies of many architectures at once, given as an (N, layers) array of op indices."""
        fixed, per_layer = self.latency_matrix()
        indices = np.asarray(indices)
        raw = fixed + sum(lat[indices[:, i]] for i, lat in enumerate(per_layer))
        cal = self.calibration
        return cal.apply(raw) if cal else raw

    def expected(self, probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
        """Differentiable expected latency: sum over layers of p(op) * latency(op), plus stem and head.

        Equals `predict(arch).latency_ms` for one-hot probabilities; gradients flow to ``probabilities``.
        """
        fixed, per_layer = self.latency_matrix()
        if len(probabilities) != len(per_layer):
            raise TableError(f"expected latency needs one probability vector per layer ({len(per_layer)}), "
                             f"but got {len(probabilities)}")
        total = probabilities[0].new_tensor(fixed)
        for p, lat in zip(probabilities, per_layer):
            total = total + (p * p.new_tensor(lat)).sum()
        cal = self.calibration
        return cal.apply(total) if cal else total

    @property
    def has_energy(self) -> bool:
        """Whether every block carries an energy figure (``energy_mj``), so architectures' energy is predicted."""
        return bool(self.records) and all(r.extra.get(ENERGY) is not None for r in self.records.values())

    def predict_energy(self, arch: Architecture | str | Sequence[str]) -> float:
        """Energy (mJ) of a whole architecture: the sum of its blocks' (no calibration applies to energy)."""
        self.require_energy()
        blocks = self._blocks(arch)
        self.check_covers(blocks)
        return float(sum(self.records[b.key].extra[ENERGY] for b in blocks))

    def energy_indices(self, indices: np.ndarray) -> np.ndarray:
        """Energies (mJ) of many architectures at once, given as an (N, layers) array of op indices."""
        self.require_energy()
        if self._energy is None:
            space, batch, dtype = self.space, self.header["batch"], self.header["dtype"]
            self.check_space(space)
            fixed = sum(self.records[f.block.with_(batch=batch, dtype=dtype).key].extra[ENERGY]
                        for f in space.stem + space.head)
            self._energy = (fixed, [np.array([self.records[layer.block(op, batch, dtype).key].extra[ENERGY]
                                              for op in layer.op_names]) for layer in space.layers])
        fixed, per_layer = self._energy
        indices = np.asarray(indices)
        return fixed + sum(e[indices[:, i]] for i, e in enumerate(per_layer))

    def require_energy(self) -> None:
        if not self.has_energy:
            raise TableError(f"an energy bound needs a table with energy per block, but {self._name()} "
                             f"({self.device_name}) holds latency only; `hwnas table import` brings energy where the "
                             f"source publishes it")

    def minimum_latency(self) -> float:
        """The smallest latency any architecture of the space reaches (fastest op in every layer)."""
        fixed, per_layer = self.latency_matrix()
        raw = fixed + sum(lat.min() for lat in per_layer)
        cal = self.calibration
        return float(cal.apply(raw) if cal else raw)

    def digest(self) -> str:
        """A digest of everything the table predicts from (header with calibration, records), path-independent."""
        data = json.dumps([self.header, [r.to_json() for r in self.records.values()]], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]

    def to_pandas(self):
        """One row per block record with the file's columns, in the table's order (from the file alone, the same
        frame: ``pd.DataFrame(map(json.loads, Path(path).read_text().splitlines()[1:])).drop(columns="type")``)."""
        import pandas as pd

        return pd.DataFrame([r.to_json() for r in self.records.values()]).drop(columns="type")

    # ----- I/O ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "LookupTable":
        """Read a table file. Anything but a table of this schema (a missing file, bytes that are not UTF-8 text,
        a line that is not strict JSON, a header or record with a missing field or a value of the wrong type or
        range, one block twice with different values) is a TableError naming the file and the line; a truncated
        last line (a kill while a record was appended) is dropped with a warning."""
        path = Path(path)
        lines = read_json_lines(path, "a lookup table file", TableError, hint="; re-profiling measures it again")
        if not lines:
            raise TableError(f"a lookup table starts with a header line, but {path} is empty")
        (header_line, header), lines = lines[0], lines[1:]
        if not isinstance(header, dict) or header.get("kind") != KIND:
            raise TableError(f"{path} is not an hwnas lookup table (its first line lacks kind={KIND!r})")
        if header.get("schema") != SCHEMA_VERSION:
            raise TableError(f"table schema version must be {SCHEMA_VERSION}, but {path} has "
                             f"schema={quoted(header.get('schema'))}; profile it again with this version of hwnas")
        check_fields(header, HEADER_FIELDS, path, "a lookup table's header", TableError, line=header_line)
        _check_calibration(header["calibration"], path, header_line)
        space = check_header(header, path, header_line)  # every setting, by type and range, and the space built
        records: dict[str, tuple[int, dict, Record]] = {}
        for number, data in lines:
            check_fields(data, RECORD_FIELDS, path, "a lookup table's block record", TableError, line=number)
            try:
                record = Record.from_json(data)
            except (HwnasError, KeyError, TypeError, ValueError) as exc:
                raise TableError(f"{path} line {number} is not a valid block record ({_one_line(exc)})") from None
            if record.key in records:
                first, before, _ = records[record.key]
                if before != data:
                    raise TableError(f"a lookup table holds each block once, but {path} lines {first} and {number} "
                                     f"both hold {record.key} with different values")
                continue
            records[record.key] = (number, data, record)
        table = cls(header, [record for _, _, record in records.values()], path)
        table._space = space
        return table

    def save(self, path: str | Path | None = None) -> Path:
        """Write the whole table atomically (temp file + rename): a crash leaves the old file intact."""
        path = Path(path or self.path)
        lines = [dump_json(self.header)]
        for record in self.records.values():  # what load would refuse is not written (TableError: nothing written)
            lines.append(dump_json(record.to_json()))
            try:
                Record.from_json(json.loads(lines[-1]))
            except TableError as exc:
                raise TableError(f"{path} is not written: its block {record.key} is not valid ({exc})") from None
        write_atomic(path, "\n".join(lines) + "\n")
        self.path = path
        return path


def _check_calibration(calibration: dict | None, path: Path, line: int) -> None:
    if calibration is None:
        return
    for name in ("scale", "offset_ms"):
        value = calibration.get(name)
        if not _number(value):
            raise TableError(f"a lookup table's calibration must hold {name} as a number, but {path} line {line} has "
                             f"{json.dumps(value)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[1:-1] if isinstance(exc, KeyError) and text.startswith("'") else text
