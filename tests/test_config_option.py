"""``--config FILE`` on every command: TOML or JSON option values, a run's or a search's config.json as one (to
every command: other commands' options ignored), the command line over the file, and one line with exit 2 for a
bad file or a key that is no command's option."""

import json

import click
import pytest

import hwnas.search  # noqa: F401  (imported before a test replaces open_evaluator, which it imports by name)
import hwnas.training
from hwnas.cli import COMMANDS, cli
from hwnas.cli.config import run_record_options
from hwnas.space import get_space
from hwnas.testing import SyntheticEvaluator, synthetic_table
from cli_helpers import one_line_error, run


def all_commands():
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                inner = command.get_command(context, sub)
                if isinstance(inner, click.Group):
                    yield from ((f"{name} {sub} {s}", inner.get_command(context, s))
                                for s in inner.list_commands(context))
                else:
                    yield f"{name} {sub}", inner
        else:
            yield name, command


def test_every_command_has_the_config_option():
    commands = dict(all_commands())
    assert {"train", "search", "table adapt", "predictor fit"} <= set(commands)
    for name, command in commands.items():
        assert [p for p in command.params if p.name == "config" and p.is_eager], name
    assert "--config FILE" in run("references", "--help").output


def test_toml_values_by_their_names_and_the_command_line_over_them(tmp_path):
    config = tmp_path / "arch.toml"
    config.write_text('space = "spos"\narch = "SPOS"\ninput = "cifar10"\nwidth = 0.5\nformat = "json"\n')
    result = run("arch", "--config", config)
    assert result.exit_code == 0, result.output
    assert result.output == run("arch", "spos", "SPOS", "--input", "cifar10", "--width", "0.5", "--format",
                                "json").output
    result = run("arch", "--config", config, "--width", "0.25", "--input", "imagenet")
    assert result.exit_code == 0, result.output
    assert result.output == run("arch", "spos", "SPOS", "--width", "0.25", "--format", "json").output


def test_json_values_with_dashes_or_underscores(tmp_path):
    config = tmp_path / "values"  # no suffix: JSON, since it starts with {
    config.write_text('{"space": "spos", "format": "csv"}')
    result = run("references", "--config", config)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("name,") and "fbnet" not in result.output.lower()
    config.write_text('{"space": "spos", "format": "csv", "Format": null}')
    one_line_error(run("references", "--config", config), "'Format' is not an option of hwnas references; did you "
                                                          "mean --format?")


def test_other_commands_options_are_ignored_and_a_key_of_no_command_is_an_error(tmp_path):
    """One file for several commands: each takes its own options and leaves the others' alone."""
    config = tmp_path / "project.toml"
    config.write_text('space = "spos"\nformat = "csv"\nepochs = 3\npopulation = 10\ntarget-latency = "1ms"\n'
                      'strategy = "sandwich"\n')
    result = run("references", "--config", config)
    assert result.exit_code == 0, result.output
    assert result.output == run("references", "--space", "spos", "--format", "csv").output
    config.write_text('space = "spos"\nepochs = 3\npopulaton = 10\n')
    one_line_error(run("references", "--config", config), "'populaton' is not an option of hwnas references; see "
                                                          "hwnas references --help")
    config.write_text('space = "spos"\nepochs = 3\nformats = "csv"\n')
    one_line_error(run("references", "--config", config), "'formats' is not an option of hwnas references; did you "
                                                          "mean --format?")
    config.write_text('space = "spos"\nformat = 3\n')  # this command's option: still checked
    one_line_error(run("references", "--config", config), "--config {}: format must be a string".format(config))


