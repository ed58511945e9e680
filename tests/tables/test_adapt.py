"""`hwnas table adapt`: a table fitted to whole-network measurements of a target.

The target is synthetic: its true latency of a block is the table's times a known factor per op and per
stage, plus a fixed offset per network and a little measurement noise, so what the adapted table should
recover is known.
"""

import dataclasses
import hashlib
import os
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hwnas.training
from hwnas.space import get_space
from hwnas.tables import Errors, LookupTable, adapt_table, read_measurements
from hwnas.tables.adapt import Blocks, measurements_from_frame, stage_of
from hwnas.tables.adapt_fit import FLOOR, MIN_NETWORKS, constraints, fit, penalty
from hwnas.testing import SyntheticEvaluator, synthetic_table
from cli_helpers import run, one_line_error

SPACE = get_space("fbnet", "cifar10", width=0.25)
OP_FACTOR = {"k3_e1": 1.4, "k3_e1_g2": 1.7, "k3_e3": 0.9, "k3_e6": 0.7, "k5_e1": 1.9, "k5_e1_g2": 2.1,
             "k5_e3": 1.2, "k5_e6": 0.85, "skip": 1.0}
OFFSET_MS, NOISE = 0.05, 0.003


def stage_factor(stage: str) -> float:
    """Early, high-resolution stages run relatively slower on the target."""
    return {32: 1.5, 16: 1.2, 8: 1.0, 4: 0.8}[int(stage.split("x")[-1])]


def true_block_ms(table, layer, op):
    block = layer.block(op)
    return table.records[block.key].latency_ms * OP_FACTOR[op] * stage_factor(stage_of(block))


def true_ms(table, indices):
    fixed = sum(table.records[f.block.key].latency_ms for f in SPACE.stem + SPACE.head)
    per_layer = [np.array([true_block_ms(table, layer, op) for op in layer.op_names]) for layer in SPACE.layers]
    return OFFSET_MS + 1.1 * fixed + sum(lat[indices[:, i]] for i, lat in enumerate(per_layer))


def random_indices(n, seed):
    rng, seen = random.Random(seed), {}
    while len(seen) < n:
        arch = SPACE.sample(rng)
        seen.setdefault(str(arch), SPACE.indices(arch))
    return np.array(list(seen.values()))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """(source table path, MEASURED.csv path, the source table, fresh held-out indices and their true latency)."""
    root = tmp_path_factory.mktemp("adapt")
    table = synthetic_table(SPACE, device="source", path=root / "source.jsonl")
    measured = random_indices(160, seed=1)
    noise = 1 + NOISE * np.random.default_rng(2).standard_normal(len(measured))
    pd.DataFrame({"arch": [str(SPACE.from_indices(i)) for i in measured],
                  "latency_ms": true_ms(table, measured) * noise}).to_csv(root / "measured.csv", index=False)
    fresh = random_indices(600, seed=3)[300:]  # none of them measured (a different draw; checked below)
    return root, table, fresh, true_ms(table, fresh)


@pytest.fixture(scope="module")
def adapted(target):
    root, table, _, _ = target
    return adapt_table(table, read_measurements(root / "measured.csv", SPACE))


def test_adapt_recovers_a_distorted_target_better_than_scale_and_offset(target, adapted):
    root, table, fresh, truth = target
    measured = {str(SPACE.from_indices(i)) for i in random_indices(160, seed=1)}
    assert not measured & {str(SPACE.from_indices(i)) for i in fresh}
    # cross-validated on the measurements, as the command reports them
    assert adapted.adapted.mean_abs_pct < 0.3 * adapted.baseline.mean_abs_pct
    assert adapted.adapted.kendall_tau > adapted.baseline.kendall_tau + 0.1
    assert adapted.adapted.kendall_tau > 0.93 and adapted.adapted.within_5 == 1.0
    # the written table on networks it never saw
    predicted = adapted.table.predict_indices(fresh)
    rel = np.abs(predicted - truth) / truth
    assert rel.max() < 0.03 and rel.mean() < 0.01
    raw = table.predict_indices(random_indices(160, seed=1))
    scale, offset = np.polyfit(raw, pd.read_csv(root / "measured.csv")["latency_ms"], 1)
    plain = Errors.of(scale * table.predict_indices(fresh) + offset, truth)
    assert Errors.of(predicted, truth).mean_abs_pct < 0.3 * plain.mean_abs_pct
    # per block: the adapted latencies are closer to the target's than the table scaled by one factor
    adapted_err, plain_err = [], []
    for layer in SPACE.layers:
        for op in layer.op_names:
            true, key = true_block_ms(table, layer, op), layer.block(op).key
            adapted_err.append(abs(adapted.table.records[key].latency_ms / true - 1))
            plain_err.append(abs(scale * table.records[key].latency_ms / true - 1))
    assert np.median(adapted_err) < 0.5 * np.median(plain_err)


