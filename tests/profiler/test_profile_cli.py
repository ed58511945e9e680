"""The profiler end to end through the CLI, on tiny spaces with a quick protocol that never waits for calm."""

import dataclasses
import io
import json
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from hwnas.devices import get_device
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Protocol
from hwnas.space import get_space
from hwnas.tables import LookupTable
from cli_helpers import run, one_line_error, same_rows

QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0", "--calm-wait-s", "0"]
QUICK_PROTOCOL = Protocol(rounds=3, min_block_s=0.001, rotate=1, warmup_s=0, calm_wait_s=0)  # what QUICK makes
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25"]


@pytest.fixture(scope="module")
def cpu_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "cpu.jsonl"
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", path)
    assert result.exit_code == 0, result.output
    return path


def test_profile_covers_the_space_once(cpu_table):
    table = LookupTable.load(cpu_table)
    space = get_space("spos", "cifar10", width=0.25)
    assert set(table.records) == {b.key for b in space.all_blocks()}
    table.check_space(space)
    assert table.header["device"]["name"] == "cpu"
    assert table.header["device"]["comparable"]["threads"] == 1
    assert Protocol.from_dict(table.header["protocol"]) == QUICK_PROTOCOL  # unnamed settings: Protocol's defaults
    assert all(r.latency_ms > 0 and r.iqr_ms >= 0 and r.rounds >= 3 and r.calls_per_block >= 1
               for r in table.records.values())
    frame = pd.read_json(cpu_table, lines=True)
    assert len(frame) == 1 + len(table.records)


def test_profile_rerun_skips_what_is_there(cpu_table):
    before = cpu_table.read_text()
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", cpu_table)
    assert result.exit_code == 0, result.output
    assert cpu_table.read_text() == before


def test_other_protocol_is_refused_unless_forced(tmp_path, cpu_table):
    path = tmp_path / "t.jsonl"
    path.write_text(cpu_table.read_text())
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "--rotate", "2", "-o", path)
    one_line_error(result, "must be resumed with the same device, protocol and space")
    assert "pass --force" in result.output
    assert path.read_text() == cpu_table.read_text()  # nothing lost
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "--rotate", "2", "--force", "-o", path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.jsonl.bak").read_text() == cpu_table.read_text()
    assert LookupTable.load(path).header["protocol"]["rotate"] == 2


SUMMARY = ["table", "blocks", "space", "input", "device", "on", "seconds", "rel_iqr_median_pct", "rel_iqr_max_pct",
           "reference_level_ms"]


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_profile_prints_a_one_row_summary(cpu_table, fmt):
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", cpu_table, "--format", fmt)
    assert result.exit_code == 0, result.output
    table = LookupTable.load(cpu_table)
    rel = np.array([r.rel_iqr for r in table.records.values()])
    expected = {"table": str(cpu_table), "blocks": 34, "space": "spos", "input": "cifar10", "device": "cpu",
                "on": "this host",
                "rel_iqr_median_pct": round(100 * float(np.median(rel)), 2),
                "rel_iqr_max_pct": round(100 * float(rel.max()), 2),
                "reference_level_ms": table.header["reference_level_ms"]}
    if fmt == "json":
        rows = json.loads(result.stdout)["rows"]
        assert len(rows) == 1 and list(rows[0]) == SUMMARY and rows[0]["seconds"] >= 0
        assert {k: v for k, v in rows[0].items() if k != "seconds"} == expected
    elif fmt == "csv":
        frame = pd.read_csv(io.StringIO(result.stdout))
        assert list(frame.columns) == SUMMARY and len(frame) == 1
        assert frame.loc[0, "blocks"] == 34 and frame.loc[0, "rel_iqr_max_pct"] == expected["rel_iqr_max_pct"]
    else:
        header, row = result.stdout.strip().splitlines()
        assert header.split() == SUMMARY and row.split()[1:5] == ["34", "spos", "cifar10", "cpu"]


class Stopped(Exception):
    pass


