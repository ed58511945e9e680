"""Adapting a lookup table to a target on which only whole networks can be timed (a vendor's benchmark app,
a cloud device farm).

Model (``ridge-op-stage-block-macs``): whole-network latency = intercept + sum over the searchable blocks of
``c[block] * table latency + p_dense * dense MACs + p_dw * depthwise MACs``. A block's coefficient is
``s + u[op] + v[stage] + w[op, stage] + z[block]``, where its stage is its output channels and resolution: one
common scale ``s`` that is not shrunk, and op, stage, op x stage and per-block deviations, each level shrunk
towards zero by a ridge penalty of its own. The prices ``p`` (>= 0, ms per MAC) of a block's dense (1x1 and
full) and depthwise convolution MACs (`hwnas.space.cost.conv_macs`) are, like ``s``, not shrunk: two numbers
that a handful of networks determine, which per-block coefficients are not, and which carry what most
separates a phone's CPU from the x86 host a table was built on, its cost per MAC of each kind (on
HW-NAS-Bench's Pixel 3 table, the host table with these two prices, fitted by least squares to 10 networks,
ranked 1000 others with Kendall tau 0.91 against 0.86 for the host table alone).
So a block the measurements say little about falls back to its op and stage group, the group to its op's
and stage's effects, and those to the common scale: the prior is the host table times one scale, and few
measurements move it gently. Where the data say more, each block gets its own. The four ridge strengths are
chosen from a log grid (one level at a time, until none moves; near-ties go to the stronger) by k-fold
cross-validation on the measurements, leave-one-out when a fold would hold fewer than MIN_PER_FOLD networks
(from MIN_NETWORKS = 10 up). Where the whole model does not beat the reduced one, the source table times one
scale plus an offset, by one standard error of its cross-validated loss, the reduced one is written (from 10
networks the ridge choice is noisy, and a table fitted to noise ranks worse than the source scaled;
`hwnas.tables.adapt_fit`). The
fit minimises squared *relative* errors subject to every block coefficient
and ``s`` being >= FLOOR (0.01) and the intercept >= 0 (a constrained least-squares problem solved exactly,
not a clip; see `hwnas.tables.adapt_fit`), so no block latency of the written table is negative (or 0 where
the source's is not) and every network's prediction is finite and positive. Stem and head are the same in
every network: they are in the intercept (the table scales them by ``s``, the rest is its offset, which may
be negative).

Other tables (``also``: e.g. a published table of a similar device, `hwnas table import`) add a term each:
``q_j * table_j latency`` of every block, with one price ``q_j >= 0`` per table, not shrunk. A related
device's table carries what the host's MACs and ops do not (on HW-NAS-Bench's Pixel 3, the Raspberry Pi 4's
table beside the host's raised the held-out tau from 10 networks from 0.873 to 0.901, from 50 from 0.940 to
0.951; `bench/adapt_table.py --also`); a price of 0 says that table explains nothing the others do not.

Held-out figures are nested: every fold is predicted by a constrained model whose ridge strengths were
chosen, and whose coefficients were fitted, on the other folds only; plain ``scale * table sum + offset``
(what `hwnas validate` fits) is fitted on the same folds. The adapted table is the source table with each block
scaled by its coefficient and a calibration ``1 * sum + offset``, so `LookupTable.predict`,
``predict_indices`` and ``expected`` (and so every search) use it unchanged.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwnas.errors import ConfigError, DataError
from hwnas.space.cost import conv_macs
from hwnas.tables.accuracy import Errors
from hwnas.tables.adapt_fit import (FLOOR, LEVELS, MIN_NETWORKS, MIN_PER_FOLD, RIDGE_GRID, choose, constraints,
                                    fit_choice, fold_count, held_out, one_blas_thread, reduced_bounds, scheme, spread)
from hwnas.tables.measured import Measurements, measurements_from_frame, read_measurements
from hwnas.tables.table import Calibration, LookupTable, Record

MODEL = "ridge-op-stage-block-macs"

__all__ = ["FLOOR", "LEVELS", "MIN_NETWORKS", "MIN_PER_FOLD", "MODEL", "RIDGE_GRID", "Adaptation", "Blocks",
           "Measurements", "adapt_table", "check_output", "measurements_from_frame", "read_measurements", "stage_of"]


def stage_of(block) -> str:
    """A block's stage: its output channels and output resolution, e.g. ``16ch@8x8``."""
    h, w = -(-block.height // block.stride), -(-block.width // block.stride)
    return f"{block.cout}ch@{h}x{w}"


@dataclass(frozen=True)
class Blocks:
    """The searchable blocks of a table's space (by key), their op and stage, and the design matrices."""

    keys: list[str]
    labels: list[tuple[str, str]]  # (op, stage) of each key
    macs: np.ndarray  # (keys, 2): dense and depthwise MACs of each key
    layers: list[list[str]]  # names of the layers each key occurs in
    layer_keys: list[np.ndarray]  # per layer: the key index of each op
    layer_latency: list[np.ndarray]  # per layer: the table latency of each op

    @classmethod
    def of(cls, table: LookupTable) -> "Blocks":
        space, batch, dtype = table.space, table.header["batch"], table.header["dtype"]
        table.check_space(space)
        index: dict[str, int] = {}
        labels: list[tuple[str, str]] = []
        layers: list[list[str]] = []
        layer_keys, layer_latency, macs = [], [], []
        for layer in space.layers:
            keys = []
            for op in layer.op_names:
                block = layer.block(op, batch, dtype)
                if block.key not in index:  # a key keeps the op and stage it was first seen with
                    index[block.key] = len(index)
                    labels.append((op, stage_of(block)))
                    layers.append([])
                    macs.append(conv_macs(block))
                if layer.name not in layers[index[block.key]]:
                    layers[index[block.key]].append(layer.name)
                keys.append(index[block.key])
            layer_keys.append(np.array(keys))
            layer_latency.append(np.array([table.records[layer.block(op, batch, dtype).key].latency_ms
                                           for op in layer.op_names]))
        return cls(list(index), labels, np.array(macs, dtype=float).reshape(-1, 2), layers, layer_keys,
                   layer_latency)

    def features(self, indices: np.ndarray) -> np.ndarray:
        """(N, keys): per architecture, the summed table latency of each of its searchable block keys."""
        indices = np.asarray(indices)
        out = np.zeros((len(indices), len(self.keys)))
        rows = np.arange(len(indices))
        for i, (keys, latency) in enumerate(zip(self.layer_keys, self.layer_latency)):
            np.add.at(out, (rows, keys[indices[:, i]]), latency[indices[:, i]])
        return out

    def counts(self, indices: np.ndarray) -> np.ndarray:
        """(N, keys): per architecture, how many of its searchable blocks each key is."""
        indices = np.asarray(indices)
        out = np.zeros((len(indices), len(self.keys)))
        rows = np.arange(len(indices))
        for i, keys in enumerate(self.layer_keys):
            np.add.at(out, (rows, keys[indices[:, i]]), 1.0)
        return out

    def groups(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(self.labels))

    def mapping(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys x parameters) matrix M with coefficients c = M @ [s, u(op), v(stage), w(op, stage), z(block)],
        and the level (index into LEVELS; -1 for s) of every parameter."""
        names = [dict.fromkeys(op for op, _ in self.labels), dict.fromkeys(st for _, st in self.labels),
                 dict.fromkeys(self.labels), dict.fromkeys(self.keys)]
        starts = np.cumsum([1] + [len(n) for n in names])
        columns = {(level, name): int(starts[level]) + i for level, n in enumerate(names) for i, name in enumerate(n)}
        m = np.zeros((len(self.keys), int(starts[-1])))
        for k, (key, (op, stage)) in enumerate(zip(self.keys, self.labels)):
            m[k, [0, columns[0, op], columns[1, stage], columns[2, (op, stage)], columns[3, key]]] = 1.0
        return m, np.concatenate([[-1], np.repeat(np.arange(len(names)), [len(n) for n in names])])


@dataclass
class Adaptation:
    """An adapted table (unsaved) and the cross-validated errors of the model and of scale + offset."""

    table: LookupTable
    adapted: Errors
    baseline: Errors
    measured_ms: np.ndarray
    adapted_cv_ms: np.ndarray  # each network predicted by the model fitted on the other folds
    baseline_cv_ms: np.ndarray
    ridge: dict[str, float]  # strength per level of LEVELS, chosen on all the measurements
    reduced: bool  # the reduced model (source times one scale plus an offset) was chosen on all the measurements
    reduced_in: int  # held-out folds whose model was the reduced one
    folds: int  # folds used: as asked, or the number of networks (leave-one-out) when there are few
    scheme: str  # "5-fold" or "leave-one-out"

    @property
    def info(self) -> dict:
        return self.table.header["adapted"]

    def rows(self) -> list[dict]:
        """One row per predictor, as `hwnas validate` prints them."""
        return [{"predictor": name, "mean_abs_pct_error": round(e.mean_abs_pct, 2), "within_5pct": round(e.within_5, 3),
                 "within_10pct": round(e.within_10, 3), "kendall_tau": round(e.kendall_tau, 4)}
                for name, e in (("table (scale + offset)", self.baseline), (f"adapted ({MODEL})", self.adapted))]


def other_latency(blocks: Blocks, table: LookupTable, other: LookupTable) -> np.ndarray:
    """Per searchable block of ``table`` (``blocks``), its latency (ms) in ``other``, a table of the same space,
    input and width (`LookupTable.check_built_for`; a TableError names what differs or the first block missing)."""
    space, batch, dtype = table.space, other.header["batch"], other.header["dtype"]
    other.check_built_for(space)
    out = np.zeros(len(blocks.keys))
    index = {key: k for k, key in enumerate(blocks.keys)}
    for layer in space.layers:
        for op in layer.op_names:
            block = layer.block(op, table.header["batch"], table.header["dtype"])
            out[index[block.key]] = other.records[block.with_(batch=batch, dtype=dtype).key].latency_ms
    return out


def adapt_table(table: LookupTable, measurements: Measurements, *, folds: int = 5, seed: int = 0,
                also: Sequence[LookupTable] = ()) -> Adaptation:
    """Fit the ``ridge-op-stage-block`` model of ``table`` (and the other tables ``also``) to ``measurements``;
    see the module docstring. With fewer than MIN_PER_FOLD * ``folds`` networks the held-out figures are
    leave-one-out; fewer than MIN_NETWORKS is a DataError."""
    n = len(measurements.archs)
    used = fold_count(n, folds, measurements.source)
    blocks = Blocks.of(table)
    others = np.zeros((len(blocks.keys), len(also)))  # (keys, tables): each block's latency in each other table
    for j, other in enumerate(also):
        others[:, j] = other_latency(blocks, table, other)
    indices = np.array([table.space.indices(a) for a in measurements.archs])
    features = blocks.features(indices)
    m, levels = blocks.mapping()
    g = constraints(m, extra=2 + len(also))
    small = reduced_bounds(sum(float(latency.min()) for latency in blocks.layer_latency))
    raw = spread(table.latency_matrix()[0] + features.sum(axis=1), table, measurements.source)  # no calibration
    counts = blocks.counts(indices)
    # (n, 2 + len(also)): dense and depthwise MACs of the searchable blocks, and their latency in each other table
    priced_by = np.column_stack([counts @ blocks.macs, counts @ others])
    # in units whose mean over the networks is their mean raw sum: a price of 1 would explain it all
    unit = np.where(priced_by.mean(axis=0) > 0, raw.mean() / np.maximum(priced_by.mean(axis=0), 1e-300), 0.0)
    x = np.column_stack([np.ones(n), features @ m, priced_by * unit])
    all_levels = np.r_[levels, [-1] * (2 + len(also))]  # the prices, like the scale, are not shrunk
    y = measurements.latency_ms
    rng = np.random.default_rng(seed)
    with one_blas_thread():
        parts, adapted_cv, reduced_in = held_out(x, y, all_levels, g, small, used, rng)
        choice = choose(x, y, all_levels, g, small, used, rng)
        beta = fit_choice(x, y, all_levels, g, small, choice)
    ridge = choice.ridge
    baseline_cv = np.empty(n)
    for test in parts:
        train = np.setdiff1d(np.arange(n), test)
        scale, offset = np.polyfit(raw[train], y[train], 1)
        baseline_cv[test] = scale * raw[test] + offset
    theta, prices = beta[1:1 + m.shape[1]], np.maximum(beta[1 + m.shape[1]:], 0.0) * unit  # ms per MAC, ms per ms
    coefficients = m @ theta
    slack = small[0] @ beta[:2] - small[1] if choice.reduced else g[0] @ beta - g[1]
    if not np.all(np.isfinite(beta)) or slack.min() < -1e-9 * max(1.0, float(np.abs(beta).max())):
        raise DataError(f"table adapt must fit finite coefficients >= {FLOOR} and an intercept >= 0 (or, for the "
                        f"reduced model, no negative prediction), but the fit to {measurements.source} missed a bound "
                        f"by {-slack.min():.6g}")
    # the constrained optimum meets its bounds up to rounding (~1e-16): those are the bounds
    coefficients, scale = np.maximum(coefficients, FLOOR), max(float(theta[0]), FLOOR)
    # (the reduced model's: intercept >= -small[0][0, 1] * scale, the cheapest network at FLOOR times its scaled sum)
    intercept = max(float(beta[0]), -float(small[0][0, 1]) * scale if choice.reduced else 0.0)
    adapted = _adapted(table, blocks, coefficients, blocks.macs @ prices[:2], others @ prices[2:], scale, intercept, n)
    result = Adaptation(adapted, Errors.of(adapted_cv, y), Errors.of(baseline_cv, y), y, adapted_cv, baseline_cv,
                        dict(zip(LEVELS, ridge)), choice.reduced, reduced_in, used, scheme(used, n))
    group_level = (m * (levels != LEVELS.index("block"))) @ theta  # s + u + v + w, without the block's own z
    groups = []
    for label in blocks.groups():
        members = [k for k, other in enumerate(blocks.labels) if other == label]
        groups.append({"op": label[0], "stage": label[1], "coefficient": round(float(group_level[members[0]]), 6),
                       "blocks": {blocks.keys[k]: round(float(coefficients[k]), 6) for k in members},
                       "layers": list(dict.fromkeys(name for k in members for name in blocks.layers[k]))})
    adapted.header["adapted"] = {
        "source": {"path": str(Path(table.path).resolve()) if table.path else None, "digest": table.digest(),
                   "device": table.device_name, "calibration": table.header.get("calibration"),
                   **({"adapted": table.header["adapted"]} if "adapted" in table.header else {})},
        "measurements": {"path": str(Path(measurements.source).resolve()) if measurements.sha256 else
                         measurements.source, "sha256": measurements.sha256, "networks": n,
                         "rows": measurements.rows, "duplicates": "averaged"},
        "model": {"name": MODEL, "formula": "intercept_ms + sum over searchable blocks of (scale + op + stage + "
                                            "op x stage + block effect) * table latency + dense_ms_per_mmac * dense "
                                            "MMACs + depthwise_ms_per_mmac * depthwise MMACs; stem and head, the same "
                                            "in every network, are in the intercept (the table scales them by scale, "
                                            "the rest is its calibration offset)" + (
                                                " + sum over the other tables of their price * their block "
                                                "latency" if also else ""),
                  "dense_ms_per_mmac": float(prices[0] * 1e6), "depthwise_ms_per_mmac": float(prices[1] * 1e6),
                  "also": [{"path": str(Path(o.path).resolve()) if o.path else None, "digest": o.digest(),
                            "device": o.device_name, "price": float(price)} for o, price in zip(also, prices[2:])],
                  "stage": "output channels and output resolution of a block",
                  "fit": "ridge on relative errors, one strength per level, chosen by cross-validation (k-fold, "
                         f"leave-one-out below {MIN_PER_FOLD} networks per fold), constrained so that every block "
                         f"coefficient and the scale are >= {FLOOR} (the floor) and the intercept and the prices "
                         f">= 0; or, when it does not beat it by one standard error in cross-validation, the reduced "
                         f"model: intercept + scale * table latency (every other parameter 0), the cheapest network "
                         f"of the space predicted at >= {FLOOR} times its scaled sum",
                  "reduced": choice.reduced, "scale": scale, "intercept_ms": intercept, "ridge": result.ridge,
                  "ridge_grid": list(RIDGE_GRID),
                  "folds": used, "folds_asked": folds, "scheme": result.scheme, "seed": seed,
                  "floor": FLOOR, "at_floor": int(np.sum(coefficients <= FLOOR * (1 + 1e-9))), "groups": groups},
        "cross_validated": {"folds": used, "scheme": result.scheme, "reduced_in_folds": reduced_in,
                            "adapted": _known(result.adapted.to_dict()),  # tau of constants: null
                            "scale_offset": _known(result.baseline.to_dict())},
    }
    return result


def _known(figures: dict) -> dict:
    """``figures`` with an undefined one (NaN) as None, which the table's JSON writes as null."""
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in figures.items()}


