"""Measuring on a target through a separate process (`--on local`): the same path as over ssh, end to end."""

import base64
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import sys

import pytest

from hwnas.devices import get_device
from hwnas.errors import ConfigError, TargetError
from hwnas.profiler import targets
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Protocol
from hwnas.profiler.targets import parse_cpus, parse_target
from hwnas.profiler.validate import validate_table
from hwnas.space import get_space
from hwnas.tables import LookupTable
from cli_helpers import run

QUICK = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)
CLI_QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0", "--remeasure", "0",
             "--calm-wait-s", "0"]
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25", "--resolution", "8"]


def space():
    return get_space("spos", "cifar10", width=0.25, resolution=8)


@pytest.mark.parametrize("text, url, python, ssh", [
    ("local", "local", None, None),
    ("local?python=/opt/py/bin/python3", "local", "/opt/py/bin/python3", None),
    ("ssh://pi@board", "ssh://pi@board", "python3", ["--", "pi@board"]),
    ("ssh://board:2222?python=/usr/bin/python3.9", "ssh://board:2222", "/usr/bin/python3.9", ["-p", "2222", "--", "board"]),
])
def test_targets_parse(text, url, python, ssh, monkeypatch):
    monkeypatch.delenv("HWNAS_SSH", raising=False)
    target = parse_target(text)
    assert target.url == url and (python is None or target.python == python)
    if ssh is None:
        assert target.ssh is None and target.command(["x"]) == ["x"]
    else:
        assert target.ssh[0] == "ssh" and list(target.ssh[-len(ssh):]) == ssh and "BatchMode=yes" in target.ssh
        assert target.command(["python3", "-c", "print(1)"])[-1] == "python3 -c 'print(1)'"
    monkeypatch.setenv("HWNAS_SSH", "ssh -F /tmp/my config")
    if ssh is not None:
        assert parse_target(text).ssh[:3] == ("ssh", "-F", "/tmp/my")


@pytest.mark.parametrize("text, python, workdir", [
    ("local?workdir=/data/tmp", sys.executable, "/data/tmp"),
    ("ssh://pi@board?workdir=/data/tmp", "python3", "/data/tmp"),
    ("ssh://pi@board:22?python=/opt/py/bin/python3&workdir=~/hwnas", "/opt/py/bin/python3", "~/hwnas"),
    ("ssh://pi@board?workdir=/w&python=/p", "/p", "/w"),
    ("ssh://pi@board", "python3", None),
])
def test_a_target_names_the_folder_of_its_work_directory(text, python, workdir):
    target = parse_target(text)
    assert target.python == python and target.workdir == workdir and "?" not in target.url


@pytest.mark.parametrize("text", ["ssh://board?dir=/w", "ssh://board?python=", "local?workdir=/a&workdir=/b",
                                  "ssh://board?python=/p&", "local?workdir"])
def test_a_target_query_that_names_no_known_key_once_is_one_line(text):
    with pytest.raises(ConfigError) as error:
        parse_target(text)
    assert str(error.value) == (f"a target takes ?python=PATH (its Python) and ?workdir=DIR (the folder of its work "
                                f"directory), once each and joined with &, but got ?{text.split('?', 1)[1]}")


@pytest.mark.parametrize("text", ["", "ssh://", "ssh://a@b@c", "http://board", "localhost", "ssh://board:port"])
def test_unparsable_targets_are_one_line_errors(text):
    with pytest.raises(ConfigError, match="a target must be local or ssh://"):
        parse_target(text)


@pytest.mark.parametrize("text, part, value", [
    ("ssh://-oProxyCommand=touch pwned@127.0.0.1", "user", "'-oProxyCommand=touch pwned'"),
    ("ssh://-oProxyCommand=touch_pwned", "host", "'-oProxyCommand=touch_pwned'"),
    ("ssh://pi@board\nx", "host", "'board\\nx'"),
    ("ssh://p i@board", "user", "'p i'"),
])
def test_user_and_host_that_ssh_would_read_as_options_are_refused(text, part, value):
    with pytest.raises(ConfigError) as error:
        parse_target(text)
    message = str(error.value)
    assert message == (f"an ssh target's {part} must be letters, digits, '.', '_' and '-', not starting with '-' "
                       f"(ssh would read it as an option), but got {value}") and "\n" not in message


@pytest.mark.parametrize("port", ["0", "65536", "99999", "000"])
def test_an_ssh_port_outside_1_to_65535_is_one_line(port):
    with pytest.raises(ConfigError) as error:
        parse_target(f"ssh://pi@board:{port}")
    assert str(error.value) == f"an ssh target's port must be from 1 to 65535, but got {port}"


