"""`hwnas search`, `hwnas plot` and `hwnas export` end to end through the CLI.

Made-up tables stand in for measured ones. Most tests replace the evaluator that `--supernet RUN_DIR`
gives by the synthetic one (`fake_supernet`), so they check the commands' plumbing in seconds; one search
and one export use a real supernet trained for an epoch on synthetic data.
"""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

import hwnas.search  # noqa: F401  (imported before a test replaces open_evaluator, which it imports by name)
import hwnas.training
from hwnas.cli import cli
from hwnas.testing import SyntheticEvaluator, synthetic_table, tiny_supernet_run
from hwnas.space import get_space
from cli_helpers import run, one_line_error

SPACE = get_space("spos", "cifar10", width=0.25)
FAST = ["--population", "6", "--generations", "3", "--parents", "2"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    cpu = synthetic_table(SPACE, device="cpu", path=root / "cpu.jsonl")
    synthetic_table(SPACE, device="phone", ms_per_mmac=0.05, path=root / "phone.jsonl")
    synthetic_table(get_space("fbnet", "cifar10", width=0.25), device="cpu", path=root / "fbnet.jsonl")
    return root, cpu.minimum_latency()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fake_supernet(monkeypatch):
    """`--supernet RUN_DIR` gives the synthetic evaluator (the run directory is only named)."""
    def open_evaluator(run_dir, *, space, **options):
        return SyntheticEvaluator(space)

    monkeypatch.setattr(hwnas.training, "open_evaluator", open_evaluator)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return tiny_supernet_run(tmp_path_factory.mktemp("run") / "supernet")


def search(tables, out, *extra, target=None):
    root, lowest = tables
    return run("search", "--space", "spos", "--table", root / "cpu.jsonl", "--table", root / "phone.jsonl",
               "--target-latency", target or f"{2 * lowest:.6f}ms", "--supernet", "run/", "-o", out, *extra)


def test_evolution_search_writes_the_search_directory(tables, tmp_path, fake_supernet):
    result = search(tables, tmp_path / "s", *FAST)
    assert result.exit_code == 0, result.output
    assert "best_accuracy" in result.stdout and "latency_ms[phone]" in result.stdout
    assert "gen 2" in result.stderr and "feasible" in result.stderr  # the progress bar
    frame = pd.read_csv(tmp_path / "s" / "candidates.csv")
    assert len(frame) == 18 and set(frame["generation"]) == {0, 1, 2}
    assert {"latency_ms[cpu]", "latency_ms[phone]"} <= set(frame.columns)
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["settings"]["population"] == 6
    assert json.loads((tmp_path / "s" / "best.json").read_text())["arch"] == frame["arch"][0]
    again = search(tables, tmp_path / "s", *FAST)  # finished: replayed from the saved state
    assert again.exit_code == 0 and pd.read_csv(tmp_path / "s" / "candidates.csv").equals(frame)


def test_random_sweep(tables, tmp_path, fake_supernet):
    _, lowest = tables
    targets = f"{1.2 * lowest:.4f}ms,{1.4 * lowest:.4f}"
    result = search(tables, tmp_path / "sweep", "--strategy", "random", "--samples", "8", target=targets)
    assert result.exit_code == 0, result.output
    sweep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert len(sweep["searches"]) == 2
    for name in sweep["searches"]:
        assert len(pd.read_csv(tmp_path / "sweep" / name / "candidates.csv")) == 8


@pytest.mark.parametrize("args,message", [
    (("--target-latency", "fast"), "a target latency must be a positive duration such as 3ms, 2.5ms or 500us, "
                                   "but got 'fast'"),
    (("--target-latency", "0ms"), "a target latency must be a finite duration > 0, but got '0ms'"),
    (("--target-latency", "1e309ms"), "a target latency must be a finite duration > 0, but got '1e309ms'"),
    (("--max-macs", "inf"), "a MACs bound must be a positive count such as 300M"),
    (("--target-latency", "-2ms"), "a target latency must be a positive duration"),
    (("--target-latency", "0.001ms"), "the target latency must be reachable, but 0.001 ms is below the smallest "
                                      "latency of space 'spos' on cpu ("),
    (("--strategy", "annealing"), "Invalid value for '--strategy': 'annealing' is not one of 'differentiable', "
                                  "'evolution', 'random'"),
    (("--strategy", "random", "--population", "5"), "strategy 'random' takes settings samples, patience, chunk, "
                                                    "but got population"),
    (("--max-macs", "lots"), "a MACs bound must be a positive count such as 300M"),
    (("--no-supernet",), "strategy 'evolution' ranks architectures by their accuracy with supernet weights and "
                         "needs --supernet RUN_DIR"),
    (("--other-space",), "table "),
    (("--width", "0.5"), "must be built for the search space, but its spos space differs: width 0.25 != 0.5"),
])
def test_bad_search_input_is_one_line_exit_2(tables, tmp_path, args, message, fake_supernet):
    root, lowest = tables
    base = {"--space": "spos", "--target-latency": "10ms", "--supernet": "run/"}
    flags = list(args)
    extra: list[str] = []
    table = root / "cpu.jsonl"
    if "--no-supernet" in flags:
        base.pop("--supernet")
        flags.remove("--no-supernet")
    if "--other-space" in flags:
        flags.remove("--other-space")
        base["--space"] = "spos"
        table = root / "fbnet.jsonl"
        message = "was built for space 'fbnet', but space 'spos' was asked for"
    while flags:
        key, value = flags.pop(0), flags.pop(0)
        if key in base:
            base[key] = value
        else:
            extra += [key, value]
    cli_args = ["search", "--table", table, *sum(([k, v] for k, v in base.items()), []), *extra, "-o", tmp_path / "s"]
    one_line_error(run(*cli_args), message)
    assert not (tmp_path / "s" / "candidates.csv").exists()


def test_plot_and_export(tables, tmp_path, fake_supernet):
    assert search(tables, tmp_path / "evo", *FAST).exit_code == 0
    assert search(tables, tmp_path / "rnd", "--strategy", "random", "--samples", "10").exit_code == 0
    result = run("plot", tmp_path / "evo", tmp_path / "rnd", "--table", "all", "-o", tmp_path / "pareto.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "4 series" in result.output and "evo (phone)" in result.output
    # size, resolution, title, log axis; and the caller's matplotlib backend is left as it was
    import struct

    import matplotlib

    before = matplotlib.get_backend()
    result = run("plot", tmp_path / "evo", "--size", "6x4", "--dpi", "80", "--title", "mine", "--log-x",
                 "-o", tmp_path / "small.png")
    assert result.exit_code == 0, result.output
    assert struct.unpack(">II", (tmp_path / "small.png").read_bytes()[16:24]) == (480, 320)
    assert matplotlib.get_backend() == before
    for size in ("6", "0x4", "nanx4", "6x4x2"):
        one_line_error(run("plot", tmp_path / "evo", "--size", size, "-o", tmp_path / "bad.png"), "--size must be")
    assert not (tmp_path / "bad.png").exists()
    result = run("export", tmp_path / "evo", "--no-onnx", "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["arch"] == json.loads((tmp_path / "evo" / "best.json").read_text())["arch"]
    assert meta["search"]["accuracy"] > 0 and not (tmp_path / "model" / "model.onnx").exists()


def test_export_of_a_reference(tmp_path):
    result = run("export", "SPOS", "--space", "spos", "--input", "cifar10", "--width", "0.25", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime matches PyTorch" in result.output and (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("args,message", [
    (("plot", "{empty}", "-o", "{tmp}/p.png"), "must hold config.json and candidates.csv, but"),
    (("plot", "{tmp}/missing", "-o", "{tmp}/p.png"), "a search directory must exist, but"),
    (("plot", "{empty}", "-o", "{tmp}/p.gif"), "a chart file must end in .png, .svg, .pdf, but got 'p.gif'"),
    (("export", "k3_e6-skip", "-o", "{tmp}/x"), "exporting an architecture needs --space"),
    (("export", "{empty}", "-o", "{tmp}/x"), "needs its best.json, but"),
    (("export", "SPOS", "--space", "fbnet", "-o", "{tmp}/x"), "reference 'SPOS' belongs to space 'spos'"),
])
def test_bad_plot_and_export_input(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path, empty=tmp_path / "empty") for a in args]
    one_line_error(run(*filled), message)


def test_search_and_export_with_a_trained_supernet(tables, run_dir, tmp_path):
    root, lowest = tables
    result = run("search", "--space", "spos", "--table", root / "cpu.jsonl", "--target-latency", f"{2 * lowest:.6f}",
                 "--supernet", run_dir, "--dataset", "synthetic", "--val-batches", "1", "--bn-batches", "1",
                 "--eval-device", "cpu", "--threads", "1", "--no-references", "--population", "4", "--generations", "2",
                 "--parents", "2", "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "s" / "candidates.csv")
    assert len(frame) == 8 and frame["accuracy"].between(0, 100).all()
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["evaluator"]["run_dir"] == str(run_dir.resolve()) and config["evaluator"]["bn_batches"] == 1
    result = run("export", tmp_path / "s", "--supernet", run_dir, "--no-onnx", "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "model" / "model.json").read_text())["weights"] == "supernet"
    # an export never goes into a training run or the search it exports; a previous export is replaced
    before = {p: sorted(x.name for x in p.iterdir()) for p in (run_dir, tmp_path / "s")}
    one_line_error(run("export", tmp_path / "s", "--supernet", run_dir, "--no-onnx", "-o", run_dir),
                   f"the export directory must be a folder of its own, but {run_dir} holds a training run")
    one_line_error(run("export", tmp_path / "s", "--supernet", run_dir, "--no-onnx", "-o", tmp_path / "s"),
                   f"{tmp_path / 's'} holds a search")
    one_line_error(run("export", tmp_path / "s" / "best.json", "--no-onnx", "-o", tmp_path / "s"), "holds a search")
    assert before == {p: sorted(x.name for x in p.iterdir()) for p in before}
    again = run("export", tmp_path / "s", "--supernet", run_dir, "--no-onnx", "-o", tmp_path / "model")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("command", ["search", "export"])
def test_supernet_of_another_space_is_one_line_exit_2(tables, run_dir, tmp_path, command):
    root, _ = tables
    if command == "search":
        result = run("search", "--space", "fbnet", "--table", root / "fbnet.jsonl", "--target-latency", "100ms",
                     "--supernet", run_dir, "-o", tmp_path / "s")
        one_line_error(result, "the supernet must be trained on the search space, but the supernet in ")
    else:
        result = run("export", "FBNet-A", "--space", "fbnet", "--input", "cifar10", "--width", "0.25", "--supernet",
                     run_dir, "-o", tmp_path / "x")
        one_line_error(result, "the supernet must be of the architecture's space, but it was built for spos/cifar10")


def test_differentiable_search_from_the_cli_keeps_its_training_run(tables, run_dir, tmp_path):
    root, lowest = tables
    args = ["search", "--strategy", "differentiable", "--space", "spos", "--table", root / "cpu.jsonl",
            "--target-latency", f"{2 * lowest:.6f}", "--supernet", run_dir, "--epochs", "1", "--warmup-epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "8", "--eval-device", "cpu", "--no-references", "--format", "json",
            "-o", tmp_path / "d"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["candidates"] == 1 and 0 <= row["best_accuracy"] <= 100
    log = pd.read_csv(tmp_path / "d" / "supernet" / "log.csv")
    assert list(log["epoch"]) == [1, 2] and (log["expected_latency_ms"] > 0).all()
    config = json.loads((tmp_path / "d" / "supernet" / "config.json").read_text())["config"]
    assert config["strategy"] == "differentiable" and config["init_from"] == str(run_dir.resolve())
    again = CliRunner().invoke(cli, [str(a) for a in args])
    assert again.exit_code == 0 and json.loads(again.stdout)["rows"][0]["best_accuracy"] == row["best_accuracy"]
