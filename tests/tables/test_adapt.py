"""`hwnas table adapt`: a table fitted to whole-network measurements of a target.

The target is synthetic: its true latency of a block is the table's times a known factor per op and per
stage, plus a fixed offset per network and a little measurement noise, so what the adapted table should
recover is known.
"""

import hashlib
import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

import hwnas.training
from hwnas.space import get_space
from hwnas.tables import Errors, LookupTable, adapt_table, read_measurements
from hwnas.tables.adapt import stage_of
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
    assert set(rows) == {"table (scale + offset)", "adapted (ridge-op-stage-block)"}
    assert rows["adapted (ridge-op-stage-block)"]["kendall_tau"] > rows["table (scale + offset)"]["kendall_tau"]
    assert f"wrote {out}" in result.stderr and printed["output"] == str(out)
    loaded = LookupTable.load(out)
    info = loaded.header["adapted"]
    assert info["source"]["digest"] == table.digest()
    assert info["source"]["path"] == str((root / "source.jsonl").resolve())
    assert info["measurements"]["path"] == str((root / "measured.csv").resolve())
    assert info["measurements"]["sha256"] == hashlib.sha256((root / "measured.csv").read_bytes()).hexdigest()
    assert info["measurements"]["networks"] == info["measurements"]["rows"] == 160
    model = info["model"]
    assert model["name"] == "ridge-op-stage-block" and model["folds"] == 5
    assert set(model["ridge"]) == {"op", "stage", "op_stage", "block"}
    assert all(value in model["ridge_grid"] for value in model["ridge"].values())
    groups = {(g["op"], g["stage"]): g for g in model["groups"]}
    assert len(groups) == 54 and groups["k5_e1", "8ch@32x32"]["layers"] == ["1", "2", "3", "4", "5"]
    assert {key for g in groups.values() for key in g["blocks"]} == {
        layer.block(op).key for layer in SPACE.layers for op in layer.op_names}
    for key, record in loaded.records.items():  # every block carries its coefficient and its source latency
        assert record.latency_ms == pytest.approx(record.extra["coefficient"] * table.records[key].latency_ms, rel=1e-5)
        assert record.extra["source_ms"] == table.records[key].latency_ms
    assert info["cross_validated"] == {"folds": 5, "adapted": adapted.adapted.to_dict(),
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
    assert "adapted (ridge-op-stage-block)" in result.output and f"wrote {out}:" in result.output.splitlines()[-1]
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
    "zero latency": (lambda f: edit(f, 6, "latency_ms", 0), "must be a finite number > 0, but line 8 has '0'"),
    "negative latency": (lambda f: edit(f, 6, "latency_ms", -1.5), "line 8 has '-1.5'"),
    "missing latency": (lambda f: edit(f, 9, "latency_ms", None), "must be a finite number > 0, but line 11 has none"),
    "text latency": (lambda f: edit(f, 9, "latency_ms", "fast"), "line 11 has 'fast'"),
    "infinite latency": (lambda f: edit(f, 9, "latency_ms", "inf"), "line 11 has 'inf'"),
    "missing arch": (lambda f: edit(f, 2, "arch", None), "needs an arch, but line 4 has none"),
    "no latency column": (lambda f: f.rename(columns={"latency_ms": "ms"}),
                          "lacks 'latency_ms' (its columns: arch, ms)"),
    "no arch column": (lambda f: f.drop(columns="arch"), "lacks 'arch'"),
    "too few networks": (lambda f: f.head(12), "needs at least 25 distinct measured networks for 5-fold "
                                               "cross-validation (5 per fold), but"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_measurements_are_one_line_exit_2_and_leave_the_output(target, tmp_path, case):
    root, _, _, _ = target
    change, message = BAD[case]
    change(pd.read_csv(root / "measured.csv")).to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "adapted.jsonl"
    out.write_text("an earlier result\n")
    one_line_error(run("table", "adapt", root / "source.jsonl", tmp_path / "bad.csv", "-o", out), message)
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
