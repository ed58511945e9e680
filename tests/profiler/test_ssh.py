"""Measuring over ssh, end to end, against a real sshd on 127.0.0.1 started here with its own keys and port.

The target side is a virtual environment with only numpy and onnxruntime: torch is not needed there. The
tests skip, saying why, where no sshd can run (openssh-server not installed, no account to log into) or the
target's environment cannot be installed (no package index).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hwnas.cli import cli
from hwnas.devices import get_device
from hwnas.errors import TargetError
from hwnas.profiler import targets
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Protocol
from hwnas.profiler.targets import parse_target
from hwnas.space import get_space
from hwnas.tables import LookupTable
from cli_helpers import run

QUICK = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)
CLI_QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0", "--remeasure", "0",
             "--calm-wait-s", "0"]
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25", "--resolution", "8"]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """An sshd on 127.0.0.1 and an ssh configuration that reaches it (`HWNAS_SSH`), with the process tree of
    the server so a test can drop every connection."""

    def __init__(self, root: Path):
        self.root, self.port, self.user = root, _free_port(), os.environ.get("USER") or _login()
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
        (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
        os.chmod(root / "authorized_keys", 0o600)
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\nLogLevel ERROR\n")
        (root / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {root / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                        stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()[-300:]}")

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def drop_connections(self) -> None:
        """Kill the session processes the server forked (a dropped connection, from the target's side); the
        measuring process then finds its input closed, and removes its work directory as it leaves."""
        for pid in _descendants(self.process.pid):
            if not _name(pid).startswith("sshd"):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.drop_connections()
        self.process.kill()
        self.process.wait()


def _login() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists():
        pytest.skip(f"openssh-server is not installed ({SSHD} is missing); .ci/run installs it")
    root = tmp_path_factory.mktemp("sshd")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    try:
        server = Sshd(root)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"no sshd could run here: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def target_python(tmp_path_factory):
    """A virtual environment with only numpy and onnxruntime: what a board would have."""
    venv = tmp_path_factory.mktemp("target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "numpy", "onnxruntime"],
                             capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"the target's numpy and onnxruntime could not be installed: {install.stderr.strip()[-300:]}")
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0, "the target environment must not have torch"
    return venv / "bin" / "python"


@pytest.fixture
def over_ssh(sshd, target_python, monkeypatch):
    monkeypatch.setenv("HWNAS_SSH", f"ssh -F {sshd.root / 'ssh_config'}")
    url = f"{sshd.url}?python={target_python}"
    probe = CliRunner().invoke(cli, ["devices", "--on", url])
    if probe.exit_code != 0:
        pytest.skip(f"ssh to {sshd.url} failed here: {probe.output.strip()}")
    return url


def test_profile_and_validate_over_ssh(over_ssh, tmp_path):
    path = tmp_path / "t.jsonl"
    result = run("profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", over_ssh, "--format", "json",
                 "-o", path)
    assert result.exit_code == 0, result.output
    table = LookupTable.load(path)
    device = table.header["device"]
    assert device["target"] == over_ssh.split("?")[0] and device["info"]["torch_loaded"] is False
    assert {"cpu_model", "kernel", "numpy", "onnxruntime", "execution_providers", "governor"} <= set(device["info"])
    assert len(table.records) == len(get_space("spos", "cifar10", width=0.25, resolution=8).all_blocks())
    validated = run("validate", path, "--archs", "4", "--on", over_ssh, "--format", "json")
    assert validated.exit_code == 0, validated.output
    rows = json.loads(validated.stdout[validated.stdout.index("{"):])["rows"]
    assert rows[0]["predictor"] == "table (raw sum)" and rows[0]["mean_abs_pct_error"] >= 0


def test_a_dropped_connection_is_one_line_and_the_same_command_resumes(over_ssh, sshd, tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    real = targets.Connection.request
    measured = []

    def request(self, message, **kwargs):
        if message.get("op") == "measure" and len(measured) == 1:
            sshd.drop_connections()
            time.sleep(0.5)
        answer = real(self, message, **kwargs)
        measured.append(message.get("op") == "measure") if message.get("op") == "measure" else None
        return answer

    monkeypatch.setattr(targets.Connection, "request", request)
    space = get_space("spos", "cifar10", width=0.25, resolution=8)
    with pytest.raises(TargetError, match=rf"lost the connection to {sshd.url.replace('.', '[.]')}.*; 12 records are "
                                          rf"kept in .*t.jsonl: run the same command again to resume"):
        profile_space(space, get_device("ort-mobile"), path, protocol=QUICK, target=parse_target(over_ssh))
    monkeypatch.setattr(targets.Connection, "request", real)
    result = run("profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", over_ssh, "-o", path)
    assert result.exit_code == 0, result.output
    assert len(LookupTable.load(path).records) == len(space.all_blocks())


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs for the target's work directories (``?workdir=``): room for the bundle and a few batches of
    models; `fill` leaves no byte free, `free` empties it again. Skips where no tmpfs can be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk (tmpfs) needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small disk (tmpfs) could not be mounted here: {mounted.stderr.strip()[-300:]}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a file into ``disk`` until not one more byte fits."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        chunk = 1 << 16
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(fd)


def full_message(sshd, disk: Path) -> str:
    return (f"Error: the disk of the target {sshd.url} is full: nothing more fits in {disk} (No space left on "
            f"device); free space there, or name a folder with room with ?workdir=DIR after the target")


def test_a_target_disk_that_fills_mid_build_is_one_line_and_the_same_command_resumes(over_ssh, sshd, small_disk,
                                                                                     tmp_path, monkeypatch):
    path, url = tmp_path / "t.jsonl", f"{over_ssh}&workdir={small_disk}"
    real = targets.Connection.request
    measures = []

    def request(self, message, **kwargs):
        if message.get("op") == "measure":
            measures.append(message)
            if len(measures) == 2:  # the first batch is written; the disk fills before the second's models land
                assert any(name.startswith("hwnas-target-") for name in os.listdir(small_disk))
                fill(small_disk)
        return real(self, message, **kwargs)

    monkeypatch.setattr(targets.Connection, "request", request)
    command = ["profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", url, "-o", path]
    result = run(*command)
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]  # after the progress lines
    assert last == (f"{full_message(sshd, small_disk)}; 12 records are kept in {path}: run the same command "
                    f"again to resume"), result.output
    assert "Traceback" not in result.output and len(measures) == 2
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 13  # the header and the first batch, whole
    first = {json.loads(line)["key"] for line in data.decode().splitlines()[1:]}
    assert os.listdir(small_disk) == ["filler"]  # the target removed its work directory as it left
    (small_disk / "filler").unlink()  # room again
    monkeypatch.setattr(targets.Connection, "request", real)
    result = run(*command)
    assert result.exit_code == 0, result.output
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()[1:]]
    blocks = get_space("spos", "cifar10", width=0.25, resolution=8).all_blocks()
    assert sorted(keys) == sorted(b.key for b in blocks) and first <= set(keys)  # every block exactly once
    assert len(LookupTable.load(path).records) == len(blocks) and os.listdir(small_disk) == []


def test_a_target_disk_too_full_for_the_bundle_is_one_line_and_leaves_nothing(over_ssh, sshd, small_disk, tmp_path):
    fill(small_disk)
    path = tmp_path / "t.jsonl"
    result = run("profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", f"{over_ssh}&workdir={small_disk}",
                 "-o", path)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [full_message(sshd, small_disk)], result.output
    assert not path.exists() and os.listdir(small_disk) == ["filler"]  # no half-unpacked work directory either


@pytest.mark.parametrize("change, message", [
    (lambda url, s: url.replace(f":{s.port}", f":{_free_port()}"), "could not connect to ssh://"),
    (lambda url, s: url.replace(f"{s.user}@", "nobody-here@"), "could not connect to ssh://nobody-here@127.0.0.1"),
    (lambda url, s: url.split("?")[0] + "?python=/nowhere/python3", "has no /nowhere/python3"),
    (lambda url, s: url.split("?")[0] + f"?python={sys.executable.replace('.venv', '.none')}", "has no "),
])
def test_unreachable_refused_or_incomplete_targets_are_one_line(over_ssh, sshd, tmp_path, change, message):
    result = run("profile", *SPACE, "--device", "ort-mobile", *CLI_QUICK, "--on", change(over_ssh, sshd),
                 "-o", tmp_path / "t.jsonl")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "t.jsonl").exists()


HAVE_LITERT = all(__import__("importlib").util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))


@pytest.mark.skipif(not HAVE_LITERT, reason="needs the litert extra on the host: pip install 'hwnas[litert]'")
def test_a_litert_device_on_a_board_without_litert_says_what_to_install(over_ssh, tmp_path):
    result = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", over_ssh, "-o", tmp_path / "t.jsonl")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "lacks ai_edge_litert" in lines[0] and "pip install numpy ai-edge-litert" in lines[0]
    assert not (tmp_path / "t.jsonl").exists()


@pytest.fixture(scope="module")
def litert_python(tmp_path_factory):
    """A virtual environment with only numpy and ai-edge-litert: a board that runs LiteRT."""
    venv = tmp_path_factory.mktemp("litert-target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "numpy", "ai-edge-litert"],
                             capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"the target's numpy and ai-edge-litert could not be installed: {install.stderr.strip()[-300:]}")
    for absent in ("torch", "onnxruntime"):
        assert subprocess.run([str(venv / "bin" / "python"), "-c", f"import {absent}"], capture_output=True).returncode
    return venv / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_LITERT, reason="needs the litert extra on the host: pip install 'hwnas[litert]'")
def test_profile_and_validate_litert_over_ssh(sshd, litert_python, monkeypatch, tmp_path):
    monkeypatch.setenv("HWNAS_SSH", f"ssh -F {sshd.root / 'ssh_config'}")
    url = f"{sshd.url}?python={litert_python}"
    path = tmp_path / "t.jsonl"
    result = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", url, "-o", path)
    assert result.exit_code == 0, result.output
    device = LookupTable.load(path).header["device"]
    assert device["name"] == "litert" and device["info"]["onnxruntime"] is None and device["info"]["litert"]
    validated = run("validate", path, "--archs", "4", "--on", url, "--format", "json")
    assert validated.exit_code == 0, validated.output
