import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

import click
import pytest
import torch

from hwnas.cli import cli
from hwnas.data import DATASETS
from hwnas.training import OPTIMIZERS, SCHEDULERS, STRATEGIES, RunConfig, read_log
from cli_helpers import run, one_line_error as _one_line_error

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--width", "0.25", "--resolution", "8", "--synthetic-size", "64",
        "--batch-size", "16", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def test_train_eval_retrain(tmp_path):
    supernet = tmp_path / "supernet"
    trained = run("train", "--space", "spos", *TINY, "--epochs", "1", "--eval-paths", "1", "--bn-batches", "2",
                  "-o", str(supernet))
    assert trained.exit_code == 0, trained.output
    assert trained.output.startswith("epoch 1/1  loss ") and "val acc" in trained.output and "img/s" in trained.output

    evaluated = run("eval", str(supernet), "--arch", "SPOS", "--random", "2", "--format", "json")
    assert evaluated.exit_code == 0, evaluated.output
    data = json.loads(evaluated.output)
    assert data["summary"]["space"] == "spos" and data["summary"]["bn_batches"] == 2 and len(data["rows"]) == 3
    assert all(0 <= row[key] <= 100 for row in data["rows"]
               for key in ("val_acc_inherited_bn", "val_acc_recalibrated_bn"))
    assert run("eval", str(supernet), "--random", "1", "--bn-batches", "1").exit_code == 0

    retrained = run("retrain", "--space", "spos", "--arch", data["rows"][1]["arch"], *TINY, "--epochs", "1",
                    "-o", str(tmp_path / "retrained"))
    assert retrained.exit_code == 0, retrained.output
    assert f"architecture {data['rows'][1]['arch']}: test accuracy " in retrained.output
    again = run("retrain", "--space", "spos", "--arch", data["rows"][1]["arch"], *TINY, "--epochs", "1",
                "-o", str(tmp_path / "retrained"))
    assert "already holds all 1 epochs" in again.output


@pytest.mark.parametrize("args,message", [
    (("--dataset", "mnist"), "unknown dataset 'mnist'; known datasets: cifar10, cifar100, fashion-mnist,"),
    (("--optimizer", "lamb"), "Invalid value for '--optimizer': 'lamb' is not one of 'sgd', 'rmsprop', 'adam'"),
    (("--scheduler", "linear"), "Invalid value for '--scheduler': 'linear' is not one of 'cosine', 'step'"),
    (("--strategy", "greedy"), "Invalid value for '--strategy': 'greedy' is not one of 'uniform', 'fairness', 'sandwich', 'anchored'."),
    (("--batch-size", "0"), "Invalid value for '--batch-size': must be a finite integer >= 1 and <= 65536, but got '0'"),
    (("--lr", "0"), "Invalid value for '--lr': must be a finite number > 0 and <= 100, but got '0'"),
    (("--lr", "inf"), "Invalid value for '--lr': must be a finite number > 0 and <= 100, but got 'inf'"),
    (("--resolution", "100000"), "Invalid value for '--resolution': must be a finite integer >= 1 and <= 2048"),
    (("--device", "tpu"), "Invalid value for '--device': 'tpu' is not one of 'cpu', 'cuda'."),
    pytest.param(("--device", "cuda"), "device 'cuda' needs an NVIDIA GPU, but torch sees none; use --device cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_settings_are_one_line_errors_and_create_nothing(tmp_path, args, message):
    run_dir = tmp_path / "run"
    _one_line_error(run("train", "--space", "spos", *TINY, *args, "-o", str(run_dir)), message)
    assert not run_dir.exists()


def test_a_run_directory_of_another_run_is_refused_untouched(tmp_path):
    assert run("train", "--space", "spos", *TINY, "--epochs", "1", "-o", str(tmp_path)).exit_code == 0
    before = _files(tmp_path)
    _one_line_error(run("train", "--space", "fbnet", *TINY, "--epochs", "1", "-o", str(tmp_path)),
                    "holds a run of another search space (space 'spos' there, 'fbnet' here)")
    _one_line_error(run("train", "--space", "spos", *TINY, "--epochs", "2", "-o", str(tmp_path)),
                    "holds a run with other settings (epochs 1 there, 2 here)")
    (tmp_path / "checkpoint.pt").write_bytes(b"\x00garbage")
    before["checkpoint.pt"] = b"\x00garbage"
    _one_line_error(run("train", "--space", "spos", *TINY, "--epochs", "1", "-o", str(tmp_path)),
                    "is corrupt or not a hwnas checkpoint")
    _one_line_error(run("eval", str(tmp_path), "--random", "1"), "is corrupt or not a hwnas checkpoint")
    assert _files(tmp_path) == before


def test_eval_errors(tmp_path):
    _one_line_error(run("eval", str(tmp_path / "missing"), "--random", "1"), "does not exist")
    _one_line_error(run("eval", str(tmp_path)), "give --arch (repeatable) and/or --random N")
    _one_line_error(run("eval", str(tmp_path), "--random", "1"), "holds no hwnas run")


def test_option_defaults_and_names_match_the_library():
    """The CLI's defaults are RunConfig's, and its help names every registered choice."""
    defaults = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
    checked = set()
    for name in ("train", "retrain"):
        command = cli.get_command(click.Context(cli), name)
        for param in command.params:
            if param.name in defaults and not param.required:
                assert param.get_default(click.Context(command)) == defaults[param.name], (name, param.name)
                checked.add(param.name)
    assert checked >= {"epochs", "batch_size", "optimizer", "lr", "scheduler", "strategy", "eval_paths"}
    help_text = " ".join(run("train", "--help").output.split())
    for names in (DATASETS, OPTIMIZERS, SCHEDULERS, STRATEGIES):
        assert all(name in help_text for name in names)


def _hwnas(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "hwnas.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_a_killed_run_continues_rather_than_restarts(tmp_path):
    args = ["train", "--space", "spos", *TINY, "--synthetic-size", "160", "--epochs", "5", "--progress",
            "-o", str(tmp_path)]
    first = _hwnas(*args)
    checkpoint = tmp_path / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    done = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= done < 5, "killed after the first checkpoint and before the end"

    second = _hwnas(*args)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert f"resuming {tmp_path} after epoch {done}/5" in err
    assert [line.split()[1] for line in out.splitlines()] == [f"{e}/5" for e in range(done + 1, 6)]
    assert [row["epoch"] for row in read_log(tmp_path)] == [1, 2, 3, 4, 5]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 5


@pytest.mark.slow
def test_torchrun_trains_with_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "hwnas.cli", "train", "--space", "spos", *TINY, "--strategy", "fairness",
                           "--epochs", "2", "-o", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2") == 1, "only rank 0 reports"
    assert [row["epoch"] for row in read_log(tmp_path)] == [1, 2]
