"""The profiler end to end through the CLI, on tiny spaces with a quick protocol."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from hwnas.cli import cli
from hwnas.supernet.spaces import get_space
from hwnas.tables import LookupTable

QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0"]
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


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
    assert table.header["protocol"]["rounds"] == 3
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
    result = run("profile", *SPACE, "--device", "cpu", *QUICK[:-4], "--rotate", "2", "--warmup-ms", "0", "-o", path)
    one_line_error(result, "must be resumed with the same device, protocol and space")
    assert "pass --force" in result.output
    assert path.read_text() == cpu_table.read_text()  # nothing lost
    result = run("profile", *SPACE, "--device", "cpu", *QUICK[:-4], "--rotate", "2", "--warmup-ms", "0",
                 "--force", "-o", path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.jsonl.bak").read_text() == cpu_table.read_text()
    assert LookupTable.load(path).header["protocol"]["rotate"] == 2


def test_killed_profile_resumes(tmp_path):
    path = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "hwnas.cli", "profile", *SPACE, "--device", "cpu", "--rounds", "3",
           "--min-block-ms", "10", "--rotate", "1", "--warmup-ms", "0", "-o", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) > 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = path.read_text().splitlines()
    total = len(get_space("spos", "cifar10", width=0.25).all_blocks())
    kept = {json.loads(line)["key"]: line for line in lines[1:] if line.endswith("}")}
    assert 0 < len(kept) < total
    result = run("profile", *SPACE, "--device", "cpu", "--rounds", "3", "--min-block-ms", "10", "--rotate", "1",
                 "--warmup-ms", "0", "-o", path)
    assert result.exit_code == 0, result.output
    after = path.read_text().splitlines()
    header = json.loads(after[0])
    assert json.loads(lines[0]) == {**header, "reference_level_ms": None}  # set once the table was complete
    table = LookupTable.load(path)
    assert len(table.records) == total == len(after) - 1
    for key, line in kept.items():  # what was measured before the kill is kept, unless measured again
        before, now = json.loads(line), table.records[key]  # because a burst slowed its reference
        assert before["raw_ms"] == before["latency_ms"]
        if now.extra["raw_ms"] != before["raw_ms"]:
            assert now.extra["reference_ms"] < before["reference_ms"]
            before = now.extra
        assert now.latency_ms == pytest.approx(before["raw_ms"] * header["reference_level_ms"] / before["reference_ms"])


def test_table_show(cpu_table):
    result = run("table", "show", cpu_table, "--sort", "latency")
    assert result.exit_code == 0 and "device: cpu" in result.output
    data = json.loads(run("table", "show", cpu_table, "--format", "json").output)
    assert len(data["rows"]) == len(LookupTable.load(cpu_table).records)
    assert data["header"]["kind"] == "hwnas-lookup-table"
    assert data["reference_level_ms"] > 0 and all(row["raw_ms"] > 0 for row in data["rows"])


def test_table_compare_and_ort_mobile(tmp_path, cpu_table):
    ort = tmp_path / "ort.jsonl"
    result = run("profile", *SPACE, "--device", "ort-mobile", *QUICK, "-o", ort)
    assert result.exit_code == 0, result.output
    assert LookupTable.load(ort).header["device"]["comparable"]["threads"] == 1
    data = json.loads(run("table", "compare", cpu_table, ort, "--archs", "50", "--format", "json").output)
    assert data["common_blocks"] == len(data["rows"]) == len(LookupTable.load(cpu_table).records)
    assert -1 <= data["arch_kendall_tau"] <= 1 and data["median_ratio"] > 0


def test_validate_reports_and_saves_calibration(tmp_path, cpu_table):
    path = tmp_path / "v.jsonl"
    path.write_text(cpu_table.read_text())
    details = tmp_path / "archs.csv"
    result = run("validate", path, "--archs", "6", "--seed", "1", "--save", "--details", details, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert [r["predictor"] for r in data["rows"]] == ["table (raw sum)", "table (calibrated)", "MACs (fitted)"]
    assert data["fitted_on"] == 3 and data["tested_on"] == 3
    for row in data["rows"]:
        assert 0 <= row["within_5pct"] <= row["within_10pct"] <= 1 and row["mean_abs_pct_error"] >= 0
    frame = pd.read_csv(details)
    assert len(frame) == 6 and set(frame["split"]) == {"fit", "test"} and (frame["measured_ms"] > 0).all()
    assert (frame["timed_ms"] > 0).all() and data["measured"].startswith("drift-corrected to the reference level")
    calibration = LookupTable.load(path).calibration
    assert calibration is not None and calibration.fitted_on == 3


def test_validate_repeats_report_the_noise_floor(tmp_path, cpu_table):
    details = tmp_path / "archs.csv"
    result = run("validate", cpu_table, "--archs", "4", "--repeats", "2", "--details", details, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["repeats"] == 2 and data["rows"][-1]["predictor"] == "repeat (noise floor)"
    frame = pd.read_csv(details)
    assert (frame["run1_ms"] > 0).all() and (frame["run2_ms"] > 0).all()
    assert frame["measured_ms"].tolist() == pytest.approx(((frame["run1_ms"] + frame["run2_ms"]) / 2).tolist())
    test = frame[frame["split"] == "test"]
    floor = (abs(test["run2_ms"] - test["run1_ms"]) / test["run1_ms"]).mean()
    assert data["rows"][-1]["mean_abs_pct_error"] == pytest.approx(100 * floor, abs=0.01)
    one_line_error(run("validate", cpu_table, "--archs", "4", "--repeats", "0"),
                   "measures every architecture at least once, but got repeats=0")


def test_validate_refuses_a_table_from_another_machine(tmp_path, cpu_table):
    path = tmp_path / "other.jsonl"
    lines = cpu_table.read_text().splitlines()
    header = json.loads(lines[0])
    header["device"]["comparable"]["cpu_model"] = "Some Phone SoC"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    one_line_error(run("validate", path, "--archs", "4"), "validation must run on the device the table was measured on")


@pytest.mark.parametrize("args,message", [
    (["profile", *SPACE, "--device", "tpu", "-o", "x.jsonl"], "unknown device 'tpu'; known devices: cpu, cuda"),
    (["profile", *SPACE, "--device", "cpu", "--threads", "0", "-o", "x.jsonl"], "threads must be >= 1, but got threads=0"),
    (["profile", *SPACE, "--device", "cpu", "--precision", "int8", "-o", "x.jsonl"], "supports precision fp32"),
    (["profile", *SPACE, "--device", "cpu", "--rounds", "1", "-o", "x.jsonl"], "rounds must be >= 3, but got rounds=1"),
    (["profile", *SPACE, "--device", "cpu", "--remeasure", "-1", "-o", "x.jsonl"],
     "remeasure must be >= 0, but got remeasure=-1"),
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


def test_whole_networks_measured_against_the_tables_reference(cpu_table):
    import random

    from hwnas.devices import Protocol
    from hwnas.errors import TableError
    from hwnas.profiler.validate import measure_archs_against_reference, reference_level, table_device
    from hwnas.search.testing import synthetic_table

    table = LookupTable.load(cpu_table)
    level = reference_level(table)
    assert level == table.header["reference_level_ms"] and level > 0
    archs = [table.space.sample(random.Random(i)) for i in range(3)]
    quick = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0)
    raw, normalised = measure_archs_against_reference(table, table_device(table), archs, quick, chunk=2)
    assert raw.shape == normalised.shape == (3,) and (raw > 0).all() and (normalised > 0).all()
    factors = normalised / raw  # one factor per chunk: the reference's level over its time beside the chunk
    assert factors[0] == pytest.approx(factors[1]) and factors[2] > 0
    with pytest.raises(TableError, match="records no reference block times"):
        measure_archs_against_reference(synthetic_table(table.space), table_device(table), archs[:1], quick)


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


def test_an_older_table_without_a_level_uses_the_median_reference(cpu_table):
    import numpy as np

    from hwnas.profiler.validate import reference_level

    table = LookupTable.load(cpu_table)
    del table.header["reference_level_ms"]
    assert reference_level(table) == np.median([r.extra["reference_ms"] for r in table.records.values()])


def test_networks_measured_in_a_burst_are_measured_again(cpu_table, monkeypatch):
    import random

    from hwnas.devices import Measurement, Protocol
    from hwnas.profiler import validate

    table = LookupTable.load(cpu_table)
    level = validate.reference_level(table)
    archs = [table.space.sample(random.Random(i)) for i in range(4)]
    # chunk 1 ran in a burst longer than its attempts; measured again at the end it is calm for arch 2 only
    script = iter([{"0": 1.0, "1": 1.01}, {"2": 1.5, "3": 1.5}, {"2": 1.02, "3": 1.7}])
    asked = []

    def fake(modules, device, protocol, *, reference=None, seed=0, steady_ms=None):
        refs = next(script)
        asked.append((sorted(refs), steady_ms))
        assert sorted(modules) == sorted([*refs, reference])
        return {key: Measurement(3 * r * level, 0.0, 3, 1, [3 * r * level] * 3, reference_ms=r * level)
                for key, r in refs.items()}

    monkeypatch.setattr(validate, "measure_modules", fake)
    timed, reference_ms = validate._measure_chunks(table, validate.table_device(table), archs, Protocol(), 2, 0,
                                                   None, with_reference=True)
    # judged against the fastest reference so far (none before the first chunk), not the table's level
    assert asked == [(["0", "1"], None), (["2", "3"], pytest.approx(level)), (["2", "3"], pytest.approx(level))]
    assert reference_ms / level == pytest.approx([1.0, 1.01, 1.02, 1.5])  # arch 3 keeps its first, faster attempt
    assert timed / reference_ms == pytest.approx([3.0] * 4)