def test_a_port_with_leading_zeros_is_the_number():
    assert parse_target("ssh://board:0022").url == "ssh://board:22"


def test_the_destination_follows_the_end_of_ssh_options(monkeypatch):
    monkeypatch.setenv("HWNAS_SSH", "myssh")
    command = parse_target("ssh://pi@board.local:22").command(["python3", "-V"])
    assert command[-3:] == ["--", "pi@board.local", "python3 -V"] and command.count("--") == 1


def test_cpus_parse():
    assert parse_cpus("2") == [2] and parse_cpus("0-2,5") == [0, 1, 2, 5] and parse_cpus(None) is None
    with pytest.raises(ConfigError, match="--pin takes CPU numbers such as 2, 2,3 or 0-3, but got 'x'"):
        parse_cpus("x")


def test_the_bundle_holds_no_torch():
    """What the target runs imports only the standard library, numpy, the runtimes (onnxruntime, ai-edge-litert)
    and itself."""
    import ast

    allowed = {"__future__", "abc", "base64", "collections", "dataclasses", "errno", "functools", "glob", "hashlib",
               "importlib", "itertools", "json", "math", "os", "platform", "random", "shutil", "signal", "sys",
               "threading", "time", "typing",
               "numpy", "onnxruntime", "ai_edge_litert", "hwnas"}
    for relative in targets.BUNDLE:
        tree = ast.parse((targets.PACKAGE / relative).read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert {n.split(".")[0] for n in names} <= allowed, relative


def test_profile_resume_and_validate_on_a_local_target(tmp_path):
    device = get_device("ort-mobile")
    path = tmp_path / "t.jsonl"

    class Stop(Exception):
        pass

    def stop(written):
        raise Stop  # the host process stops right after a batch was written, as a kill would

    with pytest.raises(Stop):
        profile_space(space(), device, path, protocol=QUICK, batch_blocks=12, on_batch=stop,
                      target=parse_target("local"))
    first = path.read_text().splitlines()
    assert len(first) == 1 + 12
    header = json.loads(first[0])
    assert header["device"]["target"] == "local" and header["device"]["info"]["torch_loaded"] is False
    result = run("profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", "local", "-o", path)
    assert result.exit_code == 0, result.output
    table = LookupTable.load(path)
    assert len(table.records) == len(space().all_blocks())
    assert [json.loads(line)["key"] for line in first[1:]] == list(table.records)[:12], "nothing measured twice"
    assert table.header["device"]["comparable"]["cpu_model"] and table.header["reference_level_ms"] > 0
    report = validate_table(table, device, archs=4, target=parse_target("local"))
    assert len(report.archs) == 4 and (report.measured_ms > 0).all()
    refused = run("validate", path, "--archs", "4")
    assert refused.exit_code == 2 and "was measured on local: measure there with --on local" in refused.output


def test_a_lost_measuring_process_says_how_many_records_are_kept(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    real = targets.Connection.request
    answered, killed = [], []

    def request(self, message, **kwargs):
        if message.get("op") == "measure" and len(answered) == 1:
            os.kill(self.process.pid, signal.SIGKILL)  # the target dies, as a dropped connection leaves it
            killed.append(self.workdir)  # nothing on the target can clean up after SIGKILL: the test does
        answer = real(self, message, **kwargs)
        if message.get("op") == "measure":
            answered.append(1)
        return answer

    monkeypatch.setattr(targets.Connection, "request", request)
    with pytest.raises(TargetError, match=r"the measuring process on local stopped with exit code -9; 12 records are "
                                          r"kept in .*t.jsonl: run the same command again to resume"):
        profile_space(space(), get_device("ort-mobile"), path, protocol=QUICK, target=parse_target("local"))
    monkeypatch.setattr(targets.Connection, "request", real)
    table = profile_space(space(), get_device("ort-mobile"), path, protocol=QUICK, target=parse_target("local"))
    assert len(table.records) == len(space().all_blocks())
    shutil.rmtree(killed[0])


@pytest.mark.parametrize("args, message", [
    (["--on", "ftp://x"], "a target must be local or ssh://"),
    (["--on", "local", "--device", "cpu"], "a target runs ONNX Runtime devices (ort-mobile, ort-cpu) and litert, but got device "
                                           "'cpu'"),
    (["--pin", "0"], "--pin and --keep apply to measurements on a target: give --on TARGET"),
    (["--on", "local", "--pin", "x"], "--pin takes CPU numbers"),
    (["--on", "local", "--pin", "big"], "('big', a phone's big cores, applies to adb:// targets only), but got 'big'"),
    (["--on", "local?python=/nowhere/python3"], "could not start /nowhere/python3 for target local"),
])
def test_bad_target_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    device = [] if "--device" in args else ["--device", "ort-mobile"]
    result = run("profile", *SPACE, *device, *CLI_QUICK, *args, "-o", tmp_path / "t.jsonl")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "t.jsonl").exists()


def test_a_target_without_numpy_or_onnxruntime_names_them(tmp_path):
    import subprocess
    import sys

    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = run("devices", "--on", f"local?python={bare / 'bin' / 'python'}")
    assert result.exit_code == 2
    assert "lacks numpy and onnxruntime" in result.output and "-m pip install numpy onnxruntime" in result.output


def test_devices_on_a_target_prints_its_fingerprint():
    result = run("devices", "--on", "local", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["device"] for r in rows] == ["ort-mobile", "ort-cpu"] and rows[0]["available"]
    # the fingerprint as columns of their own (cli.output's convention): fingerprint.cpu_model, ...
    fingerprint = {k.removeprefix("fingerprint."): v for k, v in rows[0].items() if k.startswith("fingerprint.")}
    assert {"cpu_model", "machine", "cores_online", "governor", "kernel", "python", "numpy", "onnxruntime",
            "execution_providers", "temperature_c"} <= set(fingerprint)


def test_keep_leaves_the_work_directory_and_pin_restricts_the_cores(tmp_path):
    from pathlib import Path

    from hwnas.profiler.remote import RemoteSession

    session = RemoteSession(get_device("ort-mobile"), QUICK, parse_target("local"), keep=True, pin=[0])
    try:
        assert session.fingerprint["usable_cores"] == 1 and session.device_header()["info"]["pinned_cpus"] == [0]
        workdir = Path(session.workdir)
        assert (workdir / "hwnas" / "timing" / "protocol.py").is_file()
    finally:
        session.close()
    assert workdir.is_dir(), "kept"
    shutil.rmtree(workdir)
    session = RemoteSession(get_device("ort-mobile"), QUICK, parse_target("local"))
    session.close()
    assert not Path(session.workdir).exists(), "removed at the end"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "closed input"])