def test_the_adapted_table_predicts_as_its_model_everywhere(target, adapted):
    _, _, fresh, _ = target
    t = adapted.table
    assert t.calibration.scale == 1.0 and t.calibration.fitted_on == 160
    arch = SPACE.from_indices(fresh[0])
    one_hot = [torch.nn.functional.one_hot(torch.tensor(i), n).double() for i, n in zip(fresh[0], SPACE.num_ops)]
    assert t.predict(arch).latency_ms == pytest.approx(t.predict_indices(fresh[:1])[0], rel=1e-9)
    assert float(t.expected(one_hot)) == pytest.approx(t.predict(arch).latency_ms, rel=1e-9)
    # each network's cross-validated prediction came from a model that never saw it: worse than in-sample
    archs = [SPACE.from_indices(i) for i in random_indices(160, seed=1)]
    in_sample = np.array([t.predict(a).latency_ms for a in archs])
    measured = adapted.measured_ms
    assert np.abs(in_sample / measured - 1).mean() < np.abs(adapted.adapted_cv_ms / measured - 1).mean()


@pytest.fixture(scope="module")
def written(target, tmp_path_factory):
    """(the table `hwnas table adapt --format json` wrote, its result) -- into a folder it had to create."""
    root, _, _, _ = target
    out = tmp_path_factory.mktemp("written") / "sub" / "adapted.jsonl"
    return out, run("table", "adapt", root / "source.jsonl", root / "measured.csv", "-o", out, "--format", "json")


def test_cli_writes_a_table_that_records_its_provenance_and_loads(target, adapted, written):
    root, table, fresh, _ = target
    out, result = written
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    rows = {row["predictor"]: row for row in printed["rows"]}
    assert set(rows) == {"table (scale + offset)", "adapted (ridge-op-stage-block-macs)"}
    assert rows["adapted (ridge-op-stage-block-macs)"]["kendall_tau"] > rows["table (scale + offset)"]["kendall_tau"]
    assert f"wrote {out}" in result.stderr and printed["summary"]["output"] == str(out)
    loaded = LookupTable.load(out)
    info = loaded.header["adapted"]
    assert info["source"]["digest"] == table.digest()
    assert info["source"]["path"] == str((root / "source.jsonl").resolve())
    assert info["measurements"]["path"] == str((root / "measured.csv").resolve())
    assert info["measurements"]["sha256"] == hashlib.sha256((root / "measured.csv").read_bytes()).hexdigest()
    assert info["measurements"]["networks"] == info["measurements"]["rows"] == 160
    model = info["model"]
    assert model["name"] == "ridge-op-stage-block-macs" and model["folds"] == 5 and model["scheme"] == "5-fold"
    assert set(model["ridge"]) == {"op", "stage", "op_stage", "block"}
    assert all(value in model["ridge_grid"] for value in model["ridge"].values())
    groups = {(g["op"], g["stage"]): g for g in model["groups"]}
    assert len(groups) == 54 and groups["k5_e1", "8ch@32x32"]["layers"] == ["1", "2", "3", "4", "5"]
    assert {key for g in groups.values() for key in g["blocks"]} == {
        layer.block(op).key for layer in SPACE.layers for op in layer.op_names}
    for key, record in loaded.records.items():  # every block carries its coefficient, MAC price and source latency
        assert record.extra["macs_ms"] >= 0
        assert record.latency_ms == pytest.approx(record.extra["coefficient"] * table.records[key].latency_ms
                                                  + record.extra["macs_ms"], rel=1e-5)
        assert record.extra["source_ms"] == table.records[key].latency_ms
    assert info["cross_validated"] == {"folds": 5, "scheme": "5-fold", "reduced_in_folds": 0,
                                       "adapted": adapted.adapted.to_dict(),
                                       "scale_offset": adapted.baseline.to_dict()}
    assert loaded.header["space"] == table.header["space"] and loaded.records.keys() == table.records.keys()
    # the same table as the library's, and it predicts through the usual paths
    assert np.allclose(loaded.predict_indices(fresh), adapted.table.predict_indices(fresh))
    assert loaded.minimum_latency() > 0


def test_an_adapted_table_adapts_again_and_records_its_history(target, written, tmp_path):
    root, _, _, _ = target
    out = tmp_path / "again.jsonl"
    result = run("table", "adapt", written[0], root / "measured.csv", "-o", out)
    assert result.exit_code == 0, result.output
    assert "adapted (ridge-op-stage-block-macs)" in result.output and f"wrote {out}:" in result.output.splitlines()[-1]
    source = LookupTable.load(out).header["adapted"]["source"]
    assert source["path"] == str(written[0].resolve()) and source["adapted"] == LookupTable.load(written[0]).header[
        "adapted"]


