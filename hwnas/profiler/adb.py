"""Android phones as targets, through the system ``adb``: ``adb://SERIAL`` (or ``adb://`` for the only device), with
``?benchmark=PATH`` naming the benchmark program to run there (LiteRT's ``benchmark_model`` for Android).

This module is the transport: which phone a target names, how a command runs there and what adb's failures mean.
The measuring session on top of it is `hwnas.profiler.android`.

- ``$HWNAS_ADB`` replaces the adb command (default ``adb``), as ``$HWNAS_SSH`` does for ssh; the tests point it to
  `hwnas.testing.fake_adb`.
- Every call is ``adb -s SERIAL COMMAND ...``: the serial is resolved first (``adb devices``) and checked against
  strict character rules, so nothing a user gives is ever read as an option by adb; pushed files are absolute
  paths on both sides.
- A phone runs no Python: every remote command is one ``adb shell`` line of POSIX shell, and results come back
  as plain text. A failed command is checked against ``adb get-state``: a phone that is gone is a `TargetError`
  saying so (a build keeps its records and resumes when run again).
- A run's files live in a fresh work folder ``/data/local/tmp/hwnas-XXXX`` holding an ``owner`` line (host, process,
  token). It is removed when the run ends, also after errors, unless ``--keep``; one that outlived a run whose
  phone was lost is removed by the next run from the same host once its process is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import subprocess
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import ConfigError, TargetError
from hwnas.profiler.session import TargetKind

PHONE_TMP = "/data/local/tmp"
_URL = re.compile(r"^adb://(?P<serial>[^/?]*)/?(?:\?(?P<query>.*))?\Z", re.S)
#: what USB serials, emulator names (emulator-5554), network devices (192.168.1.7:5555) and mDNS names are made of;
#: never a leading '-' (adb would read it as an option) and no whitespace or control characters
_SERIAL = re.compile(r"^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*\Z")
UNAUTHORIZED_HINT = ("unlock the phone and accept the 'Allow USB debugging?' dialog (or revoke the USB debugging "
                     "authorisations in its developer options and plug it in again)")
#: tokens of the work folders this process has open: a folder of this process that is not among them is stale
ACTIVE: set[str] = set()
#: what the fingerprint reads with getprop, under the names it is recorded as
PROPS = {"manufacturer": "ro.product.manufacturer", "model": "ro.product.model", "soc_manufacturer":
         "ro.soc.manufacturer", "soc_model": "ro.soc.model", "board_platform": "ro.board.platform",
         "hardware": "ro.hardware", "abi": "ro.product.cpu.abi", "abilist": "ro.product.cpu.abilist",
         "android": "ro.build.version.release",
         "sdk": "ro.build.version.sdk", "build": "ro.build.fingerprint"}
FINGERPRINT_SCRIPT = "; ".join([
    *(f"echo \"prop {name}=$(getprop {prop})\"" for name, prop in PROPS.items()),
    "for c in /sys/devices/system/cpu/cpu[0-9]*; do echo \"cpu ${c##*/cpu} "
    "$(cat $c/cpufreq/scaling_governor 2>/dev/null || echo -) $(cat $c/cpufreq/scaling_cur_freq 2>/dev/null || echo -) "
    "$(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -)\"; done",
    "for z in /sys/class/thermal/thermal_zone*; do echo \"thermal $(cat $z/temp 2>/dev/null || echo -) "
    "$(cat $z/type 2>/dev/null)\"; done",
])


@dataclass(frozen=True)
class AdbTarget(TargetKind):
    """A parsed ``adb://`` target: the serial (None: the only device), the host path of the benchmark program
    (None: not given) and the adb command line."""

    schemes: ClassVar[tuple[str, ...]] = ("adb",)
    syntax: ClassVar[str] = "adb://[SERIAL][?benchmark=PATH]"

    url: str
    serial: str | None
    benchmark: str | None
    adb: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> AdbTarget:
        return parse_adb_target(text)


def parse_adb_target(text: str) -> AdbTarget:
    """``adb://``, ``adb://SERIAL``, either followed by ``?benchmark=PATH``."""
    match = _URL.match(text.strip())
    if not match:
        raise ConfigError(f"an adb target must be adb://[SERIAL] (optionally followed by ?benchmark=PATH), but got "
                          f"{text!r}")
    serial = match.group("serial") or None
    if serial is not None and not _SERIAL.match(serial):
        raise ConfigError(f"an adb target's serial must be letters, digits, '.', '_', ':' and '-', not starting with "
                          f"'-' (adb would read it as an option), but got {serial!r}")
    benchmark = None
    for part in filter(None, (match.group("query") or "").split("&")):
        key, eq, value = part.partition("=")
        if key != "benchmark" or not eq or not value:
            raise ConfigError(f"an adb target takes ?benchmark=PATH (the benchmark program to run on the phone), "
                              f"but got ?{part}")
        benchmark = value
    adb = tuple(shlex.split(os.environ.get("HWNAS_ADB", "adb")))
    if not adb:
        raise ConfigError("$HWNAS_ADB must name an adb command, but it is empty")
    return AdbTarget(f"adb://{serial or ''}", serial, benchmark, adb)


