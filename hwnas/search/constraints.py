"""The hardware constraint of a search: a latency target from a lookup table plus optional MACs, params and
energy bounds (energy from a table that carries it per block), and the parsing of the values a user types
for them.

Constraint values follow optuna's convention: one value per bound, ``measure - bound``, and a value
> 0 means violated. Everything a strategy asks of a constraint has a vectorised form over an
``(N, layers)`` array of op indices, which is what lets rejection sampling draw millions of
architectures a second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from hwnas.errors import ConfigError, quoted
from hwnas.space import Architecture, SearchSpace, as_architecture
from hwnas.tables import LookupTable
from hwnas.tables.table import ENERGY

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|us|µs|s)?\s*$", re.IGNORECASE)
_MS_PER_UNIT = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([kmg]?)\s*$", re.IGNORECASE)
_COUNT_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_ENERGY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(mj|uj|µj|j)?\s*$", re.IGNORECASE)
_MJ_PER_UNIT = {"mj": 1.0, "uj": 1e-3, "µj": 1e-3, "j": 1e3}


def parse_latency(text: str | float) -> float:
    """A latency in milliseconds from ``"3ms"``, ``"3"`` (ms), ``"2.5ms"``, ``"500us"`` or ``"0.003s"``."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ConfigError(f"a target latency must be a positive duration such as 3ms, 2.5ms or 500us, "
                              f"but got {quoted(text)}")
        value = float(match.group(1)) * _MS_PER_UNIT[(match.group(2) or "ms").lower()]
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"a target latency must be a finite duration > 0, but got {quoted(text)}")
    return value


def parse_latencies(text: str) -> list[float]:
    """A comma-separated sweep of targets (``"2ms,3ms,4ms"``), in the order given, duplicates dropped."""
    parts = [part for part in text.split(",")]
    if not text.strip() or any(not part.strip() for part in parts):
        raise ConfigError(f"target latencies are durations separated by commas such as 2ms,3ms,4ms, but got {quoted(text)}")
    return list(dict.fromkeys(parse_latency(part) for part in parts))


def parse_count(text: str | float, what: str) -> float:
    """A MACs or params bound from ``"300M"``, ``"3.5M"``, ``"1.2G"``, ``"500k"`` or ``"3e6"``."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _COUNT.match(text)
        if not match:
            raise ConfigError(f"a {what} bound must be a positive count such as 300M, 3.5M or 2e6, but got {quoted(text)}")
        value = float(match.group(1)) * _COUNT_SCALE[match.group(2).lower()]
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"a {what} bound must be a finite count > 0, but got {quoted(text)}")
    return value


def parse_energy(text: str | float) -> float:
    """An energy bound in millijoules from ``"2.5mJ"``, ``"2.5"`` (mJ), ``"800uJ"`` or ``"0.01J"``."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _ENERGY.match(text)
        if not match:
            raise ConfigError(f"an energy bound must be a positive energy such as 2.5mJ, 800uJ or 0.01J, but got "
                              f"{text!r}")
        value = float(match.group(1)) * _MJ_PER_UNIT[(match.group(2) or "mj").lower()]
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"an energy bound must be a finite energy > 0, but got {quoted(text)}")
    return value


def format_ms(ms: float) -> str:
    """3.0 -> '3ms', 0.5 -> '0.5ms': how targets are named in sweep directories and legends."""
    return f"{ms:g}ms"


