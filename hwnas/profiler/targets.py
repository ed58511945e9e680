"""Where a table is measured: ``local`` (a separate process on this machine) or ``ssh://[user@]host[:port]``
(the device the network will run on, through the system ``ssh``: the user's keys, agent and
``~/.ssh/config`` apply).

A target runs one measuring process for a whole run (one connection, not one per block): the host sends
it a bundle of torch-free modules (`hwnas.timing.protocol`, `runners`, `ort`, `litert`,
`target_main` and `hwnas.errors`), which it unpacks into a temporary work directory and runs with the target's
``python3`` (Python >= 3.8 with numpy and the runtime of the device: onnxruntime, or ai-edge-litert for
``litert``; nothing else, no torch, no hwnas install). Requests and answers
are JSON lines over the connection's standard input and output (`hwnas.timing.target_main`).

Android phones (``adb://SERIAL``), which run no Python, are reached through adb instead: `hwnas.profiler.adb`.

``?python=PATH`` after a target names the Python to run there (default ``python3``; for ``local``, this
Python); ``?workdir=DIR`` the folder the work directory is made in (default: the target's temporary folder,
``$TMPDIR`` or ``/tmp``), both joined with ``&``. A disk that fills there is one line naming the target and the
folder (`disk_full`). ``$HWNAS_SSH`` replaces the ssh command (default ``ssh``), e.g. ``ssh -F my_config`` or
``ssh -J jump``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from hwnas.errors import ConfigError, TargetError
from hwnas.profiler.adb import AdbTarget
from hwnas.profiler.session import TargetKind
from hwnas.timing.runtimes import RUNTIMES

PACKAGE = Path(__file__).resolve().parents[1]
#: the modules the measuring process needs, as paths below the hwnas package (all torch-free)
BUNDLE = ("__init__.py", "errors.py", "timing/__init__.py", "timing/protocol.py", "timing/runners.py",
          "timing/ort.py", "timing/litert.py", "timing/runtimes.py", "timing/target_main.py")
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
               "-o", "ServerAliveCountMax=3")
_SSH = re.compile(r"^ssh://(?:(?P<user>[^@/?:]+)@)?(?P<host>[^@/?:]+)(?::(?P<port>\d+))?/?(?:\?(?P<query>.+))?$")
#: a user or host name: what hostnames, IPv4 addresses, ssh config aliases and login names are made of; never a
#: leading '-' (ssh would parse it as an option) and no whitespace or control characters
_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\Z")
_LOCAL = re.compile(r"^local(?:\?(?P<query>.+))?$")
#: what a target's query may set: ``?python=PATH&workdir=DIR``
QUERY_KEYS = ("python", "workdir")

#: runs on the target: check the Python and its libraries, unpack the bundle into a new work directory (in
#: ``dir``, default the temporary folder; removed again if it does not fit), then serve requests there. Passed
#: to ``python3 -c``.
BOOT = (
    "import base64,errno,io,json,os,sys,tarfile,tempfile,shutil,importlib.util as u\n"
    "req=json.loads(sys.stdin.readline())\n"
    "if sys.version_info<(3,8):print(json.dumps({'python':sys.version.split()[0],'old':1}));sys.exit()\n"
    "missing=[m for m in req.get('needs',('numpy','onnxruntime')) if u.find_spec(m) is None]\n"
    "if missing:print(json.dumps({'missing':missing,'python':sys.version.split()[0]}));sys.exit()\n"
    "d=os.path.expanduser(req['dir']) if req.get('dir') else None;w=None\n"
    "try:\n"
    " w=tempfile.mkdtemp(prefix='hwnas-target-',dir=d)\n"
    " tarfile.open(fileobj=io.BytesIO(base64.b64decode(req['bundle']))).extractall(w)\n"
    "except Exception as e:\n"
    " w and shutil.rmtree(w,True)\n"
    " full=getattr(e,'errno',0) in (errno.ENOSPC,getattr(errno,'EDQUOT',errno.ENOSPC))\n"
    " print(json.dumps({'error':type(e).__name__+': '+str(e),'full':full and {'folder':os.path.abspath(d or "
    "tempfile.gettempdir()),'reason':e.strerror}}));sys.exit()\n"
    "sys.path.insert(0,w)\n"
    "from hwnas.timing.target_main import serve\n"
    "serve(w,req.get('keep',False))\n"
)


#: how a target string that names no kind of target is told
USAGE = ("a target must be local or ssh://[user@]host[:port] (optionally followed by ?python=PATH&workdir=DIR), or "
         "adb://[SERIAL] for an Android phone")


@dataclass(frozen=True)
class Target(TargetKind):
    """A target that runs hwnas's measuring process in a Python: ``local`` (a separate process here) or
    ``ssh://`` (a board): how to start a command there, and how to name it in messages and table headers."""

    schemes: ClassVar[tuple[str, ...]] = ("local", "ssh")
    syntax: ClassVar[str] = "local[?python=PATH][&workdir=DIR] or ssh://[user@]host[:port][?python=PATH][&workdir=DIR]"

    url: str
    python: str
    ssh: tuple[str, ...] | None = None  # the ssh command up to the host (None: local)
    workdir: str | None = None  # the folder the work directory is made in there (None: its temporary folder)

    def command(self, argv: list[str]) -> list[str]:
        """The host-side command line that runs ``argv`` on the target."""
        if self.ssh is None:
            return argv
        return [*self.ssh, shlex.join(argv)]

    @classmethod
    def parse(cls, text: str) -> Target:
        """``local`` or ``ssh://[user@]host[:port]``, either followed by ``?python=PATH`` and/or ``?workdir=DIR``
        (joined with ``&``)."""
        local = _LOCAL.match(text.strip())
        if local:
            query = _query(local.group("query"))
            return cls("local", query.get("python") or sys.executable, None, query.get("workdir"))
        match = _SSH.match(text.strip())
        if not match:
            raise ConfigError(f"{USAGE}, but got {text!r}")
        query = _query(match.group("query"))
        user, host, port = match.group("user"), match.group("host"), match.group("port")
        for part, value in (("user", user), ("host", host)):
            if value is not None and not _NAME.match(value):
                raise ConfigError(f"an ssh target's {part} must be letters, digits, '.', '_' and '-', not starting "
                                  f"with '-' (ssh would read it as an option), but got {value!r}")
        if port is not None and not 1 <= int(port) <= 65535:
            raise ConfigError(f"an ssh target's port must be from 1 to 65535, but got {port}")
        port = str(int(port)) if port is not None else None
        url = f"ssh://{user + '@' if user else ''}{host}{':' + port if port else ''}"
        command = shlex.split(os.environ.get("HWNAS_SSH", "ssh"))
        # "--" ends ssh's options: the destination is never read as one, whatever client $HWNAS_SSH names
        ssh = (*command, *SSH_OPTIONS, *(("-p", port) if port else ()), "--", f"{user}@{host}" if user else host)
        return cls(url, query.get("python") or "python3", ssh, query.get("workdir"))


