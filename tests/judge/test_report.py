"""`hwnas report`: the searches' architectures and the space's references retrained with one recipe."""

import json
from pathlib import Path

import pandas as pd
import pytest

from hwnas.space import REFERENCES
from hwnas.testing import synthetic_table
from cli_helpers import run, one_line_error as _one_line_error, one_line_error, same_rows

RECIPE = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--no-progress", "--threads", "1",
          "--random", "0"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """A tiny spos supernet, its table, and a sweep over two targets."""
    from hwnas.testing import tiny_supernet_run
    from hwnas.training.trained import load_supernet

    work = tmp_path_factory.mktemp("report")
    supernet = tiny_supernet_run(work / "supernet", width=0.25, synthetic_size=64, batch_size=8)
    net, _ = load_supernet(supernet)
    table = synthetic_table(net.space, path=work / "spos.jsonl")
    sweep = work / "sweep"
    fastest = table.minimum_latency()
    done = run("search", "--space", "spos", "--table", table.path, "--target-latency",
               f"{1.3 * fastest:.4f}ms,1000ms", "--supernet", supernet, "--population", 4, "--generations", 2,
               "-o", sweep)
    assert done.exit_code == 0, done.output
    return work, supernet, table, sweep


def test_report_retrains_found_architectures_beside_the_references(searches, tmp_path):
    work, _, table, sweep = searches
    out = tmp_path / "report"
    result = run("report", sweep, *RECIPE, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    spos_refs = [name for name in REFERENCES if REFERENCES.get(name).space == "spos"]
    assert [r["kind"] for r in rows] == ["found"] * (len(rows) - len(spos_refs)) + ["reference"] * len(spos_refs)
    assert [r["name"] for r in rows if r["kind"] == "reference"] == spos_refs
    frame = pd.read_csv(out / "report.csv")
    assert list(frame.columns) == ["kind", "name", "arch", "test_acc", "val_acc", "latency_ms[synthetic]", "macs",
                                   "params", "run"]
    assert frame["test_acc"].between(0, 100).all() and (frame["latency_ms[synthetic]"] > 0).all()
    bests = {json.loads((sweep / d / "best.json").read_text())["arch"] for d in json.loads((sweep / "sweep.json").read_text())["searches"]}
    assert set(frame[frame["kind"] == "found"]["arch"]) == bests, "one training per distinct returned architecture"
    assert frame[frame["kind"] == "found"]["latency_ms[synthetic]"].tolist() == pytest.approx(
        [table.predict(a).latency_ms for a in frame[frame["kind"] == "found"]["arch"]])
    assert (out / "report.png").stat().st_size > 10_000
    saved = json.loads((out / "report.json").read_text())
    assert saved["recipe"]["epochs"] == 1 and saved["data"]["dataset"] == "synthetic" and len(saved["rows"]) == len(frame)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")}
    again, summary = same_rows("report", sweep, *RECIPE, "-o", out)
    assert again == rows and summary["report"] == str(out)  # replayed, in both formats
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoint.pt")} == stamps, "nothing retrained"
    _one_line_error(run("report", sweep, *RECIPE, "--no-references", "-o", out),
                    "holds the work of another configuration")
    assert (out / "comparisons.csv").read_text().startswith("found,against,"), "an empty table: nothing compared"


def test_report_compares_at_equal_latency(searches, tmp_path):
    """--random K trains K random architectures of each found one's table latency; a search at a reference's
    latency (--target-latency SPOS) is compared with that reference; with two seeds every difference has an
    interval from the pooled sd of one training."""
    work, supernet, table, sweep = searches
    at_ref = tmp_path / "at-spos"
    done = run("search", "--space", "spos", "--table", table.path, "--target-latency", "SPOS", "--supernet", supernet,
               "--strategy", "random", "--samples", 6, "-o", at_ref)
    assert done.exit_code == 0, done.output
    from hwnas.space import find_reference
    from hwnas.search.runner import reference_latency
    from hwnas.training.trained import load_supernet
    space = load_supernet(supernet)[0].space
    spos = find_reference("SPOS")
    spos_ms = reference_latency(table, space, space.validate(spos.arch))
    assert json.loads((at_ref / "config.json").read_text())["target_latency_ms"] == pytest.approx(spos_ms)
    recipe = [a for a in RECIPE if a not in ("--random", "0")]
    out = tmp_path / "report"
    result = run("report", at_ref, *recipe, "--random", 2, "--band", 0.2, "--seeds", 2, "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    frame = pd.read_csv(out / "report.csv")
    found = frame[frame["kind"] == "found"].iloc[0]
    near = frame[frame["kind"] == "random"]
    assert len(near) == 2 and (near["near"] == found["name"]).all()
    assert near["latency_ms[synthetic]"].between(0.8 * found["latency_ms[synthetic]"],
                                                 1.2 * found["latency_ms[synthetic]"]).all()
    compared = pd.read_csv(out / "comparisons.csv")
    assert compared["against"].tolist()[0] == "best of 2 random at equal latency"
    assert "SPOS (searched at its latency)" in compared["against"].tolist()
    first = compared.iloc[0]
    best_random = near["test_acc"].max()
    assert first["difference"] == pytest.approx(found["test_acc"] - best_random)
    assert first["low"] <= first["difference"] <= first["high"] and first["df"] == len(frame)
    assert data["summary"]["comparisons"][0]["verdict"].split(" ")[0] in ("beats", "loses", "not")
    assert (out / "report.png").stat().st_size > 10_000
    one_seed = run("report", at_ref, *recipe, "--random", 2, "--band", 0.2, "--reference", "SPOS", "-o", tmp_path / "one",
                   "--format", "json")
    assert one_seed.exit_code == 0, one_seed.output
    assert json.loads(one_seed.output)["summary"]["comparisons"][0]["verdict"].startswith("no interval: one training each")
    assert pd.read_csv(tmp_path / "one" / "report.csv")["name"].tolist()[-1:] == ["SPOS"]
    one_line_error(run("report", at_ref, *recipe, "--reference", "FBNet-A", "-o", tmp_path / "x"),
                   "--reference must name a reference of the searched space (spos: ")
    one_line_error(run("report", at_ref, *recipe, "--reference", "SPOS", "--no-references", "-o", tmp_path / "x"),
                   "--reference chooses among the references, but --no-references trains none")
    assert not (tmp_path / "x").exists()


def test_report_without_references(searches, tmp_path):
    _, _, _, sweep = searches
    result = run("report", sweep / "target_1000ms", *RECIPE, "--no-references", "-o", tmp_path / "r", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "r" / "report.csv")
    assert frame["kind"].tolist() == ["found"] and frame["name"].tolist() == ["sweep/target_1000ms"]


def test_report_with_two_seeds_reuses_a_report_of_one(searches, tmp_path):
    """--seeds 2 reports the mean of two trainings and their sd; --reuse takes the seed-0 training from a
    report of one seed."""
    _, _, _, sweep = searches
    one = run("report", sweep / "target_1000ms", *RECIPE, "--no-references", "-o", tmp_path / "one")
    two = run("report", sweep / "target_1000ms", *RECIPE, "--no-references", "--seeds", 2, "--reuse", tmp_path / "one",
              "-o", tmp_path / "two")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    first, frame = pd.read_csv(tmp_path / "one" / "report.csv"), pd.read_csv(tmp_path / "two" / "report.csv")
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "two" / "runs").glob("*/result.json"))]
    assert [r["recipe"]["seed"] for r in results] == [0, 1] and "trained_in" in results[0]
    accs = [r["test_acc"] for r in results]
    assert accs[0] == pytest.approx(first["test_acc"][0])
    assert frame["test_acc"][0] == pytest.approx(sum(accs) / 2)
    assert frame["test_acc_sd"][0] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)


