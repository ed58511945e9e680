"""A fake ``adb`` whose phones are folders here, for testing ``--on adb://`` without a phone (standard library only).

It follows adb's own command contract, as far as hwnas and a user's checks use it:

- global options before the command: ``-s SERIAL`` (else ``$ANDROID_SERIAL``, else the only device);
- ``devices``: ``List of devices attached``, then ``SERIAL<TAB>STATE`` lines (``device``, ``unauthorized``,
  ``offline``) and a blank line; ``get-state``: the state, or adb's error;
- ``push LOCAL... REMOTE``, ``pull REMOTE [LOCAL]``: copies into and out of the phone's folder;
- ``shell COMMAND...``: the words joined by spaces and run by ``bash -c`` on the host, with ``/data``, ``/sys`` and
  ``/system`` mapped into the phone's folder (so ``/data/local/tmp`` is the phone's), the phone's
  ``system/bin`` first on ``PATH`` (``getprop`` and ``taskset`` stand-ins) and the remote command's exit code
  returned, as modern adb (shell protocol v2) returns it;
- adb's own error messages and exit code 1: ``error: no devices/emulators found``, ``error: more than one
  device/emulator``, ``error: device unauthorized.`` with its hint, ``error: device 'X' not found``,
  ``error: device offline``, ``adb: error: failed to copy 'L' to 'R': remote No space left on device``.

A device can drop after a number of commands (``drop_after``: it answers that many more, then is gone, as a pulled
cable), and its /data can be given a size (``space_bytes``), past which pushes fail for lack of space.

Use: ``FakeAdb.create(root)`` makes the state; ``fake.command()`` is the command line for ``$HWNAS_ADB``
(``python3 -S fake_adb.py --fake-root ROOT``); `write_benchmark_standin` writes the stand-in of LiteRT's
``benchmark_model``: a bash script printing the real program's output format (as in tensorflow/tensorflow issue
#42507) with timings that follow from the model file's size (`standin_us`), so that tests are exact and fast.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

UNAUTHORIZED = ("error: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\nTry 'adb kill-server' if "
                "that seems wrong.\nOtherwise check for a confirmation dialog on your device.")
_MAPPED = re.compile(r"(?<![\w.\-/])/(data|sys|system)(?=/|\s|$|['\";)|&])")

BENCHMARK_STANDIN = r"""#!/bin/bash
# A stand-in of LiteRT's benchmark_model (tensorflow/lite/tools/benchmark) made by hwnas.testing.fake_adb: it prints
# the real program's log lines (on stderr, as TFLITE_LOG does) with timings that follow from the model file's size.
graph=""; runs=50; warmup=1; threads=-1
for arg in "$@"; do
  case "$arg" in
    --graph=*) graph=${arg#--graph=} ;;
    --num_runs=*) runs=${arg#--num_runs=} ;;
    --warmup_runs=*) warmup=${arg#--warmup_runs=} ;;
    --num_threads=*) threads=${arg#--num_threads=} ;;
    --help) echo "usage: $0 --graph=MODEL [--num_runs=50] [--warmup_runs=1] [--num_threads=-1] ..."; exit 1 ;;
  esac