def last_line(text: str) -> str:
    """The last non-empty line of ``text``, shortened: what a one-line error quotes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _adb_error(text: str) -> str:
    """adb's own error in ``text`` (its first ``error:`` line), else its last line."""
    for line in text.splitlines():
        if "error:" in line:
            return line.strip()[:300]
    return last_line(text)


class Phone:
    """One phone reached through adb: its serial resolved, commands run there with ``-s SERIAL``."""

    def __init__(self, target: AdbTarget):
        self.target = target
        self.serial = self._resolve()
        self.url = f"adb://{self.serial}"

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess:
        argv = [*self.target.adb, *args]
        try:
            return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise TargetError(f"adb is not installed here (no command {argv[0]!r}): install Android's platform-tools "
                              f"(e.g. `apt install adb`) or name the adb command in $HWNAS_ADB") from None
        except OSError as exc:
            raise TargetError(f"could not run adb ({argv[0]}): {exc.strerror or exc}") from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"adb {' '.join(args[:3])} did not finish within {timeout:.0f} s on "
                              f"{getattr(self, 'url', self.target.url)}") from None

    def devices(self) -> list[tuple[str, str]]:
        """(serial, state) of every device ``adb devices`` lists (state: device, unauthorized, offline, ...)."""
        result = self._run(["devices"], timeout=60)
        if result.returncode != 0:
            raise TargetError(f"`adb devices` failed: {_adb_error(result.stderr + result.stdout)}")
        found = []
        for line in result.stdout.splitlines():
            serial, tab, state = line.strip().partition("\t")
            if tab and serial:
                found.append((serial.strip(), state.split()[0] if state.split() else ""))
        return found

    def _resolve(self) -> str:
        found = self.devices()
        wanted = self.target.serial
        if wanted is None:
            if not found:
                raise TargetError("no Android device is connected: `adb devices` lists none; plug the phone in with "
                                  "USB debugging on (developer options)")
            if len(found) > 1:
                raise TargetError(f"several Android devices are connected ({', '.join(s for s, _ in found)}): name "
                                  f"one, e.g. --on adb://{found[0][0]}")
            wanted = found[0][0]
            if not _SERIAL.match(wanted):
                raise TargetError(f"the connected device's serial {wanted!r} has characters adb targets refuse")
        states = dict(found)
        if wanted not in states:
            seen = ", ".join(f"{s} ({state})" for s, state in found) or "none"
            raise TargetError(f"no Android device {wanted!r} is connected (adb devices lists: {seen})")
        state = states[wanted]
        if state == "unauthorized":
            raise TargetError(f"the Android device {wanted} is unauthorized: {UNAUTHORIZED_HINT}")
        if state != "device":
            raise TargetError(f"the Android device {wanted} is {state}, not ready: reconnect it (a cable or "
                              f"`adb reconnect`) until `adb devices` shows it as 'device'")
        return wanted

    def lost(self) -> str | None:
        """Why the phone is gone (adb's words), or None while it answers."""
        result = self._run(["-s", self.serial, "get-state"], timeout=30)
        if result.returncode == 0 and result.stdout.strip() == "device":
            return None
        return _adb_error(result.stderr + result.stdout) or result.stdout.strip() or "it does not answer"

    def _check_lost(self) -> None:
        why = self.lost()
        if why is not None:
            raise TargetError(f"lost the phone {self.url} ({why})")

    def shell(self, script: str, *, timeout: float = 600) -> tuple[int, str]:
        """Run one line of shell on the phone: (its exit code, its output). A phone that went away is a TargetError."""
        result = self._run(["-s", self.serial, "shell", script], timeout=timeout)
        if result.returncode != 0:
            self._check_lost()
        return result.returncode, result.stdout + result.stderr

    def push(self, local: str, remote: str) -> None:
        """Copy the host file ``local`` (an absolute path) to ``remote`` on the phone."""
        if not os.path.isabs(local) or not remote.startswith("/"):
            raise ValueError(f"push takes absolute paths, but got {local!r} and {remote!r}")
        result = self._run(["-s", self.serial, "push", local, remote], timeout=600)
        if result.returncode == 0:
            return
        said = _adb_error(result.stderr + result.stdout)
        if "No space left" in said:
            raise TargetError(f"the phone {self.url} has no space left for {os.path.basename(remote)} in "
                              f"{os.path.dirname(remote)} (adb: remote No space left on device): free space on the "
                              f"phone's /data")
        self._check_lost()
        raise TargetError(f"could not copy {os.path.basename(local)} to {remote} on {self.url}: {said}")

    def fingerprint(self) -> dict[str, Any]:
        """What a latency on the phone depends on: model, SoC, ABI, Android version, each CPU's governor and
        frequencies, the hottest thermal zone."""
        code, out = self.shell(FINGERPRINT_SCRIPT, timeout=60)
        if code != 0:
            raise TargetError(f"could not read the fingerprint of {self.url}: {last_line(out)}")
        return parse_fingerprint(out)

    # the work folder

    def open_workdir(self) -> str:
        """A new, empty work folder of this run on the phone (stale ones of this host's ended runs removed first)."""
        self.clean_stale()
        token = secrets.token_hex(6)
        work = f"{PHONE_TMP}/hwnas-{token}"
        owner = f"host={socket.gethostname()} pid={os.getpid()} token={token}"
        code, out = self.shell(f"mkdir {work} {work}/models && echo {shlex.quote(owner)} > {work}/owner")
        if code != 0:
            raise TargetError(f"could not make the work folder {work} on {self.url}: {last_line(out)}")
        ACTIVE.add(token)
        return work

    def clean_stale(self) -> list[str]:
        """Remove the work folders of this host's runs that ended without removing theirs (a lost phone); folders
        of other hosts, of running processes and kept ones (``--keep``) stay. Returns the folders removed."""
        code, out = self.shell(f"for d in {PHONE_TMP}/hwnas-*; do [ -f \"$d/owner\" ] && [ ! -e \"$d/kept\" ] && "
                               f"echo \"$d $(cat \"$d/owner\")\"; done; true", timeout=60)
        stale = [fields[0] for fields in (line.split() for line in out.splitlines())
                 if len(fields) >= 4 and re.fullmatch(rf"{PHONE_TMP}/hwnas-[0-9a-f]+", fields[0])
                 and _stale(fields[1:])]
        if stale:
            self.shell(f"rm -rf {' '.join(stale)}", timeout=120)
        return stale

    def close_workdir(self, work: str, keep: bool) -> None:
        """Remove the work folder (or mark it kept); quiet when the phone is gone."""
        ACTIVE.discard(work.rsplit("-", 1)[-1])
        self.shell(f"touch {work}/kept" if keep else f"rm -rf {work}", timeout=120)