def test_search_uses_an_adapted_table(written, tmp_path, monkeypatch):
    out = written[0]
    monkeypatch.setattr(hwnas.training, "open_evaluator", lambda run_dir, *, space, **o: SyntheticEvaluator(space))
    target_ms = 1.3 * LookupTable.load(out).minimum_latency()
    result = run("search", "--strategy", "random", "--samples", "6", "--space", "fbnet", "--table", out,
                 "--target-latency", f"{target_ms:.6f}ms", "--supernet", "run/", "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    latency = LookupTable.load(out).predict(best["arch"]).latency_ms  # the adapted table's, calibration included
    assert best["latency_ms"] == {"source": pytest.approx(latency)} and latency <= target_ms


def test_duplicates_are_averaged(target, tmp_path):
    root, table, _, _ = target
    frame = pd.read_csv(root / "measured.csv")
    doubled = pd.concat([frame.assign(latency_ms=frame["latency_ms"] * 0.9),
                         frame.assign(latency_ms=frame["latency_ms"] * 1.1)])
    doubled.to_csv(tmp_path / "twice.csv", index=False)
    m = read_measurements(tmp_path / "twice.csv", SPACE)
    assert m.rows == 320 and len(m.archs) == 160
    assert np.allclose(m.latency_ms, frame["latency_ms"])


def edit(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


BAD = {
    "unknown op": (lambda f: edit(f, 3, "arch", "k9_e9-" + f.loc[3, "arch"].split("-", 1)[1]),
                   "line 5 does not: layer 1 of space 'fbnet' allows ops k3_e1, k3_e1_g2,"),
    "wrong length": (lambda f: edit(f, 0, "arch", f.loc[0, "arch"].rsplit("-", 1)[0]),
                     "line 2 does not: an architecture of space 'fbnet' has one op per layer (22 layers), but got 21"),
    "zero latency": (lambda f: edit(f, 6, "latency_ms", 0), "must be a finite number from 1e-06 to 1e+07 (1 ns to "
                                                            "about 3 h), but line 8 has '0'"),
    "huge latency": (lambda f: edit(f, 6, "latency_ms", 1e308), "line 8 has '1e+308'"),
    "denormal latency": (lambda f: edit(f, 6, "latency_ms", 1e-320), "line 8 has '1e-320'"),
    "negative latency": (lambda f: edit(f, 6, "latency_ms", -1.5), "line 8 has '-1.5'"),
    "missing latency": (lambda f: edit(f, 9, "latency_ms", None), "must be a finite number from 1e-06 to 1e+07 (1 ns "
                                                                  "to about 3 h), but line 11 has none"),
    "text latency": (lambda f: edit(f, 9, "latency_ms", "fast"), "line 11 has 'fast'"),
    "infinite latency": (lambda f: edit(f, 9, "latency_ms", "inf"), "line 11 has 'inf'"),
    "missing arch": (lambda f: edit(f, 2, "arch", None), "needs an arch, but line 4 has none"),
    "no latency column": (lambda f: f.rename(columns={"latency_ms": "ms"}),
                          "lacks 'latency_ms' (its columns: arch, ms)"),
    "no arch column": (lambda f: f.drop(columns="arch"), "lacks 'arch'"),
    # pandas would read the extra fields as the row's index and blame the arch column
    "extra fields": (lambda f: f.to_csv(index=False).replace("\n", ",1,2\n", 2).replace(",1,2\n", "\n", 1),
                     "must have at most the 2 fields of its header, but {csv} line 2 has 4"),
    "too few networks": (lambda f: f.head(9), "table adapt needs at least 10 distinct measured networks "
                                              "(leave-one-out below 25 for 5 folds), but"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_measurements_are_one_line_exit_2_and_leave_the_output(target, tmp_path, case):
    root, _, _, _ = target
    change, message = BAD[case]
    changed = change(pd.read_csv(root / "measured.csv"))
    if isinstance(changed, str):
        (tmp_path / "bad.csv").write_text(changed)
    else:
        changed.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "adapted.jsonl"
    out.write_text("an earlier result\n")
    one_line_error(run("table", "adapt", root / "source.jsonl", tmp_path / "bad.csv", "-o", out),
                   message.format(csv=tmp_path / "bad.csv"))
    assert out.read_text() == "an earlier result\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "adapted.jsonl", "bad.csv"]


@pytest.mark.parametrize("case", ["output is the table", "output is the measurements", "missing measurements",
                                  "empty measurements", "one fold", "missing table"])
def test_bad_arguments_are_one_line_exit_2(target, tmp_path, case):
    root, _, _, _ = target
    table, measured, out = root / "source.jsonl", root / "measured.csv", tmp_path / "adapted.jsonl"
    before = {p: p.read_bytes() for p in (table, measured)}
    extra, message = [], None
    if case == "output is the table":
        out, message = root / "." / "source.jsonl", "must be written to a file other than its inputs, but -o"
    elif case == "output is the measurements":
        out, message = measured, "is the input"
    elif case == "missing measurements":
        measured, message = tmp_path / "none.csv", "a measurements file must exist, but"
    elif case == "empty measurements":
        measured, message = tmp_path / "empty.csv", "could not be read as one: No columns to parse from file"
        measured.write_text("")
    elif case == "one fold":
        extra, message = ["--folds", "1"], "Invalid value for '--folds': must be a finite integer >= 2 and <= 1000"
    else:
        table, message = tmp_path / "none.jsonl", "a lookup table file must exist, but"
    one_line_error(run("table", "adapt", table, measured, "-o", out, *extra), message)
    assert all(p.read_bytes() == data for p, data in before.items())
    assert not (tmp_path / "adapted.jsonl").exists()


def test_validate_reports_with_the_same_errors():
    from hwnas.profiler.validate import Errors as ValidateErrors

    assert ValidateErrors is Errors


def test_an_adapted_table_is_not_validated_on_the_source_device(written):
    out, _ = written
    result = run("validate", out, "--archs", "4")
    assert result.exit_code == 2 and "was adapted to another target from whole-network measurements" in result.output


# ----- few measurements, and a target that orders the ops differently from the host ------------------------
SMALL = get_space("spos", "cifar10", width=0.25)  # 4 ops a layer, 32 block keys: fits in milliseconds
REORDER = {"shuffle_k3": 3.0, "shuffle_k5": 0.2, "shuffle_k7": 1.0, "xception": 0.2}  # host order reversed


def small_target(tmp_path, n, *, factor=REORDER, seed=0, noise=0.02, offset_ms=0.02):
    """(host table path, MEASURED.csv path, the host table, the target's true latency per op-index array)."""
    host = synthetic_table(SMALL, device="host", path=tmp_path / "host.jsonl")
    per_layer = [np.array([host.records[layer.block(op).key].latency_ms * factor[op] for op in layer.op_names])
                 for layer in SMALL.layers]
    fixed = sum(host.records[f.block.key].latency_ms for f in SMALL.stem + SMALL.head)

    def truth(idx):
        return offset_ms + fixed + sum(lat[idx[:, i]] for i, lat in enumerate(per_layer))

    rng, seen = random.Random(seed), {}
    while len(seen) < n:
        arch = SMALL.sample(rng)
        seen.setdefault(str(arch), SMALL.indices(arch))
    idx = np.array(list(seen.values()))
    y = truth(idx) * (1 + noise * np.random.default_rng(seed).standard_normal(n))
    pd.DataFrame({"arch": list(seen), "latency_ms": y}).to_csv(tmp_path / "measured.csv", index=False)
    return tmp_path / "host.jsonl", tmp_path / "measured.csv", host, truth


def assert_loads_everywhere(out, host_path):
    """The written table: every block latency finite and >= 0 (its coefficient >= FLOOR), it loads, predicts,
    and the table commands read it."""
    loaded = LookupTable.load(out)
    latencies = np.array([r.latency_ms for r in loaded.records.values()])
    assert np.all(np.isfinite(latencies)) and latencies.min() >= 0
    assert all(r.extra["coefficient"] >= FLOOR for r in loaded.records.values())
    idx = random_indices_of(SMALL, 50, seed=9)
    predicted = loaded.predict_indices(idx)
    assert np.all(np.isfinite(predicted)) and predicted.min() > 0 and loaded.minimum_latency() >= 0
    assert loaded.predict(SMALL.from_indices(idx[0])).latency_ms == pytest.approx(predicted[0], rel=1e-9)
    for command in (("table", "show", out), ("table", "compare", host_path, out, "--archs", "20")):
        result = run(*command)
        assert result.exit_code == 0, result.output
    return loaded


def random_indices_of(space, n, seed):
    rng, seen = random.Random(seed), {}
    while len(seen) < n:
        arch = space.sample(rng)
        seen.setdefault(str(arch), space.indices(arch))
    return np.array(list(seen.values()))


@pytest.mark.parametrize("n", [10, 20, 50])
def test_a_target_that_orders_ops_differently_adapts_from_few_networks(tmp_path, n):
    host_path, measured, host, truth = small_target(tmp_path, n)
    out = tmp_path / "adapted.jsonl"
    result = run("table", "adapt", host_path, measured, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output
    loaded = assert_loads_everywhere(out, host_path)
    info = loaded.header["adapted"]
    scheme = "leave-one-out" if n < 25 else "5-fold"
    assert info["cross_validated"]["scheme"] == info["model"]["scheme"] == scheme
    assert info["cross_validated"]["folds"] == (n if n < 25 else 5) and info["model"]["folds_asked"] == 5
    # the adapted table ranks fresh networks of the target better than the host table does
    fresh = random_indices_of(SMALL, 300, seed=5)
    tau_adapted = Errors.of(loaded.predict_indices(fresh), truth(fresh)).kendall_tau
    tau_host = Errors.of(host.predict_indices(fresh), truth(fresh)).kendall_tau
    assert tau_adapted > tau_host + 0.2, (tau_adapted, tau_host)


def small_problem(tmp_path, n, factor, seed=0):
    """(x, y, levels, M) of the adapt model for ``n`` measured networks of a target with per-op ``factor``."""
    from hwnas.tables.adapt import read_measurements as read

    _, measured, host, _ = small_target(tmp_path, n, factor=factor, seed=seed, noise=0.03)
    m = read(measured, SMALL)
    blocks = Blocks.of(host)
    features = blocks.features(np.array([SMALL.indices(a) for a in m.archs]))
    mapping, levels = blocks.mapping()
    return np.column_stack([np.ones(n), features @ mapping]), m.latency_ms, levels, mapping


def test_the_fit_is_constrained_where_plain_ridge_goes_negative(tmp_path):
    """An op that costs nothing on the target, a weak ridge and few networks: plain ridge (the fit before the
    constraint) prices some blocks below zero; the constrained fit is the optimum with every coefficient and
    the scale >= FLOOR and the intercept >= 0."""
    x, y, levels, mapping = small_problem(tmp_path, 12, {**REORDER, "shuffle_k5": 0.0})
    pen = penalty(levels, (1e-8,) * 4)
    g, h = constraints(mapping)
    plain = fit(x, y, pen, None)
    assert (mapping @ plain[1:]).min() < -0.05  # what adapt wrote before: a negative block latency
    beta = fit(x, y, pen, (g, h))
    assert (g @ beta - h).min() >= -1e-9 and (mapping @ beta[1:]).min() == pytest.approx(FLOOR)
    xr = x / y[:, None]

    def objective(b):
        return float(np.sum((1 - xr @ b) ** 2) + len(y) * np.sum(pen * b ** 2))

    from scipy.optimize import LinearConstraint, minimize

    reference = minimize(objective, np.r_[0, 1, np.zeros(len(plain) - 2)], method="SLSQP",
                         jac=lambda b: -2 * xr.T @ (1 - xr @ b) + 2 * len(y) * pen * b,
                         constraints=[LinearConstraint(g, h, np.inf)], options={"maxiter": 1000, "ftol": 1e-14})
    assert reference.success and (g @ reference.x - h).min() >= -1e-6
    assert objective(beta) <= objective(reference.x) + 1e-9
    assert objective(plain) <= objective(beta)  # the constraint costs fit, as it must


def test_an_op_that_is_free_on_the_target_gives_a_table_every_command_reads(tmp_path):
    """Noise-free networks of a target where one op costs nothing: the constraint binds, some blocks are written
    at the floor (FLOOR times their source latency, never 0 or below), and the table still loads, predicts and
    is read by the table commands either way round."""
    host_path, measured, _, _ = small_target(tmp_path, 30, factor={**REORDER, "shuffle_k5": 0.0}, noise=0.0)
    out = tmp_path / "adapted.jsonl"
    result = run("table", "adapt", host_path, measured, "-o", out)
    assert result.exit_code == 0, result.output
    loaded = assert_loads_everywhere(out, host_path)
    at_floor = loaded.header["adapted"]["model"]["at_floor"]
    assert at_floor == sum(r.extra["coefficient"] == FLOOR for r in loaded.records.values()) > 0
    assert f"({at_floor} at the floor 0.01)" in result.output
    result = run("table", "compare", out, host_path, "--archs", "20", "--format", "json")
    assert result.exit_code == 0, result.output


def test_few_networks_of_a_scaled_host_move_the_table_gently(tmp_path):
    """The prior is the host table: 10 networks of a target that is the host times 1.3 (plus 2 % noise) leave
    the blocks in the host's proportions (the ridge choice at the loss minimum alone spread the coefficients
    0.56..2.07 here), and the scale + intercept still fit the target."""
    host_path, measured, _, truth = small_target(tmp_path, 10, factor=dict.fromkeys(REORDER, 1.3), noise=0.02)
    result = adapt_table(LookupTable.load(host_path), read_measurements(measured, SMALL))
    coefficients = np.array([r.extra["coefficient"] for r in result.table.records.values()])
    assert coefficients.max() < 1.1 * coefficients.min(), coefficients
    fresh = random_indices_of(SMALL, 300, seed=5)
    assert Errors.of(result.table.predict_indices(fresh), truth(fresh)).mean_abs_pct < 3


def test_ten_networks_are_cross_validated_leave_one_out(tmp_path):
    host_path, measured, _, _ = small_target(tmp_path, MIN_NETWORKS)
    out = tmp_path / "adapted.jsonl"
    result = run("table", "adapt", host_path, measured, "-o", out)
    assert result.exit_code == 0, result.output
    assert "leave-one-out cross-validation (10 folds), fewer than 5 networks per fold for --folds 5" in result.output
    assert "held-out (leave-one-out) Kendall tau" in result.output
    info = LookupTable.load(out).header["adapted"]
    assert info["cross_validated"]["folds"] == info["model"]["folds"] == 10
    assert info["measurements"]["networks"] == 10


def test_nine_networks_are_one_line_exit_2_and_write_nothing(tmp_path):
    host_path, measured, _, _ = small_target(tmp_path, MIN_NETWORKS - 1)
    out = tmp_path / "adapted.jsonl"
    one_line_error(run("table", "adapt", host_path, measured, "-o", out),
                   f"table adapt needs at least 10 distinct measured networks (leave-one-out below 25 for 5 folds), "
                   f"but {measured} holds 9")
    assert not out.exists()


def test_an_unwritable_output_is_refused_before_the_fit(target, tmp_path, monkeypatch):
    root, _, _, _ = target
    table, measured = root / "source.jsonl", root / "measured.csv"
    one_line_error(run("table", "adapt", table, measured, "-o", table / "x.jsonl"),
                   f"the adapted table must be in a directory, but {table} is a file")
    import hwnas.tables.adapt as adapt_module

    def never(*args, **kwargs):
        raise AssertionError("the fit must not start")

    monkeypatch.setattr(adapt_module, "adapt_table", never)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "ro" else real_access(p, mode))
    (tmp_path / "ro").mkdir()
    one_line_error(run("table", "adapt", table, measured, "-o", tmp_path / "ro" / "out.jsonl"),
                   f"the adapted table must be in a directory this process can write to, but {tmp_path / 'ro'} is "
                   f"not writable")
    assert not list((tmp_path / "ro").iterdir())


def test_a_targets_price_of_depthwise_macs_is_learnt_from_10_networks():
    """A target that runs everything as the table says but pays extra per depthwise MAC (as a phone's CPU does
    against an x86 host's): 10 networks recover the price, and the adapted table ranks other networks better
    than the table scaled by one factor."""
    from hwnas.space.cost import conv_macs

    table = synthetic_table(SPACE, device="source")
    price = 2e-8  # ms per depthwise MAC: about a quarter of a typical network's latency
    def truth(indices):
        extra = [np.array([conv_macs(layer.block(op))[1] for op in layer.op_names]) for layer in SPACE.layers]
        return table.predict_indices(indices) + price * sum(e[indices[:, i]] for i, e in enumerate(extra))

    measured = random_indices(10, seed=5)
    frame = pd.DataFrame({"arch": [str(SPACE.from_indices(i)) for i in measured], "latency_ms": truth(measured)})
    result = adapt_table(table, measurements_from_frame(frame, SPACE))
    model = result.info["model"]
    assert model["depthwise_ms_per_mmac"] == pytest.approx(price * 1e6, rel=0.2)
    fresh = random_indices(400, seed=6)[200:]
    raw = table.predict_indices(measured)
    scale, offset = np.polyfit(raw, truth(measured), 1)
    plain = Errors.of(scale * table.predict_indices(fresh) + offset, truth(fresh))
    adapted = Errors.of(result.table.predict_indices(fresh), truth(fresh))
    assert adapted.kendall_tau > plain.kendall_tau + 0.05 and adapted.mean_abs_pct < 0.5 * plain.mean_abs_pct


@pytest.mark.parametrize("space_name", ["fbnet", "proxylessnas", "spos", "single_path_nas"])
def test_dense_and_depthwise_macs_add_up_to_a_blocks_macs(space_name):
    from hwnas.space import block_cost
    from hwnas.space.cost import conv_macs

    space = get_space(space_name, "cifar10", width=0.5)
    for block in space.all_blocks():
        dense, depthwise = conv_macs(block)
        assert dense + depthwise == block_cost(block).macs and min(dense, depthwise) >= 0
    assert any(conv_macs(b)[1] > 0 for b in space.all_blocks())


# ----- other tables priced beside the host's (--also) ---------------------------------------------------------
def test_a_similar_devices_table_is_priced_and_learnt_from_10_networks(tmp_path):
    """A target that runs blocks partly as the host does and partly as another device (whose table ranks blocks
    differently): with that device's table beside, 10 networks find its price, and the adapted table ranks other
    networks better than without it."""
    host = synthetic_table(SPACE, device="host", path=tmp_path / "host.jsonl")
    other = synthetic_table(SPACE, device="phone", path=tmp_path / "phone.jsonl", jitter=0.6)

    def truth(indices):
        return 0.3 * host.predict_indices(indices) + 0.9 * other.predict_indices(indices)

    measured = random_indices(10, seed=7)
    frame = pd.DataFrame({"arch": [str(SPACE.from_indices(i)) for i in measured], "latency_ms": truth(measured)})
    alone = adapt_table(host, measurements_from_frame(frame, SPACE))
    both = adapt_table(host, measurements_from_frame(frame, SPACE), also=[other])
    (priced,) = both.info["model"]["also"]
    assert priced["device"] == "phone" and priced["digest"] == other.digest()
    assert priced["price"] == pytest.approx(0.9, rel=0.15)
    assert alone.info["model"]["also"] == [] and "also_ms" not in next(iter(alone.table.records.values())).extra
    fresh = random_indices(300, seed=8)
    with_other = Errors.of(both.table.predict_indices(fresh), truth(fresh))
    without = Errors.of(alone.table.predict_indices(fresh), truth(fresh))
    assert with_other.kendall_tau > max(0.95, without.kendall_tau + 0.05), (with_other, without)
    block = next(r for r in both.table.records.values() if "also_ms" in r.extra)
    assert block.latency_ms == pytest.approx(block.extra["source_ms"] * block.extra["coefficient"]
                                             + block.extra["macs_ms"] + block.extra["also_ms"], rel=1e-6)


def test_also_on_the_command_line_and_its_bad_input(tmp_path):
    host_path, measured, _, _ = small_target(tmp_path, 12)
    synthetic_table(SMALL, device="phone", path=tmp_path / "phone.jsonl")
    out = tmp_path / "out.jsonl"
    result = run("table", "adapt", host_path, measured, "--also", tmp_path / "phone.jsonl", "-o", out,
                 "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert [o["device"] for o in summary["also"]] == ["phone"] and summary["also"][0]["price"] >= 0
    recorded = LookupTable.load(out).header["adapted"]["model"]["also"][0]
    assert recorded["path"] == str((tmp_path / "phone.jsonl").resolve())
    assert_loads_everywhere(out, host_path)
    shown = run("table", "show", out)
    assert (f"adapted: from 12 networks measured on the target ({measured.resolve()}), ridge-op-stage-block-macs; "
            f"also phone at ") in shown.output
    synthetic_table(SPACE, device="fbnet", path=tmp_path / "fbnet.jsonl")
    one_line_error(run("table", "adapt", host_path, measured, "--also", tmp_path / "fbnet.jsonl", "-o",
                       tmp_path / "x.jsonl"), "was built for space 'fbnet', but space 'spos' was asked for")
    one_line_error(run("table", "adapt", host_path, measured, "--also", tmp_path / "phone.jsonl", "-o",
                       tmp_path / "phone.jsonl"), "is the input")
    assert not (tmp_path / "x.jsonl").exists()


def test_a_table_whose_blocks_are_all_equal_is_one_line_exit_2_and_writes_nothing(tmp_path):
    host_path, measured, host, _ = small_target(tmp_path, MIN_NETWORKS)
    same = LookupTable(host.header, [dataclasses.replace(r, latency_ms=0.01) for r in host.records.values()])
    same.save(tmp_path / "same.jsonl")
    out = tmp_path / "adapted.jsonl"
    one_line_error(run("table", "adapt", tmp_path / "same.jsonl", measured, "-o", out),
                   f"table adapt needs a table whose blocks tell the measured networks apart, but every network in "
                   f"{measured} sums to the same")
    assert not out.exists()


def test_a_table_with_a_huge_block_is_one_line_exit_2_and_writes_nothing(tmp_path):
    host_path, measured, _, _ = small_target(tmp_path, MIN_NETWORKS)
    lines = host_path.read_text().splitlines()
    record = json.loads(lines[4])
    record["latency_ms"] = 1e308
    lines[4] = json.dumps(record)
    host_path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "adapted.jsonl"
    one_line_error(run("table", "adapt", host_path, measured, "-o", out),
                   f"{host_path} line 5 is not a valid block record (latency_ms must be at most 1e+07 for one block")
    assert not out.exists()


def test_equal_measured_latencies_say_the_tau_is_undefined(tmp_path):
    host_path, measured, _, _ = small_target(tmp_path, MIN_NETWORKS)
    frame = pd.read_csv(measured)
    frame["latency_ms"] = 1.25
    frame.to_csv(measured, index=False)
    out = tmp_path / "adapted.jsonl"
    result = run("table", "adapt", host_path, measured, "-o", out)
    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert "held-out (leave-one-out) Kendall tau undefined (all measured latencies equal)," in summary, summary
    assert "nan" not in summary and out.exists()


# ----- the reduced model: the source times one scale plus an offset, when the whole model does not beat it ----
def test_ten_networks_of_a_scaled_source_write_the_reduced_model(tmp_path):
    """10 networks of a target that is the host times 1.3 plus an offset and 2 % noise: the whole model does not
    beat the host times one scale plus an offset in cross-validation, so that reduced model is written: one
    coefficient for every block, no MAC price, and the header, the summary and the text say so."""
    host_path, measured, _, truth = small_target(tmp_path, 10, factor=dict.fromkeys(REORDER, 1.3), noise=0.02)
    out = tmp_path / "adapted.jsonl"
    result = run("table", "adapt", host_path, measured, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    loaded = assert_loads_everywhere(out, host_path)
    info = loaded.header["adapted"]
    assert summary["reduced"] is info["model"]["reduced"] is True
    assert summary["held_out"]["reduced_in_folds"] == info["cross_validated"]["reduced_in_folds"]
    assert 0 < info["cross_validated"]["reduced_in_folds"] <= 10
    coefficients = {r.extra["coefficient"] for r in loaded.records.values()}
    assert coefficients == {round(info["model"]["scale"], 6)}
    assert all(r.extra["macs_ms"] == 0 for r in loaded.records.values())
    assert info["model"]["dense_ms_per_mmac"] == info["model"]["depthwise_ms_per_mmac"] == 0
    fresh = random_indices_of(SMALL, 300, seed=5)
    assert Errors.of(loaded.predict_indices(fresh), truth(fresh)).mean_abs_pct < 3
    text = run("table", "adapt", host_path, measured, "-o", tmp_path / "again.jsonl")
    assert "reduced to the table times one scale plus an offset" in text.output
    assert f"which chose the reduced model in {info['cross_validated']['reduced_in_folds']} of them" in text.output
    assert "(chosen, but not used: the reduced model has no deviations to shrink)" in text.output
    assert "ridge-op-stage-block-macs reduced to scale + offset" in run("table", "show", out).output


def test_a_distorted_target_keeps_the_whole_model(adapted):
    """160 networks of a target whose ops and stages the table misprices: the whole model wins, in every fold."""
    assert adapted.reduced is False and adapted.reduced_in == 0
    assert adapted.info["model"]["reduced"] is False and adapted.info["cross_validated"]["reduced_in_folds"] == 0


def test_choose_takes_the_reduced_model_only_within_one_standard_error(tmp_path):
    """The reduced model is chosen when its cross-validated loss is within one standard error of the whole
    model's best, and not when the target reorders the ops (which only the whole model can learn)."""
    from hwnas.tables.adapt_fit import choose, reduced_bounds

    for factor, expect in ((dict.fromkeys(REORDER, 1.3), True), (REORDER, False)):
        x, y, levels, mapping = small_problem(tmp_path, 30, factor)
        choice = choose(x, y, levels, constraints(mapping), reduced_bounds(0.0), 30, np.random.default_rng(0))
        assert choice.reduced is expect, (factor, choice)
        assert expect or choice.reduced_loss > 2 * choice.loss


def test_the_reduced_model_may_have_a_negative_offset_but_no_negative_prediction(tmp_path):
    """A target faster than the host by a fixed amount (2 x the host's block sum minus more than the cheapest
    network's, less than any measured one's): the reduced fit takes a negative intercept down to its bound, where
    the cheapest network of the space is predicted at FLOOR times its scaled block sum, not below."""
    from hwnas.tables.adapt import _adapted
    from hwnas.tables.adapt_fit import Choice, fit_choice, reduced_bounds

    host_path, measured, host, _ = small_target(tmp_path, 12, factor=dict.fromkeys(REORDER, 1.0), noise=0.0)
    blocks = Blocks.of(host)
    lowest = sum(float(lat.min()) for lat in blocks.layer_latency)
    x, y, levels, mapping = small_problem(tmp_path, 12, dict.fromkeys(REORDER, 1.0))
    cut = lowest + 0.5 * (x[:, 1].min() - lowest)
    y = 2 * (x[:, 1] - cut)  # every measured network positive, the cheapest one of the space not
    assert y.min() > 0
    small = reduced_bounds(lowest)
    beta = fit_choice(x, y, levels, constraints(mapping), small, Choice((1.0,) * 4, True, 0.0, 0.0))
    assert np.all(beta[2:] == 0) and beta[0] < 0
    assert beta[0] + beta[1] * lowest == pytest.approx(FLOOR * beta[1] * lowest, rel=1e-6)
    unbounded = fit_choice(x, y, levels, constraints(mapping), (np.eye(2)[1:], np.array([FLOOR])),
                           Choice((1.0,) * 4, True, 0.0, 0.0))
    assert unbounded[0] + unbounded[1] * lowest < 0  # what the bound prevents
    table = _adapted(host, blocks, np.full(len(blocks.keys), beta[1]), np.zeros(len(blocks.keys)), np.zeros(0),
                     float(beta[1]), float(beta[0]), 12)
    assert table.minimum_latency() == pytest.approx(FLOOR * beta[1] * lowest, rel=1e-6) and table.minimum_latency() > 0


def test_adapt_writes_the_reduced_models_negative_offset_at_its_bound(tmp_path, monkeypatch):
    """The same target through `adapt_table` with the reduced model chosen: the table written predicts the
    cheapest network of the space at FLOOR times its scaled block sum, the bound itself (no further clip)."""
    import hwnas.tables.adapt as adapt_module
    import hwnas.tables.adapt_fit as fit_module
    from hwnas.tables.adapt_fit import Choice

    def reduced(*args, **kwargs):
        return Choice((1.0,) * 4, True, 0.0, 0.0)

    monkeypatch.setattr(fit_module, "choose", reduced)
    monkeypatch.setattr(adapt_module, "choose", reduced)
    _, measured, host, _ = small_target(tmp_path, 12, factor=dict.fromkeys(REORDER, 1.0), noise=0.0)
    blocks = Blocks.of(host)
    lowest = sum(float(lat.min()) for lat in blocks.layer_latency)
    searchable = blocks.features(np.array([SMALL.indices(a) for a in read_measurements(measured, SMALL).archs]))
    frame = pd.DataFrame({"arch": read_measurements(measured, SMALL).archs,
                          "latency_ms": 2 * (searchable.sum(axis=1) - lowest - 0.5 * (searchable.sum(axis=1).min()
                                                                                      - lowest))})
    result = adapt_table(host, measurements_from_frame(frame, SMALL))
    scale = result.info["model"]["scale"]
    assert result.reduced and result.info["model"]["intercept_ms"] < 0
    assert result.table.minimum_latency() == pytest.approx(FLOOR * scale * lowest, rel=1e-6)