def _query(text: str | None) -> dict[str, str]:
    """The keys of a target's ``?python=PATH&workdir=DIR`` (each at most once, none empty)."""
    query: dict[str, str] = {}
    for part in text.split("&") if text else ():
        key, eq, value = part.partition("=")
        if key not in QUERY_KEYS or not value or key in query:
            raise ConfigError(f"a target takes ?python=PATH (its Python) and ?workdir=DIR (the folder of its work "
                              f"directory), once each and joined with &, but got ?{text}")
        query[key] = value
    return query


#: every kind of target by the scheme its URLs begin with (``local``, ``ssh``, ``adb``)
TARGETS: dict[str, type[TargetKind]] = {}


def register_target(cls: type[TargetKind]) -> type[TargetKind]:
    """Add a kind of target under each of its schemes (a scheme registered twice raises)."""
    for scheme in cls.schemes:
        if scheme in TARGETS:
            raise ConfigError(f"target schemes must be unique, but {scheme!r} is already registered")
        TARGETS[scheme] = cls
    return cls


register_target(Target)
register_target(AdbTarget)


def parse_target(text: str) -> TargetKind:
    """The target ``text`` names, by the kind its scheme registers: ``local[?python=PATH]``,
    ``ssh://[user@]host[:port][?python=PATH][&workdir=DIR]`` or an Android phone ``adb://[SERIAL][?benchmark=PATH]``."""
    head = text.strip()
    scheme = head.split("://", 1)[0] if "://" in head else head.split("?", 1)[0]
    kind = TARGETS.get(scheme)
    if kind is None or ("://" in head) == (scheme == "local"):
        raise ConfigError(f"{USAGE}, but got {text!r}")
    return kind.parse(text)