def test_bad_searches_are_one_line(searches, tmp_path):
    work, supernet, table, sweep = searches
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(run("report", empty, *RECIPE, "-o", tmp_path / "r"),
                    "a search directory must hold config.json and candidates.csv")
    _one_line_error(run("report", tmp_path / "missing", *RECIPE, "-o", tmp_path / "r"),
                    "a search directory must exist")
    unreachable = tmp_path / "unreachable"
    assert run("search", "--space", "spos", "--table", table.path, "--target-latency", "0.001ms", "--supernet",
               supernet, "--strategy", "random", "--samples", 2, "--patience", 5, "-o", unreachable).exit_code in (0, 2)
    if (unreachable / "candidates.csv").exists():
        _one_line_error(run("report", unreachable, *RECIPE, "-o", tmp_path / "r"), "returned none")
    other = tmp_path / "other"
    other_search = Path(sweep / "target_1000ms")
    other.mkdir()
    for name in ("config.json", "candidates.csv", "best.json"):
        (other / name).write_bytes((other_search / name).read_bytes())
    config = json.loads((other / "config.json").read_text())
    config["evaluator"]["run_dir"] = str(tmp_path / "gone")
    (other / "config.json").write_text(json.dumps(config))
    _one_line_error(run("report", other, *RECIPE, "-o", tmp_path / "r"), "names no supernet run that still exists")
    assert not (tmp_path / "r").exists(), "nothing written for bad input"


def test_measured_latency_of_the_networks_of_the_tables_space(searches, tmp_path, monkeypatch):
    """--measured times each network of the table's space on the table's device (the timing itself is
    `hwnas validate`'s, tested there; here a stand-in returns 1 ms per network)."""
    import numpy as np

    import hwnas.profiler.session as session
    import hwnas.profiler.validate as validate

    _, _, _, sweep = searches
    timed = []
    monkeypatch.setattr(session, "table_device", lambda table: "device")
    monkeypatch.setattr(session, "check_same_device", lambda table, device: None)
    monkeypatch.setattr(validate, "measure_archs", lambda table, device, archs, protocol, **kw: timed.extend(archs) or np.ones(len(archs)))
    result = run("report", sweep / "target_1000ms", *RECIPE, "--measured", "-o", tmp_path / "r")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "r" / "report.csv")
    assert frame["measured_ms[synthetic]"].tolist() == [1.0] * len(frame) and len(timed) == len(frame)
