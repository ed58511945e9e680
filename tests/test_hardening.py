"""Bad input across the command line: every numeric option refuses non-finite and out-of-range numbers in one
line, output paths are checked before any work, and one output has one writer at a time."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from hwnas.cli import COMMANDS, cli
from hwnas.cli.options import Number
from hwnas.outputs import LockedError, OutputLock, dir_lock, file_lock
from hwnas.space import get_space
from hwnas.tables import LookupTable
from cli_helpers import run

REPO = Path(__file__).resolve().parents[1]
BAD = ["inf", "-inf", "nan", "1e309", "-1e309"]


def numeric_options():
    """(command path, option, its type) of every option of every command whose type is a number."""
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        commands = ([(f"{name} {sub}", command.get_command(context, sub)) for sub in command.list_commands(context)]
                    if isinstance(command, click.Group) else [(name, command)])
        for path, cmd in commands:
            for param in cmd.params:
                if isinstance(param, click.Option) and param.type.name in ("integer", "float"):
                    yield path, param.opts[-1], param.type


OPTIONS = list(numeric_options())


def test_every_numeric_option_has_a_range_type():
    assert OPTIONS, "numeric options were found"
    for path, option, kind in OPTIONS:
        assert isinstance(kind, Number), f"{path} {option} is a plain {kind.name}: give it a Number with its range"


@pytest.mark.parametrize("path, option, kind", OPTIONS, ids=[f"{p} {o}" for p, o, _ in OPTIONS])
def test_every_numeric_option_refuses_non_finite_numbers_in_one_line(path, option, kind, tmp_path):
    for value in BAD + ["x", ""]:
        with pytest.raises(click.BadParameter) as info:
            kind.convert(value, None, None)
        assert f"must be {kind.range_text()}, but got {value!r}" in str(info.value.message)
    for value in ("0", "-1"):  # either in range or refused with the range
        try:
            number = kind.convert(value, None, None)
        except click.BadParameter as error:
            assert kind.range_text() in error.message
        else:
            assert kind.low is None or number >= kind.low


@pytest.mark.parametrize("args", [
    ["train", "--space", "spos", "--dataset", "synthetic", "-o", "{tmp}/run"],
    ["profile", "--space", "spos", "-o", "{tmp}/t.jsonl"],
    ["demo", "-o", "{tmp}/demo"],
    ["search", "--space", "spos", "--table", "{tmp}/t.jsonl", "--target-latency", "3ms", "-o", "{tmp}/s"],
])
def test_through_the_command_line_bad_numbers_are_exit_2_one_line_nothing_written(args, tmp_path):
    command = args[0]
    options = [(o, k) for p, o, k in OPTIONS if p == command]
    assert options
    for option, _ in options:
        for value in ("inf", "nan", "1e309"):
            result = run(*[a.format(tmp=tmp_path) for a in args], option, value)
            assert result.exit_code == 2, (option, value, result.output)
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for") and "Traceback" not in \
                result.output, (option, value, result.output)
    assert list(tmp_path.iterdir()) == []


def test_a_number_type_states_its_range():
    assert Number(float, 0, 1, low_open=True).range_text() == "a finite number > 0 and <= 1"
    assert Number(int, 1).range_text() == "a finite integer >= 1"
    assert Number(int, 2, 10**6).convert("3", None, None) == 3
    with pytest.raises(click.BadParameter, match=r"must be a finite integer >= 2 and <= 1000000, but got '2.5'"):
        Number(int, 2, 10**6).convert("2.5", None, None)


@pytest.mark.parametrize("args, message", [
    (["train", "--space", "spos", "--dataset", "synthetic", "-o", ""], "an output must be named, but got an empty path"),
    (["profile", "--space", "spos", "-o", "{file}/t.jsonl"], "a lookup table must be in a directory, but {file} is a file"),
    (["plot", "{tmp}", "-o", "{file}/chart.png"], "a chart file must be in a directory, but {file} is a file"),
    (["export", "FBNet-A", "--space", "fbnet", "-o", "{file}/x"], "the export directory must be in a directory"),
    (["references", "--space", "darts"], "unknown search space 'darts'; known search spaces:"),
])
def test_output_paths_and_names_are_checked_before_any_work(args, message, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = run(*[a.format(tmp=tmp_path, file=blocker) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message.format(file=blocker) in lines[0], result.output
    assert blocker.read_text() == "keep me"


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    table = tmp_path / "t.jsonl"
    with file_lock(table, "table"):
        result = run("profile", "--space", "spos", "--input", "cifar10", "--width", "0.25", "-o", table)
        assert result.exit_code == 2
        assert result.output.strip() == (f"Error: table {table} is being written by process {os.getpid()}; wait for "
                                         f"it to finish or stop it (lock {table}.lock)")
        with pytest.raises(LockedError, match=f"run directory {tmp_path} is being written by process {os.getpid()}"):
            with dir_lock(tmp_path, "run directory"), dir_lock(tmp_path, "run directory"):
                pass
    assert not table.exists() and not (tmp_path / "t.jsonl.lock").exists(), "released and removed"


def test_a_folder_made_for_a_lock_goes_with_it_unless_something_was_written_there(tmp_path):
    with dir_lock(tmp_path / "a" / "run", "run directory"):
        assert (tmp_path / "a" / "run" / ".hwnas.lock").exists()
    assert list(tmp_path.iterdir()) == [], "a command that wrote nothing leaves no empty folders"
    with dir_lock(tmp_path / "a" / "run", "run directory"):
        (tmp_path / "a" / "run" / "config.json").write_text("{}")
    assert [p.name for p in (tmp_path / "a" / "run").iterdir()] == ["config.json"]
    (tmp_path / "kept").mkdir()
    with dir_lock(tmp_path / "kept", "run directory"):
        pass
    assert (tmp_path / "kept").is_dir(), "a folder that was there before stays"


def test_a_lock_outlives_no_killed_writer(tmp_path):
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nsys.path.insert(0, sys.argv[2])\n"
                               "from hwnas.outputs import OutputLock\nOutputLock(sys.argv[1], 'x').acquire()\n"
                               "print('held', flush=True)\ntime.sleep(60)", str(lock), str(REPO)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockedError, match=f"being written by process {holder.pid}"):
        OutputLock(lock, "x").acquire()
    holder.kill()
    holder.wait()
    OutputLock(lock, "x").acquire().release()  # the operating system released it with the process


def test_two_profiles_of_one_table_started_together_leave_each_key_once(tmp_path):
    table = tmp_path / "t.jsonl"
    args = [sys.executable, "-m", "hwnas.cli", "profile", "--space", "spos", "--input", "cifar10", "--width", "0.25",
            "--device", "cpu", "--rounds", "3", "--min-block-ms", "5", "--rotate", "1", "--warmup-ms", "0",
            "--calm-wait-s", "0", "-o", str(table)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "t.jsonl.lock").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(args, env=env, capture_output=True, text=True)
    first.communicate(timeout=300)
    assert first.returncode == 0
    if second.returncode != 0:  # it started while the first was writing
        assert second.returncode == 2
        assert second.stderr.strip() == (f"Error: table {table} is being written by process {first.pid}; wait for it "
                                         f"to finish or stop it (lock {table}.lock)")
    keys = [json.loads(line)["key"] for line in table.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == len(get_space("spos", "cifar10", width=0.25).all_blocks())
    assert len(LookupTable.load(table).records) == len(keys)


def test_a_table_whose_header_names_another_spaces_settings_is_one_line(tmp_path):
    from hwnas.devices import get_device
    from hwnas.profiler.session import device_header
    from hwnas.testing import synthetic_table

    table = synthetic_table(get_space("fbnet", "cifar10", width=0.25), path=tmp_path / "t.jsonl",
                            device_header=device_header(get_device("cpu")))
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    header["space"]["space"] = "spos"  # fbnet's settings under spos's name
    (tmp_path / "t.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    result = run("validate", tmp_path / "t.jsonl", "--archs", "4")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "must describe a space hwnas can build, but" in result.output
    assert "space 'spos' takes settings" in result.output
    assert "but got 'expand_always'" in result.output and table.records


def test_json_output_is_strict_where_a_statistic_is_undefined():
    """--format json writes null, not NaN or Infinity, which strict parsers (and pandas) refuse."""
    import json as _json

    from hwnas.cli.output import render

    text = render([{"kendall_tau": float("nan"), "ratio": float("inf"), "n": 3}], "json",
                  extra={"held_out": {"tau": float("nan")}})

    def refuse(constant):
        raise ValueError(constant)

    data = _json.loads(text, parse_constant=refuse)
    assert data["rows"] == [{"kendall_tau": None, "ratio": None, "n": 3}]
    assert data["summary"] == {"held_out": {"tau": None}}


def test_an_atomic_write_that_fails_leaves_no_temporary_and_the_old_file(tmp_path, monkeypatch):
    """A full disk while writing: one HwnasError naming the file, no .tmp left, the previous content kept."""
    import errno

    from hwnas.errors import OutputError
    from hwnas.files import write_atomic

    out = tmp_path / "t.jsonl"
    out.write_text("old\n")

    def full(path):
        path.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"t.jsonl could not be written \(No space left on device\); its "
                                          r"previous content is unchanged"):
        write_atomic(out, full)
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
    with pytest.raises(OutputError, match="nothing was written"):
        write_atomic(tmp_path / "new.json", full)
    assert not (tmp_path / "new.json").exists() and not (tmp_path / "new.json.tmp").exists()


@pytest.fixture
def special(tmp_path):
    """A FIFO, a symlink loop and a dangling symlink beside a real table (nothing here ever opens the FIFO)."""
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "loop-b", tmp_path / "loop-a")
    os.symlink(tmp_path / "loop-a", tmp_path / "loop-b")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    from hwnas.testing import synthetic_table

    synthetic_table(get_space("fbnet", "cifar10", width=0.25), path=tmp_path / "t.jsonl")
    return tmp_path


@pytest.mark.parametrize("name, message", [("fifo", "is a FIFO"), ("loop-a", "symlink that leads nowhere"),
                                           ("dangling", "symlink that leads nowhere"), ("/dev/zero", "character device")])
def test_inputs_that_are_not_regular_files_are_one_line(special, name, message):
    from cli_helpers import one_line_error

    path = name if name.startswith("/") else special / name
    one_line_error(run("table", "show", path), message)
    one_line_error(run("table", "adapt", special / "t.jsonl", path, "-o", special / "out.jsonl"), message)
    assert not (special / "out.jsonl").exists()


@pytest.mark.parametrize("name, message", [("fifo", "is a FIFO"), ("loop-a", "symlink that leads nowhere"),
                                           ("t.jsonl", "is a file"), ("missing", "does not exist")])
@pytest.mark.parametrize("args", [["eval", "{p}", "--random", "1"], ["rank", "{p}", "--archs", "2", "-o", "{out}"],
                                  ["report", "{p}", "-o", "{out}"], ["plot", "{p}", "-o", "{out}.png"],
                                  ["predictor", "fit", "--supernet", "{p}", "-o", "{out}.json"],
                                  ["search", "--space", "fbnet", "--supernet", "{p}", "--table", "{t}",
                                   "--target-latency", "1", "-o", "{out}"]])
def test_folders_that_are_not_folders_are_named_for_what_they_are(special, name, message, args):
    from cli_helpers import one_line_error

    one_line_error(run(*[a.format(p=special / name, out=special / "out", t=special / "t.jsonl") for a in args]),
                   message)
    assert not any(p.name.startswith("out") for p in special.iterdir())


@pytest.mark.parametrize("args, message", [
    (["table", "import", "hw-nas-bench", "--device", "pixel3", "--input", "cifar10", "-o", "{fifo}"], "is a FIFO"),
    (["table", "import", "hw-nas-bench", "--device", "pixel3", "--input", "cifar10", "-o", "{loop}"],
     "leads nowhere"),
    (["profile", "--space", "fbnet", "--input", "cifar10", "--width", "0.25", "-o", "/dev/null"], "character device"),
    (["validate", "{table}", "--details", "{fifo}"], "is a FIFO"),
    (["validate", "{table}", "--details", "{table}"], "--details must name a file other than the table"),
    (["validate", "{table}", "--export", "3", "-o", "{loop}"], "leads nowhere"),
])
def test_outputs_that_are_not_regular_files_are_never_replaced(special, args, message):
    from cli_helpers import one_line_error

    before = {p.name: (p.is_symlink(), p.stat().st_mode if p.exists() else None) for p in special.iterdir()}
    one_line_error(run(*[a.format(fifo=special / "fifo", loop=special / "loop-a", table=special / "t.jsonl") for a in args]), message)
    assert {p.name: (p.is_symlink(), p.stat().st_mode if p.exists() else None) for p in special.iterdir()} == before


def test_a_chart_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from hwnas.search.pareto import ChartData
    from hwnas.search.plot import draw_chart

    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"keep me")
    os.symlink(elsewhere, tmp_path / "chart.png")
    draw_chart(ChartData((), (), "latency (ms)", "accuracy (%)", "empty"), tmp_path / "chart.png")
    assert elsewhere.read_bytes() == b"keep me"
    assert not (tmp_path / "chart.png").is_symlink() and (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("marker, args, message", [
    ("report.json", ["rank", "{tmp}/run", "--archs", "4", "-o", "{out}"], "holds a report (hwnas report)"),
    ("rank.json", ["train", "--space", "spos", "--dataset", "synthetic", "-o", "{out}"], "holds a ranking (hwnas rank)"),
    ("checkpoint.pt", ["search", "--space", "spos", "--table", "{tmp}/t.jsonl", "--target-latency", "1000ms",
                       "--supernet", "{tmp}/run", "-o", "{out}"], "holds a training run"),
    ("candidates.csv", ["report", "{tmp}/s", "-o", "{out}"], "holds a search"),
])
def test_a_folder_holding_another_commands_results_is_refused_before_any_work(marker, args, message, tmp_path):
    """rank -o a report's folder, train -o a ranking's, search -o a run's, report -o a search's: their files would
    mix in one folder; refused in one line, the folder left as it was."""
    from cli_helpers import one_line_error
    from hwnas.testing import synthetic_table

    synthetic_table(get_space("spos", "cifar10", width=0.25), path=tmp_path / "t.jsonl")
    (tmp_path / "run").mkdir()
    (tmp_path / "s").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / marker).write_text("{}")
    one_line_error(run(*[a.format(tmp=tmp_path, out=out) for a in args]), message)
    assert [p.name for p in out.iterdir()] == [marker]


def test_a_ranking_never_lands_in_the_supernets_own_run_folder(tmp_path):
    from cli_helpers import one_line_error

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    (tmp_path / "run" / "log.csv").write_text("epoch\n")
    one_line_error(run("rank", tmp_path / "run", "--archs", "4", "-o", tmp_path / "run"), "holds a training run")