def _scaled(record: Record, c: float, macs_ms: float = 0.0, also_ms: float | None = None) -> Record:
    """``record`` at ``c`` times its latency plus ``macs_ms`` (its MACs' price) and ``also_ms`` (the priced
    latency of the other tables; None without them); its IQR only scaled."""
    added = macs_ms + (also_ms or 0.0)
    extra = {k: (v * c + added if k in ("median_ms", "raw_ms") and isinstance(v, (int, float)) else v)
             for k, v in record.extra.items()}
    extra["source_ms"] = record.latency_ms
    extra["coefficient"] = round(c, 6)
    extra["macs_ms"] = macs_ms
    if also_ms is not None:
        extra["also_ms"] = also_ms
    return replace(record, latency_ms=record.latency_ms * c + added, iqr_ms=record.iqr_ms * c, extra=extra)


def _adapted(table: LookupTable, blocks: Blocks, coefficients: np.ndarray, macs_ms: np.ndarray,
             also_ms: np.ndarray, scale: float, intercept: float, fitted_on: int) -> LookupTable:
    """Every block times its coefficient plus the price of its MACs (``macs_ms``) and of its latency in the other
    tables (``also_ms``, ms; stem, head and any block outside the space: the common scale), and the offset that
    makes the table's calibrated sum equal the model: intercept minus the scaled stem and head."""
    index = {key: k for k, key in enumerate(blocks.keys)}
    with_also = also_ms.size > 0
    records = [_scaled(r, float(coefficients[index[key]]), float(macs_ms[index[key]]),
                       float(also_ms[index[key]]) if with_also else None) if key in index else
               _scaled(r, scale) for key, r in table.records.items()]
    header = copy.deepcopy(table.header)
    adapted = LookupTable(header, records)
    space, batch, dtype = table.space, header["batch"], header["dtype"]
    fixed = sum(adapted.records[f.block.with_(batch=batch, dtype=dtype).key].latency_ms
                for f in space.stem + space.head)
    adapted.set_calibration(Calibration(1.0, intercept - fixed, fitted_on=fitted_on))
    return adapted


def check_output(output: str | Path, *inputs: str | Path) -> Path:
    """Refuse an output path that names one of the inputs (it would be overwritten)."""
    output = Path(output)
    for given in inputs:
        given = Path(given)
        same = os.path.realpath(output) == os.path.realpath(given) or (
            output.exists() and given.exists() and output.samefile(given))  # realpath: a symlink loop is no error
        if same:
            raise ConfigError(f"the adapted table must be written to a file other than its inputs, but -o {output} "
                              f"is the input {given}")
    return output
