"""One output convention for every command that prints rows (README, "One output convention"): `--format csv`
is the rows only, `--format json` strict JSON with the same rows beside the summary, and the README's two
pandas lines turn them into equal DataFrames, and the JSON summary holds numbers as numbers, never as display
text such as "244.45M" or "1.23 ms" (`cli_helpers.same_rows`). Commands that need a measured table,
a ranking, a report or the demo are checked where their own tests made one (tests/profiler/test_profile_cli.py,
tests/judge/, tests/test_demo.py)."""

import json

import pytest

import hwnas.search  # noqa: F401  (imported before a test replaces open_evaluator, which it imports by name)
import hwnas.training
from hwnas.space import get_space
from hwnas.testing import SyntheticEvaluator, synthetic_table
from cli_helpers import run, same_rows

SPACE = get_space("spos", "cifar10", width=0.25)
TINY = ["--dataset", "synthetic", "--width", "0.25", "--resolution", "8", "--synthetic-size", "64",
        "--batch-size", "16", "--no-progress", "--epochs", "1", "--threads", "1"]
TIMINGS = ("wall_s", "images_per_s")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    cpu = synthetic_table(SPACE, device="cpu", path=root / "cpu.jsonl")
    synthetic_table(SPACE, device="phone", ms_per_mmac=0.05, path=root / "phone.jsonl")
    return root, cpu


def test_space_commands():
    rows, summary = same_rows("spaces")
    assert {r["space"] for r in rows} >= {"fbnet", "spos"} and summary == {"input": "imagenet"}
    assert all(isinstance(r["architectures"], float) for r in rows)
    rows, _ = same_rows("references")
    assert all(isinstance(r["macs"], int) for r in rows), "MACs as numbers, not 244.45M"
    assert {r["name"]: r["published_params"] for r in rows}["FBNet-A"] is None
    rows, summary = same_rows("arch", "spos", "SPOS", "--input", "cifar10")
    assert summary["total"] == {"macs": sum(r["macs"] for r in rows), "params": sum(r["params"] for r in rows)}
    assert rows[-1]["layer"] == "head", "no totals row"
    table = run("arch", "spos", "SPOS", "--input", "cifar10")
    assert table.stdout.strip().splitlines()[-1].split()[0] == "total", "the table keeps its totals row"


def test_devices_flatten_the_fingerprint():
    rows, _ = same_rows("devices")
    cpu = next(r for r in rows if r["device"] == "cpu")
    assert cpu["available"] is True and cpu["fingerprint.threads"] >= 1 and "fingerprint" not in cpu


def test_table_commands(tables, tmp_path):
    root, cpu = tables
    rows, summary = same_rows("table", "show", root / "cpu.jsonl")
    assert len(rows) == len(cpu.records) and summary["header"]["space"]["space"] == "spos"
    rows, summary = same_rows("table", "compare", root / "cpu.jsonl", root / "phone.jsonl", "--archs", 20)
    assert summary["common_blocks"] == len(rows) and -1 <= summary["arch_kendall_tau"] <= 1
    assert summary["ratio_min"] <= summary["median_ratio"] <= summary["ratio_max"]
    rows, _ = same_rows("table", "import", "hw-nas-bench", "--device", "pixel3", "--input", "cifar10",
                        "-o", tmp_path / "pixel3.jsonl")
    assert 0 < rows[0]["latency_ms_min"] <= rows[0]["latency_ms_median_random"] <= rows[0]["latency_ms_max_random"]

    import random

    rng = random.Random(0)
    archs = {str(SPACE.sample(rng)) for _ in range(30)}
    lines = [f"{a},{1.3 * cpu.predict(a).latency_ms + 0.01 * rng.random():.6f}" for a in sorted(archs)]
    (tmp_path / "measured.csv").write_text("arch,latency_ms\n" + "\n".join(lines) + "\n")
    rows, summary = same_rows("table", "adapt", root / "cpu.jsonl", tmp_path / "measured.csv",
                              "-o", tmp_path / "adapted.jsonl")
    assert len(rows) == 2 and summary["adapted"]["measurements"]["networks"] == summary["networks"] == len(archs)
    assert summary["blocks"] >= summary["groups"] > 0 and summary["held_out"]["folds"] >= 2
    assert 0 < summary["coefficients"]["min"] <= summary["coefficients"]["max"]
    assert summary["ridge"] == summary["adapted"]["model"]["ridge"]
    kit = ("validate", root / "cpu.jsonl", "--export", 2, "--no-litert", "-o")
    rows, summary = same_rows(*kit, tmp_path / "kit1", json_args=(*kit, tmp_path / "kit2"), vary=("kit", "next"))
    assert rows[0]["networks"] == 2 and rows[0]["table_ms_min"] <= rows[0]["table_ms_max"]