class Constraint:
    """Latency (from ``table``) <= ``target_ms``, and optionally MACs <= ``max_macs``, params <= ``max_params``
    and energy (from ``table``, which must carry it) <= ``max_energy`` (mJ).

    ``values`` returns one value per active bound in the order of ``names``: the measure minus the
    bound (ms, MACs, params, mJ), so a value > 0 means violated and an architecture is feasible when no
    value is > 0. MACs and params are counted per input sample, as the table's records are.
    """

    def __init__(self, table: LookupTable, target_ms: float, *, max_macs: float | None = None,
                 max_params: float | None = None, max_energy: float | None = None, space: SearchSpace | None = None):
        if not (target_ms > 0 and math.isfinite(target_ms)):
            raise ConfigError(f"a target latency must be a finite duration > 0, but got target_ms={target_ms}")
        for name, bound in (("max_macs", max_macs), ("max_params", max_params), ("max_energy", max_energy)):
            if bound is not None and not (bound > 0 and math.isfinite(bound)):
                raise ConfigError(f"{name} must be finite and > 0 when given, but got {name}={bound}")
        self.table = table
        self.space = space or table.space
        check_table(table, self.space)
        self.target_ms = float(target_ms)
        self.max_macs = None if max_macs is None else float(max_macs)
        self.max_params = None if max_params is None else float(max_params)
        if max_energy is not None:
            table.require_energy()
        self.max_energy = None if max_energy is None else float(max_energy)
        self.names: tuple[str, ...] = ("latency_ms",) + (("macs",) if max_macs is not None else ()) + (
            ("params",) if max_params is not None else ()) + (("energy_mj",) if max_energy is not None else ())
        self._bounds = np.array([b for b in (self.target_ms, self.max_macs, self.max_params, self.max_energy)
                                 if b is not None])
        self._matrices = self._cost_matrices()
        self._all = np.arange(3)
        self._flat = self._matrices.reshape(4, -1)
        self._offsets = self._rows * self._matrices.shape[2]
        # rows of the cost matrices that a bound applies to: latency always, the others when bounded
        self._active = np.array([0] + [i for i, b in ((1, self.max_macs), (2, self.max_params), (3, self.max_energy))
                                       if b is not None])
        self._rows_list: list[list[list[float]]] | None = None

    def _cost_matrices(self) -> np.ndarray:
        """(4, layers, max ops) per-op latency / MACs / params / energy (unused slots 0; energy 0 in a table without
        it) and the fixed stem + head."""
        space, batch, dtype = self.space, self.table.header["batch"], self.table.header["dtype"]
        records = self.table.records
        width = max(space.num_ops)
        matrix = np.zeros((4, len(space.layers), width))
        for i, layer in enumerate(space.layers):
            for j, op in enumerate(layer.op_names):
                r = records[layer.block(op, batch, dtype).key]
                matrix[:, i, j] = (r.latency_ms, r.macs, r.params, r.extra.get(ENERGY) or 0.0)
        fixed = [records[f.block.with_(batch=batch, dtype=dtype).key] for f in space.stem + space.head]
        self._fixed = np.array([sum(r.latency_ms for r in fixed), sum(r.macs for r in fixed),
                                sum(r.params for r in fixed), sum(r.extra.get(ENERGY) or 0.0 for r in fixed)])
        self._rows = np.arange(len(space.layers))
        return matrix

    # ----- costs ----------------------------------------------------------------------------------------
    def costs_indices(self, indices: np.ndarray) -> np.ndarray:
        """(N, 3) latency ms (calibrated as the table is), MACs and params of an (N, layers) index array."""
        return self._costs(indices, self._all)

    def _costs(self, indices: np.ndarray, which: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 2 or indices.shape[1] != len(self._rows):
            raise ConfigError(f"op indices must have shape (N, {len(self._rows)}), but got {indices.shape}")
        # one flat gather per cost: several times faster than fancy indexing of the 3-D matrix
        flat = indices + self._offsets
        costs = np.stack([np.take(self._flat[k], flat).sum(axis=1) for k in which], axis=1) + self._fixed[which]
        cal = self.table.calibration
        if cal is not None and which[0] == 0:
            costs[:, 0] = cal.apply(costs[:, 0])
        return costs

    def energy_indices(self, indices: np.ndarray) -> np.ndarray | None:
        """(N,) energy (mJ) of an (N, layers) index array on the table, or None when the table carries no energy."""
        return self._costs(indices, np.array([3]))[:, 0] if self.table.has_energy else None

    def values_indices(self, indices: np.ndarray) -> np.ndarray:
        """(N, len(names)) constraint values; > 0 means violated."""
        return self._costs(indices, self._active) - self._bounds

    def feasible_indices(self, indices: np.ndarray) -> np.ndarray:
        """(N,) booleans: which architectures satisfy every bound."""
        return (self.values_indices(indices) <= 0).all(axis=1)

    def feasible_row(self, indices: Sequence[int]) -> bool:
        """Whether one architecture (its op indices) satisfies every bound: `feasible_indices` of one row,
        in plain Python, which is several times faster than numpy for a single row (evolution checks its
        children one by one)."""
        if self._rows_list is None:
            self._rows_list = [[row.tolist() for row in self._matrices[k]] for k in self._active]
        for k, rows, bound in zip(self._active, self._rows_list, self._bounds):
            total = self._fixed[k] + sum(row[i] for row, i in zip(rows, indices))
            if k == 0 and self.table.calibration is not None:
                total = self.table.calibration.apply(total)
            if total > bound:
                return False
        return True

    def values(self, arch: Architecture | str | Sequence[str]) -> np.ndarray:
        return self.values_indices(np.array([self.space.indices(as_architecture(arch))]))[0]

    def feasible(self, arch: Architecture | str | Sequence[str]) -> bool:
        return bool((self.values(arch) <= 0).all())

    # ----- reachability ---------------------------------------------------------------------------------
    def minimum(self) -> dict[str, float]:
        """The smallest latency, MACs, params and energy (0 without one) any architecture reaches, each on its own."""
        lows = [self._matrices[:, i, :n].min(axis=1) for i, n in enumerate(self.space.num_ops)]
        _, macs, params, energy = self._fixed + np.sum(lows, axis=0)
        return {"latency_ms": self.table.minimum_latency(), "macs": float(macs), "params": float(params),
                "energy_mj": float(energy)}

    def maximum_latency(self) -> float:
        """The largest latency any architecture reaches (the slowest op in every layer), calibrated as the table is."""
        highs = [self._matrices[0, i, :n].max() for i, n in enumerate(self.space.num_ops)]
        raw = float(self._fixed[0] + sum(highs))
        cal = self.table.calibration
        return float(cal.apply(raw)) if cal else raw

    def check_reachable(self) -> None:
        """Refuse a bound that no architecture of the space can meet, naming the smallest reachable value."""
        lowest = self.minimum()
        # summed in another order than a prediction, the minimum may differ from it in the last bits
        if self.target_ms < lowest["latency_ms"] * (1 - 1e-9):
            raise ConfigError(
                f"the target latency must be reachable, but {self.target_ms:.6g} ms is below the smallest "
                f"latency of space {self.space.name!r} on {self.table.device_name} "
                f"({lowest['latency_ms']:.6g} ms, per table {table_name(self.table)})")
        for name, bound in (("macs", self.max_macs), ("params", self.max_params), ("energy_mj", self.max_energy)):
            if bound is not None and bound < lowest[name] * (1 - 1e-9):
                where = f" on {self.table.device_name}" if name == "energy_mj" else ""
                raise ConfigError(f"the {name} bound must be reachable, but {bound:.4g} is below the smallest "
                                  f"{name} of space {self.space.name!r}{where} ({lowest[name]:.4g})")

    def describe(self) -> dict:
        return {"target_latency_ms": self.target_ms, "max_macs": self.max_macs, "max_params": self.max_params,
                "max_energy_mj": self.max_energy,
                "table": str(self.table.path) if self.table.path else None, "device": self.table.device_name}


def check_table(table: LookupTable, space: SearchSpace) -> None:
    """Refuse a table built for another space, input profile or width, or one that lacks blocks of ``space``."""
    table.check_built_for(space)


def table_name(table: LookupTable) -> str:
    return str(table.path) if table.path else f"(in-memory table of {table.device_name})"