def _stale(owner: list[str]) -> bool:
    """Whether a work folder with this owner line was left by an ended run of this host."""
    fields = dict(part.partition("=")[::2] for part in owner)
    if fields.get("host") != socket.gethostname() or not fields.get("pid", "").isdigit():
        return False
    pid = int(fields["pid"])
    if pid == os.getpid():
        return fields.get("token") not in ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def parse_fingerprint(text: str) -> dict[str, Any]:
    """The fingerprint from the output of `FINGERPRINT_SCRIPT`."""
    props: dict[str, str] = {}
    cpus: dict[int, tuple[str, str, str]] = {}
    temps: list[float] = []
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind == "prop":
            name, _, value = rest.partition("=")
            props[name] = value.strip()
        elif kind == "cpu" and len(rest.split()) == 4 and rest.split()[0].isdigit():
            number, governor, cur, top = rest.split()
            cpus[int(number)] = (governor, cur, top)
        elif kind == "thermal" and rest.split():
            reading = rest.split()[0]
            if reading.lstrip("-").isdigit():
                value = int(reading) / (1000 if abs(int(reading)) >= 1000 else 1)  # millidegrees on most zones
                if 0 < value < 150:  # unused zones read 0 or nonsense
                    temps.append(value)
    order = sorted(cpus)
    governors = sorted({cpus[c][0] for c in order if cpus[c][0] != "-"})

    def mhz(value: str) -> int | None:
        return round(int(value) / 1000) if value.isdigit() else None

    return {
        **{name: props.get(name) or None for name in PROPS},
        "soc": props.get("soc_model") or props.get("board_platform") or props.get("hardware") or None,
        "cpus": order, "cores_online": len(order),
        "governor": governors[0] if len(governors) == 1 else (",".join(
            f"{c}:{cpus[c][0]}" for c in order) if governors else None),
        "cpu_mhz": [mhz(cpus[c][1]) for c in order], "cpu_max_mhz": [mhz(cpus[c][2]) for c in order],
        "temperature_c": max(temps) if temps else None,
    }


def big_cores(fingerprint: dict[str, Any]) -> list[int]:
    """The CPUs with the highest maximum frequency (a phone's big cores), [] when the phone does not say."""
    tops = [(top, cpu) for cpu, top in zip(fingerprint.get("cpus", []), fingerprint.get("cpu_max_mhz", [])) if top]
    return sorted(cpu for top, cpu in tops if top == max(tops)[0]) if tops else []


#: ELF e_machine values of the Android ABIs
ELF_ABIS = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}


def elf_abi(path: str | os.PathLike) -> str | None:
    """The Android ABI an ELF executable is built for; None for a file that is not ELF (a script) or is built for a
    machine no Android ABI names (the phone then says whether it runs)."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_ABIS.get(machine)


def abi_mismatch(path: str | os.PathLike, fingerprint: dict[str, Any]) -> str | None:
    """Why the program at ``path`` cannot run on a phone of this fingerprint (None when it can, or when unknown)."""
    built = elf_abi(path)
    runs = [a for a in (fingerprint.get("abilist") or fingerprint.get("abi") or "").split(",") if a]
    if built is None or not runs or built in runs:
        return None
    return f"it is built for {built}, but the phone runs {', '.join(runs)}"
