"""`hwnas demo` end to end: on tiny Fashion-MNIST files written by the test, and on the subset embedded in
hwnas with the Debian folder and the cache hidden, as on a fresh machine with no network."""

import functools
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hwnas import demo
import hwnas.cli.demo  # noqa: F401  (its option defaults read DemoSettings before a test replaces it)
from hwnas.cli import cli
from hwnas.data import fashion_mnist
from hwnas.errors import ConfigError
from hwnas.timing.protocol import Protocol
from hwnas.tables import LookupTable
from cli_helpers import same_rows

TINY = ["--space", "spos", "--width", "0.25", "--resolution", "8", "--device", "cpu", "--epochs", "1",
        "--steps-per-epoch", "3", "--population", "4", "--generations", "2", "--predictor-samples", "20",
        "--rescore", "2", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def quick(monkeypatch):
    """The demo's own protocol takes about a minute on a real space; the pipeline is what is tested here."""
    protocol = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)
    monkeypatch.setattr(demo, "DemoSettings", functools.partial(demo.DemoSettings, protocol=protocol))


def check_outputs(out, result, dataset):
    assert result.exit_code == 0, result.output
    table = LookupTable.load(out / "spos-fashion-mnist-cpu.jsonl")
    assert table.space.profile.resolution == 8 and table.space.profile.channels == 1
    config = json.loads((out / "supernet" / "config.json").read_text())["config"]
    assert config["resolution"] == 8 and config["dataset"] == dataset and config["steps_per_epoch"] == 3
    sweep = sorted(p for p in (out / "search").iterdir() if p.is_dir())
    assert len(sweep) == 3
    best = []
    for search in sweep:
        candidates = pd.read_csv(search / "candidates.csv")
        stored = json.loads((search / "best.json").read_text())
        assert len(candidates) >= 8 and candidates["feasible"].all()
        target = json.loads((search / "config.json").read_text())["target_latency_ms"]
        assert stored["latency_ms"]["cpu"] <= target
        best.append((target, stored["rescored_accuracy"]))
        assert (candidates["estimator"] == "predictor, supernet").sum() >= 2, "each target's best re-scored"
    assert [acc for _, acc in sorted(best)] == sorted(acc for _, acc in best), "never worse as the target loosens"
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "predictor.json").read_text())["fitted_on"]["samples"] == 20
    assert f"data: {dataset}" in result.output and "hwnas plot " in result.output
    assert "measured_ms" in result.output and "total" in result.output


def test_demo_runs_the_whole_pipeline(tmp_path, write_fashion_mnist, quick):
    data = write_fashion_mnist(tmp_path / "fashion", 160, 20)
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--data-root", str(data), *TINY])
    check_outputs(out, result, "fashion-mnist")
    assert "hwnas train --space spos --dataset fashion-mnist --width 0.25 --resolution 8" in result.output
    table = LookupTable.load(out / "spos-fashion-mnist-cpu.jsonl")
    assert table.header["protocol"] == Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0,
                                                calm_wait_s=0).to_dict()


def test_demo_on_a_fresh_machine_uses_the_embedded_subset(tmp_path, monkeypatch, quick):
    monkeypatch.setenv("HWNAS_DATA", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), *TINY])
    check_outputs(out, result, "fashion-mnist-subset")
    assert "using the embedded subset of 10 000 training and 2 000 test images" in result.output
    rows, summary = same_rows("demo", "-o", out, *TINY, vary=("measured_ms",))  # each run times the bests again
    assert summary["dataset"] == "fashion-mnist-subset" and len(rows) == 3
    assert all(0 < row["se"] < 5 for row in rows), "about 1 000 validation images"


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "Invalid value for '--epochs': must be a finite integer >= 1, but got '0'"),
    (["--population", "0"], "Invalid value for '--population': must be a finite integer >= 1, but got '0'"),
    (["--device", "tpu"], "Invalid value for '--device': 'tpu' is not one of 'cpu', 'cuda'"),
    (["--threads", "0"], "threads must be 'auto' or an integer >= 1, but got '0'"),
    (["--data-root", "{tmp}/nowhere"], "dataset 'fashion-mnist' not found under"),
])
def test_demo_refuses_bad_settings_before_any_work(tmp_path, args, message):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), *[a.format(tmp=tmp_path) for a in args]])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert not (out / "supernet").exists() and not list(out.glob("*.jsonl"))


def test_demo_refuses_an_output_that_is_a_file(tmp_path):
    (tmp_path / "demo").write_text("not a directory")
    result = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 2 and result.output.strip().endswith("demo' is a file.")
    with pytest.raises(ConfigError, match="the demo's output must be a directory, but .* is a file"):
        demo.run_demo(tmp_path / "demo", demo.DemoSettings())
    assert (tmp_path / "demo").read_text() == "not a directory"


def test_demo_refuses_a_training_run_or_an_unwritable_output_before_any_work(tmp_path, monkeypatch):
    from cli_helpers import one_line_error

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("checkpoint.pt", "log.csv"):
        (run_dir / name).write_text("")
    one_line_error(CliRunner().invoke(cli, ["demo", "-o", str(run_dir), *TINY]),
                   f"the demo's output must be a folder of its own, but {run_dir} holds a training run")
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "log.csv"]
    real = demo.tempfile.mkdtemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and tmp_path in (dir, *dir.parents):
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(demo.tempfile, "mkdtemp", read_only)
    one_line_error(CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "new" / "demo"), *TINY]),
                   "the demo's output directory must be writable, but")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_summary_says_when_targets_share_their_best():
    from hwnas.demo import shared_best_notes

    notes = shared_best_notes([("target_0.688ms", "a"), ("target_0.821ms", "b"), ("target_0.964ms", "b"),
                               ("target_1.1ms", None)])
    assert notes == ["target_0.964ms: returned the same architecture as target_0.821ms: no slower candidate scored "
                     "higher, so by this supernet's estimate the extra latency budget buys no accuracy"]
    assert shared_best_notes([("t1", "a"), ("t2", "b")]) == []
