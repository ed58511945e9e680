"""A predictor file's contents: each op's costs (`OpCosts`), the format's name and version, and reading it back
(`parse`, for `hwnas.search.predictor.Predictor.load`) with every field checked, one line per defect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.readers import check_fields
from hwnas.search.ridge import RidgeFit
from hwnas.space import SearchSpace
from hwnas.space.cost import block_cost
from hwnas.tables import LookupTable

KIND, VERSION = "hwnas-predictor", 1
TARGETS = ("supernet", "standalone")

@dataclass(frozen=True)
class OpCosts:
    """Per searchable layer, each op's MACs, parameters and (optionally) latency in ms, and the same summed
    over the fixed stem and head: what an architecture's size features are computed from."""

    macs: tuple[tuple[float, ...], ...]
    params: tuple[tuple[float, ...], ...]
    latency: tuple[tuple[float, ...], ...] | None
    fixed: tuple[float, float, float | None]

    @classmethod
    def of(cls, space: SearchSpace, table: LookupTable | None = None) -> OpCosts:
        costs = [[block_cost(layer.block(op)) for op in layer.op_names] for layer in space.layers]
        fixed = [block_cost(f.block.with_(batch=1)) for f in space.stem + space.head]
        latency, fixed_ms = None, None
        if table is not None:
            table.check_built_for(space)
            fixed_ms, per_layer = table.latency_matrix()
            latency = tuple(tuple(float(v) for v in lat) for lat in per_layer)
        return cls(tuple(tuple(float(c.macs) for c in layer) for layer in costs),
                   tuple(tuple(float(c.params) for c in layer) for layer in costs), latency,
                   (float(sum(c.macs for c in fixed)), float(sum(c.params for c in fixed)),
                    None if fixed_ms is None else float(fixed_ms)))

    def to_dict(self) -> dict:
        return {"macs": self.macs, "params": self.params, "latency": self.latency, "fixed": self.fixed}


FIELDS = {"kind": str, "version": int, "target": str, "space": dict, "op_names": list, "op_costs": dict,
          "stage1": dict, "stage2": dict | None, "fitted_on": dict}


def _numbers(value: Any, where: str, lengths: list[int]) -> tuple[tuple[float, ...], ...]:
    ok = isinstance(value, list) and len(value) == len(lengths) and all(
        isinstance(row, list) and len(row) == n and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in row)
        for row, n in zip(value, lengths))
    if not ok:
        raise ConfigError(f"{where} must hold one non-negative number per op of each of {len(lengths)} layers, "
                          f"but does not")
    return tuple(tuple(float(v) for v in row) for row in value)


def parse(data: Any, path: Path) -> dict[str, Any]:
    """The `hwnas.search.predictor.Predictor` arguments ``data`` (parsed JSON from ``path``) describes."""
    what = "a predictor file"
    check_fields(data, FIELDS, path, what, ConfigError)
    if data["kind"] != KIND:
        raise ConfigError(f"{what} must be of kind {KIND!r}, but {path} is of kind {data['kind']!r}")
    if data["version"] != VERSION:
        raise ConfigError(f"{what} must be of version {VERSION}, but {path} is of version {data['version']}")
    names = data["op_names"]
    if not names or not all(isinstance(ops, list) and ops and all(isinstance(o, str) for o in ops) for ops in names):
        raise ConfigError(f"{what} must list the op names of every layer, but {path} does not")
    lengths = [len(ops) for ops in names]
    costs = data["op_costs"]
    check_fields(costs, {"macs": list, "params": list, "latency": list | None, "fixed": list}, path,
                 f"{what}'s op_costs", ConfigError)
    fixed = costs["fixed"]
    if not (isinstance(fixed, list) and len(fixed) == 3 and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0)
            for v in fixed) and fixed[0] is not None and fixed[1] is not None
            and (fixed[2] is None) == (costs["latency"] is None)):
        raise ConfigError(f"{what}'s op_costs must hold 'fixed' as the stem and head's MACs, params and latency, but "
                          f"{path} does not")
    op_costs = OpCosts(_numbers(costs["macs"], f"{path} op_costs.macs", lengths),
                       _numbers(costs["params"], f"{path} op_costs.params", lengths),
                       None if costs["latency"] is None else _numbers(costs["latency"], f"{path} op_costs.latency",
                                                                       lengths),
                       (float(fixed[0]), float(fixed[1]), None if fixed[2] is None else float(fixed[2])))
    size = 2 + (op_costs.latency is not None)
    stage1 = RidgeFit.from_dict(data["stage1"], sum(lengths) + size, f"{path} stage1")
    stage2 = None if data["stage2"] is None else RidgeFit.from_dict(data["stage2"], 3 + sum(lengths),
                                                                      f"{path} stage2")
    target = "supernet" if stage2 is None else "standalone"
    if data["target"] not in TARGETS or data["target"] != target:
        raise ConfigError(f"{what} must say its target ({target}), but {path} says {data['target']!r}")
    if not np.isfinite(stage1.scale).all():
        raise ConfigError(f"{what} must hold finite scales, but {path} does not")
    return {"space": data["space"], "op_names": [list(ops) for ops in names], "costs": op_costs, "stage1": stage1,
            "stage2": stage2, "fitted_on": data["fitted_on"], "path": path}