def test_the_measuring_process_removes_its_work_directory_however_it_is_stopped(how):
    from pathlib import Path

    connection = targets.Connection(parse_target("local"))
    workdir = Path(connection.workdir)
    assert workdir.is_dir()
    if how == "closed input":
        connection.process.stdin.close()
    else:
        os.kill(connection.process.pid, getattr(signal, how))
    connection.process.wait(timeout=30)
    assert not workdir.exists()


def test_a_model_that_does_not_fit_on_the_target_is_answered_as_a_full_disk_and_leaves_no_partial_file(
        tmp_path, monkeypatch):
    """The measuring process itself: a model whose write fills the disk is one answer saying so (the folder of the
    work directory and the system's reason), the process goes on, and no partial model is left under the digest."""
    from hwnas.timing import target_main
    from hwnas.timing.runtimes import OnnxRuntime

    class Filling(io.FileIO):
        def write(self, data):
            super().write(bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")

    real = open
    monkeypatch.setattr(target_main, "open", lambda path, mode="r": Filling(path, "wb") if "w" in mode
                        else real(path, mode), raising=False)
    model = b"not really an onnx model"
    entry = {"key": "a", "sha256": hashlib.sha256(model).hexdigest(), "model": base64.b64encode(model).decode(),
             "inputs": [{"name": "x", "shape": [1], "dtype": "float32"}]}
    settings = OnnxRuntime(get_device("ort-mobile").session_settings).settings()
    requests = [{"op": "configure", "protocol": QUICK.to_dict(), "runtime": "onnxruntime", **settings},
                {"op": "measure", "entries": [entry], "seed": 0}, {"op": "fingerprint"}]
    workdir, out = tmp_path / "hwnas-target-x", io.StringIO()
    workdir.mkdir()
    target_main.serve(str(workdir), True, io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[2]["full"] == {"folder": str(tmp_path), "reason": "No space left on device"}
    assert "No space left on device" in answers[2]["error"] and "fingerprint" in answers[3]  # it goes on
    assert os.listdir(workdir / "models") == []
    message = targets.disk_full("ssh://pi@board", answers[2]["full"]["folder"], answers[2]["full"]["reason"])
    assert message == (f"the disk of the target ssh://pi@board is full: nothing more fits in {tmp_path} (No space "
                       f"left on device); free space there, or name a folder with room with ?workdir=DIR after the "
                       f"target") and "\n" not in message