def bundle() -> bytes:
    """A gzipped tar of the modules the measuring process needs, as they are installed here."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for relative in BUNDLE:
            tar.add(PACKAGE / relative, arcname=f"hwnas/{relative}")
    return buffer.getvalue()


class Connection:
    """One measuring process on a target, spoken to in JSON lines; a context manager that says goodbye."""

    def __init__(self, target: Target, *, keep: bool = False, runtime: str = "onnxruntime"):
        self.target = target
        self._stderr = tempfile.TemporaryFile()
        argv = target.command([target.python, "-c", BOOT])
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as exc:  # no ssh, no such python
            raise TargetError(f"could not start {argv[0]} for target {target.url}: {exc.strerror or exc}") from None
        needs = RUNTIMES[runtime].modules
        hello = self.request({"bundle": base64.b64encode(bundle()).decode(), "keep": keep, "needs": needs,
                              "dir": target.workdir}, starting=True)
        if "missing" in hello:
            raise TargetError(f"the target {target.url} lacks {' and '.join(hello['missing'])} for Python "
                              f"{hello['python']}: install them there with "
                              f"`{RUNTIMES[runtime].pip_command(target.python)}`")
        if "old" in hello:
            raise TargetError(f"the target {target.url} runs Python {hello['python']}, but measuring needs 3.8 or "
                              f"newer; name another with {target.url}?python=PATH")
        self.fingerprint, self.workdir = hello["hello"], hello["workdir"]

    def request(self, message: dict[str, Any], *, starting: bool = False) -> dict[str, Any]:
        """Send one request and read its answer; a failed request, a lost connection or a process that died
        is a one-line TargetError naming the target."""
        stdin: BinaryIO = self.process.stdin  # type: ignore[assignment]
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
            line = self.process.stdout.readline()  # type: ignore[union-attr]
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        if not line:
            raise TargetError(self._ended(starting))
        try:
            answer = json.loads(line)
        except ValueError:
            raise TargetError(f"the measuring process on {self.target.url} answered something that is not JSON: "
                              f"{line[:200]!r}") from None
        if answer.get("full"):
            raise TargetError(disk_full(self.target.url, answer["full"]["folder"], answer["full"]["reason"]))
        if "error" in answer:
            raise TargetError(f"the measuring process on {self.target.url} failed: {answer['error']}")
        return answer

    def _ended(self, starting: bool) -> str:
        """Why the process is gone, in one sentence."""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode(errors="replace").splitlines() if line.strip()]
        said = f" ({lines[-1][:300]})" if lines else ""
        if self.target.ssh is not None and code == 255:
            what = "could not connect to" if starting else "lost the connection to"
            return f"{what} {self.target.url}{said}"
        if code == 127 or any("not found" in line for line in lines[-2:]):
            return f"the target {self.target.url} has no {self.target.python}{said}"
        return f"the measuring process on {self.target.url} stopped with exit code {code}{said}"

    def close(self) -> dict[str, Any] | None:
        """Say goodbye (the work directory is removed unless kept) and wait for the process to end."""
        answer = None
        if self.process.poll() is None:
            try:
                answer = self.request({"op": "bye"})
            except TargetError:
                pass
            try:
                self.process.stdin.close()  # type: ignore[union-attr]
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        self._stderr.close()
        return answer

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def disk_full(url: str, folder: str, reason: str | None) -> str:
    """The sentence for a target whose disk filled: the target, the folder its work directory is in, the system's
    reason, and what to do."""
    return (f"the disk of the target {url} is full: nothing more fits in {folder} ({reason or 'no space left'}); "
            f"free space there, or name a folder with room with ?workdir=DIR after the target")


def governor_warning(url: str, fingerprint: dict[str, Any]) -> str | None:
    """A sentence when the target's CPU frequency governor lets the clock wander (anything but performance)."""
    governor = fingerprint.get("governor")
    if governor in (None, "performance"):
        return None
    return (f"the CPU frequency governor of {url} is {governor!r}, not 'performance': latencies may drift with the "
            f"clock; set it there with `sudo cpupower frequency-set -g performance` (or write performance to "
            f"/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)")


def parse_cpus(text: str | None) -> list[int] | None:
    """``--pin`` as a list of CPU numbers: ``2``, ``2,3`` or ``0-3``."""
    if text is None:
        return None
    cpus: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        cpus = []
    if not cpus or min(cpus) < 0:
        big = " ('big', a phone's big cores, applies to adb:// targets only)" if text.strip() == "big" else ""
        raise ConfigError(f"--pin takes CPU numbers such as 2, 2,3 or 0-3{big}, but got {text!r}")
    return sorted(set(cpus))