@pytest.mark.parametrize("torn", [False, True], ids=["between-batches", "mid-record"])
def test_a_stopped_profile_resumes(tmp_path, torn):
    """A build stopped right after its first batch was written (as a kill would stop it), and, ``torn``,
    with that batch's last record cut mid-line (a kill while writing), is resumed by ``hwnas profile``."""
    path, space = tmp_path / "stopped.jsonl", get_space("spos", "cifar10", width=0.25)
    blocks = space.all_blocks()

    def stop(written):
        raise Stopped(written)

    with pytest.raises(Stopped, match="12"):
        profile_space(space, get_device("cpu"), path, protocol=QUICK_PROTOCOL, on_batch=stop)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["reference_level_ms"] is None  # set once the table is complete
    assert [json.loads(line)["key"] for line in lines[1:]] == [b.key for b in blocks[:12]]  # exactly one batch
    kept = {json.loads(line)["key"]: json.loads(line) for line in lines[1:]}
    if torn:
        text = path.read_text()
        path.write_text(text[:len(text) - 40])
        del kept[blocks[11].key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("profile", *SPACE, "--device", "cpu", *QUICK, "-o", path)
    assert result.exit_code == 0, result.output
    dropped = [w for w in caught if "dropped a truncated last line" in str(w.message)]
    assert len(dropped) == (1 if torn else 0)  # the torn line is dropped on load, and then measured again
    after = path.read_text().splitlines()
    header = json.loads(after[0])
    assert json.loads(lines[0]) == {**header, "reference_level_ms": None}
    assert sorted(json.loads(line)["key"] for line in after[1:]) == sorted(b.key for b in blocks)  # each once
    table = LookupTable.load(path)
    level = header["reference_level_ms"]
    assert len(table.records) == len(blocks) and level == pytest.approx(
        min(r.extra["reference_ms"] for r in table.records.values()), abs=1e-6)
    for key, before in kept.items():  # what was measured before the stop is kept, unless measured again
        now = table.records[key]  # because a burst slowed its reference
        assert before["raw_ms"] == before["latency_ms"]
        if now.extra["raw_ms"] != before["raw_ms"]:
            assert now.extra["reference_ms"] < before["reference_ms"]
            before = now.extra
        assert now.latency_ms == pytest.approx(before["raw_ms"] * level / before["reference_ms"])
    for record in table.records.values():
        assert record.latency_ms == pytest.approx(record.extra["raw_ms"] * level / record.extra["reference_ms"])


def test_table_show(cpu_table):
    result = run("table", "show", cpu_table, "--sort", "latency")
    assert result.exit_code == 0 and "device: cpu" in result.output
    data = json.loads(run("table", "show", cpu_table, "--format", "json").output)
    assert len(data["rows"]) == len(LookupTable.load(cpu_table).records)
    assert data["summary"]["header"]["kind"] == "hwnas-lookup-table"
    assert data["summary"]["reference_level_ms"] > 0 and all(row["raw_ms"] > 0 for row in data["rows"])


def test_profile_and_validate_follow_the_output_convention(cpu_table):
    """`--format csv` and `--format json` read with the README's lines give the same rows (cli_helpers.same_rows);
    the figures of two validations differ, their columns and types do not."""
    rows, _ = same_rows("profile", *SPACE, "--device", "cpu", *QUICK, "-o", cpu_table, vary=("seconds",))
    assert rows[0]["blocks"] == 34
    rows, summary = same_rows("validate", cpu_table, "--archs", 4,
                              vary=("mean_abs_pct_error", "within_5pct", "within_10pct", "kendall_tau"))
    assert [r["predictor"] for r in rows] == ["table (raw sum)", "table (calibrated)", "MACs (fitted)"]
    assert isinstance(summary["calibration"]["scale"], float) and summary["calibration"]["saved"] is False


def compare(a, b, archs=50):
    result = run("table", "compare", a, b, "--archs", archs, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return {**data["summary"], "rows": data["rows"]}


def transformed(source, path, latency):
    """A copy of table ``source`` at ``path`` whose every latency is ``latency(old latency)``."""
    table = LookupTable.load(source)
    LookupTable(table.header, [dataclasses.replace(r, latency_ms=latency(r.latency_ms))
                               for r in table.records.values()], path).save()
    return path


def test_a_table_compared_with_itself_agrees_exactly(cpu_table):
    data = compare(cpu_table, cpu_table)
    assert data["common_blocks"] == len(data["rows"]) == 34
    assert (data["median_ratio"], data["ratio_min"], data["ratio_max"]) == (1.0, 1.0, 1.0)
    assert (data["block_kendall_tau"], data["arch_kendall_tau"], data["archs"]) == (1.0, 1.0, 50)
    assert all(row["a_ms"] == row["b_ms"] and row["ratio_b_over_a"] == 1.0 for row in data["rows"])


def test_a_table_twice_as_slow_compares_as_twice_as_slow(cpu_table, tmp_path):
    data = compare(cpu_table, transformed(cpu_table, tmp_path / "x2.jsonl", lambda ms: 2 * ms))
    assert (data["median_ratio"], data["ratio_min"], data["ratio_max"]) == (2.0, 2.0, 2.0)
    assert (data["block_kendall_tau"], data["arch_kendall_tau"]) == (1.0, 1.0)  # the same ranking
    assert all(row["ratio_b_over_a"] == 2.0 and row["b_ms"] == pytest.approx(2 * row["a_ms"], abs=1.5e-4)
               for row in data["rows"])


def test_a_table_in_reverse_order_compares_as_reversed(cpu_table, tmp_path):
    la = np.array([r.latency_ms for r in LookupTable.load(cpu_table).records.values()])
    top = la.max() + la.min()  # every block's latency mirrored: the fastest becomes the slowest
    data = compare(cpu_table, transformed(cpu_table, tmp_path / "rev.jsonl", lambda ms: top - ms))
    # every architecture runs the same number of blocks, so its sum is mirrored too
    assert (data["block_kendall_tau"], data["arch_kendall_tau"]) == (-1.0, -1.0)
    assert data["median_ratio"] == round(float(np.median((top - la) / la)), 4)
    assert (data["ratio_min"], data["ratio_max"]) == pytest.approx((((top - la) / la).min(), ((top - la) / la).max()))


def test_table_compare_and_ort_mobile(tmp_path, cpu_table):
    ort = tmp_path / "ort.jsonl"
    result = run("profile", *SPACE, "--device", "ort-mobile", *QUICK, "-o", ort)
    assert result.exit_code == 0, result.output
    ta, tb = LookupTable.load(cpu_table), LookupTable.load(ort)
    assert tb.header["device"]["comparable"]["threads"] == 1 and set(tb.records) == set(ta.records)
    data = compare(cpu_table, ort, archs=50)
    keys = [row["key"] for row in data["rows"]]
    assert data["common_blocks"] == len(keys) == len(ta.records) and keys == list(ta.records)
    la, lb = np.array([ta.records[k].latency_ms for k in keys]), np.array([tb.records[k].latency_ms for k in keys])
    assert [row["ratio_b_over_a"] for row in data["rows"]] == [round(y / x, 3) for x, y in zip(la, lb)]
    assert data["median_ratio"] == round(float(np.median(lb / la)), 4)
    assert data["block_kendall_tau"] == round(float(kendalltau(la, lb).statistic), 4)
    rng = random.Random(0)  # compare's default seed: the same 50 architectures
    indices = np.array([ta.space.indices(ta.space.sample(rng)) for _ in range(50)])
    tau = kendalltau(ta.predict_indices(indices), tb.predict_indices(indices)).statistic
    assert data["arch_kendall_tau"] == round(float(tau), 4)


def test_tables_of_other_spaces_are_not_compared(cpu_table, tmp_path):
    other = tmp_path / "wide.jsonl"
    lines = cpu_table.read_text().splitlines()
    header = json.loads(lines[0])
    header["space"]["input"]["name"] = "cifar100"
    other.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    one_line_error(run("table", "compare", cpu_table, other), "tables to compare must describe the same space")


def errors(predicted, measured) -> dict:
    """What `hwnas validate` must print for one predictor, computed here from the per-architecture details."""
    rel = np.abs(predicted - measured) / measured
    return {"mean_abs_pct_error": round(float(100 * rel.mean()), 2), "within_5pct": round(float((rel <= 0.05).mean()), 3),
            "within_10pct": round(float((rel <= 0.10).mean()), 3),
            "kendall_tau": round(float(kendalltau(predicted, measured).statistic), 4)}


def test_validate_reports_and_saves_calibration(tmp_path, cpu_table):
    path = tmp_path / "v.jsonl"
    path.write_text(cpu_table.read_text())
    details = tmp_path / "archs.csv"
    result = run("validate", path, "--archs", "6", "--seed", "1", "--save", "--details", details, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    data = {**data["summary"], "rows": data["rows"]}
    assert [r["predictor"] for r in data["rows"]] == ["table (raw sum)", "table (calibrated)", "MACs (fitted)"]
    assert data["fitted_on"] == 3 and data["tested_on"] == 3
    frame = pd.read_csv(details)
    assert len(frame) == 6 and sorted(frame["split"]) == ["fit"] * 3 + ["test"] * 3 and (frame["measured_ms"] > 0).all()
    assert (frame["timed_ms"] > 0).all() and data["measured"] == "drift-corrected"
    assert data["reference_level_ms"] == json.loads(path.read_text().splitlines()[0])["reference_level_ms"] > 0
    fit, test = frame[frame["split"] == "fit"], frame[frame["split"] == "test"]
    scale, offset = np.polyfit(fit["table_ms"], fit["measured_ms"], 1)  # fitted on one half ...
    mac_scale, mac_offset = np.polyfit(fit["macs"].astype(float), fit["measured_ms"], 1)
    assert test["calibrated_ms"].tolist() == pytest.approx((scale * test["table_ms"] + offset).tolist())
    measured = test["measured_ms"].to_numpy()  # ... and judged on the other
    expected = [errors(test["table_ms"].to_numpy(), measured), errors(test["calibrated_ms"].to_numpy(), measured),
                errors(mac_scale * test["macs"].to_numpy() + mac_offset, measured)]
    assert [{k: v for k, v in row.items() if k != "predictor"} for row in data["rows"]] == expected
    calibration = LookupTable.load(path).calibration
    assert calibration.fitted_on == 3
    assert (calibration.scale, calibration.offset_ms) == pytest.approx((scale, offset))
    assert LookupTable.load(cpu_table).calibration is None  # only the saved copy


def test_validate_repeats_report_the_noise_floor(tmp_path, cpu_table):
    details = tmp_path / "archs.csv"
    result = run("validate", cpu_table, "--archs", "4", "--repeats", "2", "--details", details, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["repeats"] == 2 and data["rows"][-1]["predictor"] == "repeat (noise floor)"
    frame = pd.read_csv(details)
    assert (frame["run1_ms"] > 0).all() and (frame["run2_ms"] > 0).all()
    assert frame["measured_ms"].tolist() == pytest.approx(((frame["run1_ms"] + frame["run2_ms"]) / 2).tolist())
    test = frame[frame["split"] == "test"]
    floor = (abs(test["run2_ms"] - test["run1_ms"]) / test["run1_ms"]).mean()
    assert data["rows"][-1]["mean_abs_pct_error"] == pytest.approx(100 * floor, abs=0.01)
    one_line_error(run("validate", cpu_table, "--archs", "4", "--repeats", "0"),
                   "Invalid value for '--repeats': must be a finite integer >= 1 and <= 100, but got '0'")


def test_validate_refuses_a_table_from_another_machine(tmp_path, cpu_table):
    path = tmp_path / "other.jsonl"
    lines = cpu_table.read_text().splitlines()
    header = json.loads(lines[0])
    header["device"]["comparable"]["cpu_model"] = "Some Phone SoC"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    one_line_error(run("validate", path, "--archs", "4"), "validation must run on the device the table was measured on")


@pytest.mark.parametrize("args,message", [
    (["profile", *SPACE, "--device", "tpu", "-o", "x.jsonl"], "Invalid value for '--device': 'tpu' is not one of 'cpu', "
                                                             "'cuda'"),
    (["profile", *SPACE, "--device", "cpu", "--threads", "0", "-o", "x.jsonl"], "Invalid value for '--threads': must be a finite integer >= 1 and <= 1024, but got '0'"),
    (["profile", *SPACE, "--device", "cpu", "--precision", "int8", "-o", "x.jsonl"], "supports precision fp32"),
    (["profile", *SPACE, "--device", "cpu", "--rounds", "1", "-o", "x.jsonl"], "Invalid value for '--rounds': must be a finite integer >= 3 and <= 1000, but got '1'"),
    (["profile", *SPACE, "--device", "cpu", "--remeasure", "-1", "-o", "x.jsonl"],
     "Invalid value for '--remeasure': must be a finite integer >= 0 and <= 10, but got '-1'"),
    (["profile", *SPACE, "--device", "cpu", "--calm-wait-s", "-1", "-o", "x.jsonl"],
     "Invalid value for '--calm-wait-s': must be a finite number >= 0 and <= 3600, but got '-1'"),
    (["profile", *SPACE, "--device", "cpu", "--calm-budget-s", "-5", "-o", "x.jsonl"],
     "Invalid value for '--calm-budget-s': must be a finite number >= 0 and <= 86400, but got '-5'"),
    (["table", "show", "missing.jsonl"], "must exist, but missing.jsonl does not"),
    (["validate", "missing.jsonl"], "must exist, but missing.jsonl does not"),
])
def test_bad_input(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(run(*args), message)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(tmp_path):
    one_line_error(run("profile", *SPACE, "--device", "cuda", "-o", tmp_path / "c.jsonl"),
                   "device 'cuda' needs an NVIDIA GPU, but torch.cuda.is_available() is False")


def test_corrupt_table(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("garbage\n")
    one_line_error(run("table", "show", path), "line 1 is not JSON")
    one_line_error(run("validate", path), "line 1 is not JSON")


def test_records_are_drift_corrected_to_the_reference_level(cpu_table, tmp_path):
    table = LookupTable.load(cpu_table)
    level = table.header["reference_level_ms"]
    assert table.header["protocol"]["statistic"] == "min" and table.header["protocol"]["drift_correction"]
    for r in table.records.values():
        assert r.latency_ms == pytest.approx(r.extra["raw_ms"] * level / r.extra["reference_ms"], rel=1e-5)
        assert r.extra["raw_ms"] <= r.extra["median_ms"]  # the fastest block is never above the median
    plain = tmp_path / "plain.jsonl"
    result = run("profile", *SPACE, "--device", "cpu", *QUICK, "--statistic", "median", "--no-drift-correction",
                 "-o", plain)
    assert result.exit_code == 0, result.output
    plain_table = LookupTable.load(plain)
    assert plain_table.header["reference_level_ms"] is None
    assert all(r.latency_ms == r.extra["raw_ms"] == r.extra["median_ms"] for r in plain_table.records.values())


def test_the_level_is_the_fastest_reference_of_the_records(cpu_table):
    table = LookupTable.load(cpu_table)
    refs = [r.extra["reference_ms"] for r in table.records.values()]
    assert table.header["reference_level_ms"] == pytest.approx(min(refs), abs=1e-6)


@pytest.mark.parametrize("width", ["0.01", "1e-320"])
def test_a_width_too_small_for_the_space_is_one_line_and_writes_nothing(tmp_path, width):
    out = tmp_path / "w.jsonl"
    result = run("profile", "--space", "spos", "--input", "cifar10", "--device", "ort-mobile", "--width", width,
                 "-o", out)
    one_line_error(result, "--width ")
    assert "too small for space 'spos'" in result.output and not out.exists()