done
{
echo "STARTING!"
echo "Log parameter values verbosely: [0]"
echo "Min num runs: [$runs]"
echo "Min runs duration (seconds): [0]"
echo "Num threads: [$threads]"
echo "Min warmup runs: [$warmup]"
echo "Min warmup runs duration (seconds): [0]"
echo "Graph: [$graph]"
echo "Use xnnpack: [1]"
if [ -z "$graph" ]; then echo "Please specify the name of your TF Lite input file with --graph"; exit 1; fi
if [ ! -f "$graph" ]; then echo "ERROR: Could not open '$graph'."; echo "Benchmarking failed."; exit 1; fi
size=$(wc -c < "$graph"); size=$((size))
us=$(( 20 + size % 480 )); first=$(( 3 * us )); init=$(( 800 + size % 100 ))
echo "#threads used for CPU inference: [$threads]"
echo "Loaded model $graph"
echo "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
echo "The input model file size (MB): $(printf '0.%06d' "$size")"
echo "Initialized session in 0.${init}ms."
echo "Running benchmark for at least $warmup iterations and at least 0 seconds but terminate if exceeding 150 seconds."
tenths=$(( (first + (warmup - 1) * us) * 10 / warmup ))
avg="$((tenths / 10)).$((tenths % 10))"
if [ "$warmup" -gt 1 ]; then
  echo "count=$warmup first=$first curr=$us min=$us max=$first avg=$avg std=$(( (first - us) / warmup ))"
else
  echo "count=1 curr=$first"
fi
echo
echo "Running benchmark for at least $runs iterations and at least 0 seconds but terminate if exceeding 150 seconds."
if [ "$runs" -gt 1 ]; then echo "count=$runs curr=$us(all same)"; else echo "count=1 curr=$us"; fi
echo
echo "Inference timings in us: Init: $init, First inference: $first, Warmup (avg): $avg, Inference (avg): $us"
echo "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion."
echo "Peak memory footprint (MB): init=0 overall=12.8672"
} >&2
"""

GETPROP = """#!/bin/bash
grep -m1 "^$1=" {props} | cut -d= -f2-
"""
TASKSET = """#!/bin/bash
# taskset MASK COMMAND...: records the mask, refuses CPUs the phone lacks, runs the command
mask=$((16#$1)); shift
if [ "$mask" -eq 0 ] || [ $(( mask >> {cpus} )) -ne 0 ]; then echo "taskset: sched_setaffinity: Invalid argument"; exit 1; fi
echo "$(printf '%x' $mask) $*" >> {log}
exec "$@"
"""


def standin_us(model_size: int) -> int:
    """The stand-in's ``Inference (avg)`` in microseconds for a model file of ``model_size`` bytes."""
    return 20 + model_size % 480


def write_benchmark_standin(path: str | os.PathLike) -> Path:
    """Write the stand-in of ``benchmark_model`` to ``path`` (executable) and return it."""
    path = Path(path)
    path.write_text(BENCHMARK_STANDIN)
    path.chmod(0o755)
    return path


class FakeAdb:
    """The fake's state under ``root``: ``devices.json``, one folder per phone in ``phones/``, a log of calls."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def create(cls, root: str | os.PathLike, serials: tuple[str, ...] = ("FAKE0001",), **phone) -> FakeAdb:
        fake = cls(root)
        fake.root.mkdir(parents=True, exist_ok=True)
        fake._save({"devices": []})
        for serial in serials:
            fake.add_phone(serial, **phone)
        return fake

    def command(self) -> str:
        """The command line for ``$HWNAS_ADB``."""
        return shlex.join([sys.executable, "-S", str(Path(__file__).resolve()), "--fake-root", str(self.root)])

    def _load(self) -> dict:
        return json.loads((self.root / "devices.json").read_text())

    def _save(self, state: dict) -> None:
        tmp = self.root / "devices.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.root / "devices.json")

    def phone(self, serial: str) -> Path:
        return self.root / "phones" / serial

    def tmp(self, serial: str) -> Path:
        """The phone's /data/local/tmp."""
        return self.phone(serial) / "data" / "local" / "tmp"

    def add_phone(self, serial: str, state: str = "device", *, model: str = "Pixel 7", soc: str = "Tensor G2",
                  platform: str = "gs201", abi: str = "arm64-v8a", android: str = "14", sdk: str = "34",
                  max_khz: tuple[int, ...] = (1803000,) * 4 + (2348000,) * 2 + (2850000,) * 2,
                  governor: str = "performance", temps_milli_c: tuple[int, ...] = (36500, 41200, 0)) -> None:
        """A phone ``serial`` in ``state`` (device, unauthorized, offline): its props, CPUs and thermal zones."""
        phone = self.phone(serial)
        (phone / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
        props = {"ro.product.manufacturer": "Google", "ro.product.model": model, "ro.soc.manufacturer": "Google",
                 "ro.soc.model": soc, "ro.board.platform": platform, "ro.hardware": platform,
                 "ro.product.cpu.abi": abi, "ro.product.cpu.abilist": abi, "ro.build.version.release": android,
                 "ro.build.version.sdk": sdk,
                 "ro.build.fingerprint": f"google/fake/{serial}:{android}/FAKE/1:user/release-keys"}
        (phone / "build.prop").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        for cpu, top in enumerate(max_khz):
            freq = phone / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            (freq / "scaling_governor").write_text(governor + "\n")
            (freq / "scaling_cur_freq").write_text(f"{top}\n")
            (freq / "cpuinfo_max_freq").write_text(f"{top}\n")
        for zone, temp in enumerate(temps_milli_c):
            path = phone / "sys" / "class" / "thermal" / f"thermal_zone{zone}"
            path.mkdir(parents=True, exist_ok=True)
            (path / "temp").write_text(f"{temp}\n")
            (path / "type").write_text(f"zone{zone}\n")
        bin_dir = phone / "system" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("getprop", GETPROP.format(props=shlex.quote(str(phone / "build.prop")))),
                           ("taskset", TASKSET.format(cpus=len(max_khz),
                                                      log=shlex.quote(str(self.root / f"taskset-{serial}.log"))))):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        state_ = self._load()
        state_["devices"] = [d for d in state_["devices"] if d["serial"] != serial] + [
            {"serial": serial, "state": state, "drop_after": None, "space_bytes": None}]
        self._save(state_)

    def set(self, serial: str, **fields) -> None:
        """Change a device's ``state``, ``drop_after`` (commands it still answers) or ``space_bytes`` (its /data)."""
        state = self._load()
        for device in state["devices"]:
            if device["serial"] == serial:
                device.update(fields)
        self._save(state)

    def reconnect(self, serial: str) -> None:
        """The phone is plugged in again: present, and no longer dropping."""
        self.set(serial, state="device", drop_after=None)

    def calls(self) -> list[list[str]]:
        """Every adb command line run so far (its arguments)."""
        log = self.root / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def pinned(self, serial: str) -> list[str]:
        """The taskset masks (hex) the phone's commands ran under."""
        log = self.root / f"taskset-{serial}.log"
        return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _usage(phone: Path) -> int:
    return sum(f.stat().st_size for f in (phone / "data").rglob("*") if f.is_file())


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--fake-root":
        return _fail("fake adb: run as fake_adb.py --fake-root ROOT [adb arguments]")
    fake, args = FakeAdb(argv[1]), argv[2:]
    with open(fake.root / "calls.jsonl", "a") as log:
        log.write(json.dumps(args) + "\n")
    state = fake._load()
    serial = os.environ.get("ANDROID_SERIAL")
    given = serial is not None
    while args and args[0] in ("-s", "-d", "-e", "-t"):
        if args[0] != "-s":
            return _fail(f"adb: fake adb does not support {args[0]}")
        if len(args) < 2:
            return _fail("adb: -s requires an argument")
        serial, given, args = args[1], True, args[2:]
    if not args:
        return _fail("adb: usage: no command specified")
    command, rest = args[0], args[1:]
    present = [d for d in state["devices"] if d["state"] != "gone"]
    if command == "devices":
        print("List of devices attached")
        for device in present:
            print(f"{device['serial']}\t{device['state']}")
        print()
        return 0
    if command in ("start-server", "kill-server"):
        return 0
    if given:
        chosen = [d for d in present if d["serial"] == serial]
        if not chosen:
            return _fail(f"error: device '{serial}' not found")
    elif not present:
        return _fail("error: no devices/emulators found")
    elif len(present) > 1:
        return _fail("error: more than one device/emulator")
    else:
        chosen = present
    device = chosen[0]
    if device["state"] == "unauthorized":
        return _fail(UNAUTHORIZED)
    if device["state"] == "offline":
        return _fail("error: device offline")
    if device["drop_after"] is not None:
        if device["drop_after"] <= 0:  # the cable is pulled: the device is gone from now on
            fake.set(device["serial"], state="gone")
            return _fail(f"error: device '{device['serial']}' not found" if given else "error: no devices/emulators found")
        fake.set(device["serial"], drop_after=device["drop_after"] - 1)
    phone = fake.phone(device["serial"])
    if command == "get-state":
        print(device["state"])
        return 0
    if command == "shell":
        return _shell(phone, " ".join(rest))
    if command == "push":
        return _push(phone, rest, device.get("space_bytes"))
    if command == "pull":
        return _pull(phone, rest)
    return _fail(f"adb: unknown command {command}")


def _on_phone(phone: Path, remote: str) -> Path:
    return phone / remote.lstrip("/")


def _shell(phone: Path, command: str) -> int:
    if not command.strip():
        return _fail("fake adb: an interactive shell is not supported")
    mapped = _MAPPED.sub(lambda m: f"{phone}/{m.group(1)}", command)
    env = {**os.environ, "PATH": f"{phone / 'system' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    done = subprocess.run(["bash", "-c", mapped], cwd=phone, env=env, capture_output=True, text=True,
                          errors="replace")
    sys.stdout.write(done.stdout.replace(str(phone), ""))
    sys.stderr.write(done.stderr.replace(str(phone), ""))
    return done.returncode


def _push(phone: Path, args: list[str], space: int | None) -> int:
    args = [a for a in args if a not in ("--sync", "-z", "-Z")]
    if len(args) < 2:
        return _fail("adb: push requires an argument")
    *sources, remote = args
    for source in sources:
        if not os.path.isfile(source):
            return _fail(f"adb: error: cannot stat '{source}': No such file or directory")
        target = _on_phone(phone, remote)
        if target.is_dir():
            target, remote_file = target / os.path.basename(source), remote.rstrip("/") + "/" + os.path.basename(source)
        else:
            remote_file = remote
        size = os.path.getsize(source)
        if not target.parent.is_dir():
            return _fail(f"adb: error: failed to copy '{source}' to '{remote_file}': remote couldn't create file: "
                         f"No such file or directory")
        if space is not None and _usage(phone) + size > space:
            return _fail(f"adb: error: failed to copy '{source}' to '{remote_file}': remote No space left on device")
        shutil.copy(source, target)
        print(f"{source}: 1 file pushed, 0 skipped. 42.0 MB/s ({size} bytes in 0.001s)")
    return 0


def _pull(phone: Path, args: list[str]) -> int:
    if not args:
        return _fail("adb: pull requires an argument")
    remote, local = args[0], args[1] if len(args) > 1 else os.path.basename(args[0])
    source = _on_phone(phone, remote)
    if not source.is_file():
        return _fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
    if os.path.isdir(local):
        local = os.path.join(local, source.name)
    shutil.copy(source, local)
    print(f"{remote}: 1 file pulled, 0 skipped. 42.0 MB/s ({source.stat().st_size} bytes in 0.001s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