def test_search_plot_export(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(hwnas.training, "open_evaluator", lambda run_dir, *, space, **options: SyntheticEvaluator(space))
    root, cpu = tables
    search = ("search", "--space", "spos", "--table", root / "cpu.jsonl", "--table", root / "phone.jsonl",
              "--target-latency", f"{2 * cpu.minimum_latency():.6f}ms", "--supernet", "run/", "--population", 6,
              "--generations", 2, "--parents", 2, "-o", tmp_path / "s")
    rows, _ = same_rows(*search, vary=("evaluated_now",))  # the second replays the first
    assert len(rows) == 1 and isinstance(rows[0]["macs"], int)
    rows, summary = same_rows("plot", tmp_path / "s", "-o", tmp_path / "chart.png")
    assert rows and summary == {"chart": str(tmp_path / "chart.png"), "series": 1, "front_points": len(rows),
                                "reference_marks": summary["reference_marks"]}
    rows, _ = same_rows("export", tmp_path / "s", "--no-onnx", "-o", tmp_path / "e1",
                        json_args=("export", tmp_path / "s", "--no-onnx", "-o", tmp_path / "e2"), vary=("directory",))
    assert rows[0]["onnx_max_abs_diff"] is None


def test_training_commands(tmp_path):
    train = ("train", "--space", "spos", *TINY, "--eval-paths", "1", "--bn-batches", "2")
    rows, summary = same_rows(*train, "-o", tmp_path / "a", json_args=(*train, "-o", tmp_path / "b"), vary=TIMINGS)
    assert [r["epoch"] for r in rows] == [1] and summary["space"] == "spos"
    rows, summary = same_rows("eval", tmp_path / "a", "--arch", "SPOS", "--random", 1)
    assert len(rows) == 2 and summary["bn_batches"] == 2
    retrain = ("retrain", "--space", "spos", "--arch", "SPOS", *TINY)
    rows, summary = same_rows(*retrain, "-o", tmp_path / "c", json_args=(*retrain, "-o", tmp_path / "d"),
                              vary=TIMINGS)
    assert len(rows) == 1 and 0 <= summary["test_acc"] <= 100


def test_display_text_of_a_number_is_found():
    """What `same_rows` refuses in a summary: a number written for reading; names, paths and sentences pass."""
    from cli_helpers import displayed_numbers

    summary = {"macs": "244.45M", "latency": "1.23 ms", "range": "0.500..1.200", "share": "12 %", "count": "3",
               "space": "spos", "chart": "/tmp/3.png", "layers": ["1", "2"], "note": "3 of 5 ahead",
               "nested": [{"offset": "-0.4ms"}], "ok": 244450000}
    assert displayed_numbers(summary) == ["summary['macs']: '244.45M'", "summary['latency']: '1.23 ms'",
                                          "summary['range']: '0.500..1.200'", "summary['share']: '12 %'",
                                          "summary['count']: '3'", "summary['nested'][0]['offset']: '-0.4ms'"]


def test_json_is_strict_and_converts_explicitly():
    """Non-finite numbers are null, numpy values numbers, nested dicts columns; an object hwnas has no form for
    is an error, never its str()."""
    import numpy as np

    from hwnas.cli.output import render

    def refuse(constant):
        raise ValueError(constant)

    text = render([{"tau": np.float64("nan"), "n": np.int64(3), "info": {"threads": 2, "cores": [0, 1]}, "note": ""}],
                  "json", extra={"held_out": {"tau": float("inf")}}, footer=[{"n": 3}])
    data = json.loads(text, parse_constant=refuse)
    assert data == {"rows": [{"tau": None, "n": 3, "info.threads": 2, "info.cores": "[0, 1]", "note": None}],
                    "summary": {"held_out": {"tau": None}, "total": {"n": 3}}}
    assert render([{"n": 1, "info": {"threads": 2}}], "csv", footer=[{"n": 1}]) == "n,info.threads\n1,2"
    with pytest.raises(TypeError, match=r"row\['x'\] is a object"):
        render([{"x": object()}], "json")