TINY = ["--dataset", "synthetic", "--width", "0.25", "--resolution", "8", "--synthetic-size", "64",
        "--batch-size", "16", "--no-progress", "--epochs", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    """A real run directory, as `hwnas train` writes it (seconds)."""
    path = tmp_path_factory.mktemp("run") / "supernet"
    result = run("train", "--space", "spos", *TINY, "--eval-paths", "1", "--bn-batches", "2", "-o", path)
    assert result.exit_code == 0, result.output
    return path


def test_a_run_config_json_is_the_run_s_options(supernet_run, tmp_path):
    record = json.loads((supernet_run / "config.json").read_text())
    # the same options as the run: its own run directory resumes (every setting equal), nothing to train
    result = run("train", "--config", supernet_run / "config.json", "-o", supernet_run, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "already holds all" in result.output
    # the directory stands for its config.json; the command line overrides a setting
    result = run("train", "--config", supernet_run, "-o", supernet_run, "--epochs", str(record["config"]["epochs"] + 5),
                 "--lr", "0.3")
    one_line_error(result, "holds a run with other settings")
    # the strategy's settings become their own options; the records are ignored; null is the default
    sandwich = {**record, "config": {**record["config"], "strategy": "sandwich",
                                     "strategy_settings": {"random_paths": 1, "distill": False}}}
    options = run_record_options(sandwich)
    assert options["random_paths"] == 1 and options["distill"] is False
    assert options["space"] == record["config"]["space"] and "hwnas_version" not in options
    assert "arch" not in options and "split_seed" not in options
    retrained = {**record, "architecture": "x", "config": {**record["config"], "strategy": None, "arch": "SPOS"}}
    assert run_record_options(retrained)["arch"] == "SPOS" and "strategy" not in run_record_options(retrained)
    (tmp_path / "config.json").write_text(json.dumps(retrained))
    one_line_error(run("train", "--config", tmp_path, "-o", tmp_path / "r"), "'arch' is not an option of hwnas train")
    assert not (tmp_path / "r").exists()


def test_a_run_config_json_gives_other_commands_its_space_and_data(supernet_run, tmp_path, monkeypatch):
    """Given to a command that makes no such run, a run's config.json gives what the run was made on (space, data)
    and nothing of how (its strategy, epochs, lr, seed: a search's or a ranking's own options of the same names)."""
    record = json.loads((supernet_run / "config.json").read_text())
    assert run_record_options(record, "rank") == {"space": "spos", "width": 0.25, "input": "cifar10", "resolution": 8,
                                                  "dataset": "synthetic", "download": False}
    monkeypatch.setattr(hwnas.training, "open_evaluator",
                        lambda run_dir, *, space, **options: SyntheticEvaluator(space))
    table = synthetic_table(SPACE, device="cpu", path=tmp_path / "cpu.jsonl")
    result = run("search", "--config", supernet_run / "config.json", "--table", tmp_path / "cpu.jsonl",
                 "--target-latency", f"{2 * table.minimum_latency():.6f}ms", "--supernet", supernet_run,
                 "--population", "4", "--generations", "1", "--parents", "2", "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    searched = json.loads((tmp_path / "s" / "config.json").read_text())
    assert searched["strategy"] == "evolution" and searched["seed"] == 0  # not the run's "uniform"
    assert (searched["space"]["space"], searched["space"]["width"], searched["space"]["input"]["name"]) == \
        ("spos", 0.25, "cifar10") and "epochs" not in searched["settings"]
    monkeypatch.undo()  # eval opens the real run
    # nothing of the run is an option of rank but its data root (null): RUN_DIR is still to give
    one_line_error(run("rank", "--config", supernet_run / "config.json"), "Missing argument 'RUN_DIR'")
    result = run("eval", "--config", supernet_run, supernet_run, "--random", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    # retrain takes the supernet's recipe and leaves its supernet settings (strategy, eval_paths, ...) alone
    result = run("retrain", "--config", supernet_run, "--arch", "SPOS", "--threads", "1", "-o", tmp_path / "r")
    assert result.exit_code == 0, result.output
    retrained = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert retrained["strategy"] is None and retrained["arch"]
    assert {k: retrained[k] for k in ("epochs", "lr", "batch_size", "resolution", "synthetic_size")} == \
        {k: record["config"][k] for k in ("epochs", "lr", "batch_size", "resolution", "synthetic_size")}
    # a setting no command has is refused by the commands that repeat the run, left out by the others
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "config.json").write_text(json.dumps({**record, "config": {**record["config"],
                                                                                     "split_seed": 7}}))
    one_line_error(run("train", "--config", tmp_path / "split", "-o", tmp_path / "t"),
                   "'split_seed' is not an option of hwnas train")
    assert "split_seed" not in run_record_options(json.loads((tmp_path / "split" / "config.json").read_text()),
                                                  "search")


SPACE = get_space("spos", "cifar10", width=0.25)


def test_a_search_config_json_is_the_search_s_options(tmp_path, monkeypatch):
    monkeypatch.setattr(hwnas.training, "open_evaluator",
                        lambda run_dir, *, space, **options: SyntheticEvaluator(space))
    table = synthetic_table(SPACE, device="cpu", path=tmp_path / "cpu.jsonl")
    target = f"{2 * table.minimum_latency():.6f}ms"
    args = ["--space", "spos", "--table", tmp_path / "cpu.jsonl", "--target-latency", target, "--supernet", "run/",
            "--population", "6", "--generations", "2", "--parents", "2", "--seed", "3", "--max-params", "3M"]
    result = run("search", *args, "-o", tmp_path / "s")
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "s" / "config.json").read_text())
    options = run_record_options(first)
    assert options["population"] == 6 and options["seed"] == 3 and options["table"] == [str(tmp_path / "cpu.jsonl")]
    assert options["space"] == "spos" and options["max_params"] == "3000000"
    # the stand-in evaluator records no supernet: name it (a supernet evaluator's run_dir is --supernet)
    result = run("search", "--config", tmp_path / "s" / "config.json", "-o", tmp_path / "again", "--generations", "3",
                 "--supernet", "run/")
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again["settings"] == {**first["settings"], "generations": 3}
    assert {k: again[k] for k in ("seed", "space", "target_latency_ms", "max_params", "strategy")} == \
        {k: first[k] for k in ("seed", "space", "target_latency_ms", "max_params", "strategy")}
    supernet = {"kind": "supernet", "run_dir": "/runs/s", "dataset": "cifar10", "bn_batches": 4, "batch_size": 64,
                "epochs_trained": 3, "val_samples": 500}
    options = run_record_options({**first, "evaluator": supernet})
    assert (options["supernet"], options["dataset"], options["bn_batches"], options["batch_size"]) == \
        ("/runs/s", "cifar10", 4, 64) and "val_samples" not in options
    predicted = run_record_options({**first, "evaluator": {"kind": "predictor", "path": "p.json"},
                                    "rescore": {"count": 5, "evaluator": supernet}})
    assert (predicted["predictor"], predicted["rescore"], predicted["supernet"]) == ("p.json", 5, "/runs/s")


@pytest.mark.parametrize("name, content, message", [
    ("missing.toml", None, "a --config file must exist, but {p} does not"),
    ("c.toml", "epochs = [\n", "a --config file must be TOML or JSON, but {p} is neither"),
    ("c.json", '{"epochs": 3,}', "a --config file must be JSON, but {p} line 1 is not JSON"),
    ("c.json", "[1, 2]", "a --config file must hold an object of option values, but {p} holds [1, 2]"),
    ("c.toml", 'epochs = "ten"', "--config {p}: epochs: must be a finite integer >= 1"),
    ("c.toml", "epochs = 0", "--config {p}: epochs: must be a finite integer >= 1"),
    ("c.toml", "epoch = 3", "--config {p}: 'epoch' is not an option of hwnas train; did you mean --epochs?"),
    ("c.toml", "progress = 1", "--config {p}: progress is a flag and must be true or false, but got 1"),
    ("c.toml", "lr = [0.1, 0.2]", "--config {p}: lr must be a single value, but got [0.1, 0.2]"),
    ("c.toml", "space = true", "--config {p}: space must be a single value, but got True"),
    ("c.toml", "output = 3", "--config {p}: output must be a string, but got 3"),
    ("c.toml", "[train]\nepochs = 3", "--config {p}: 'train' is not an option of hwnas train"),
    ("c.toml", 'batch-size = 8\nbatch_size = 9', "--config {p} sets --batch-size twice"),
    ("c.json", '{"x": "' + "y" * 100_000 + '": 1}', "is not JSON"),
    ("c.json", '{"' + "y" * 100_000 + '": 1}', "... (100000 characters) is not an option of hwnas train"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(name, content, message, tmp_path):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    result = run("train", "--space", "spos", "--dataset", "synthetic", "-o", tmp_path / "run", "--config", path)
    one_line_error(result, message.format(p=path))
    assert len(result.output) < 400
    assert not (tmp_path / "run").exists()
