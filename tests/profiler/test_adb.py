"""Measuring on an Android phone (``--on adb://``) end to end, against the fake adb of `hwnas.testing.fake_adb`: its
phones are folders here and its benchmark program is a stand-in printing LiteRT benchmark_model's output format
with timings that follow from the model file's size. No real phone or adb is involved.

Conversion to .tflite is replaced by deterministic bytes (`fake_tflite`), so that builds are fast and every
entry's time is known exactly; the real conversion is tested with the litert device.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from hwnas.devices import get_device
from hwnas.devices.litert import LiteRtDevice
from hwnas.errors import ConfigError, TargetError
from hwnas.profiler.adb import FINGERPRINT_SCRIPT, parse_adb_target, parse_fingerprint
from hwnas.profiler.android import parse_benchmark_output
from hwnas.profiler.build import profile_space
from hwnas.profiler.targets import parse_target
from hwnas.space import get_space
from hwnas.tables import LookupTable
from hwnas.testing.fake_adb import FakeAdb, standin_us, write_benchmark_standin
from hwnas.timing.protocol import Protocol
from cli_helpers import one_line_error, run

HAVE_LITERT = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
pytestmark = pytest.mark.skipif(not HAVE_LITERT, reason="the litert device needs its extra: pip install 'hwnas[litert]'")

DATA = Path(__file__).parent / "data" / "benchmark_model"
SERIAL = "FAKE0001"
CLI_QUICK = ["--rounds", "3", "--min-block-ms", "1", "--rotate", "1", "--warmup-ms", "0", "--remeasure", "0",
             "--calm-wait-s", "0"]
QUICK = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0, calm_wait_s=0)
SPACE = ["--space", "spos", "--input", "cifar10", "--width", "0.25", "--resolution", "8"]
REAL_TFLITE = LiteRtDevice.tflite_model


def space():
    return get_space("spos", "cifar10", width=0.25, resolution=8)


def fake_tflite(self, module, example):
    """Deterministic stand-in bytes of a model: their size (and so the stand-in's time) follows from the module."""
    args = self.example_args(example)
    n = sum(p.numel() for p in module.parameters()) + sum(a.numel() for a in args)
    return b"TFL3" + n.to_bytes(8, "little") + bytes(n % 1000)


def expected_ms(block) -> float:
    import torch

    model = fake_tflite(get_device("litert"), block.build().eval(), torch.zeros(block.input_shape))
    return standin_us(len(model)) / 1e3


class Phone:
    def __init__(self, root: Path, monkeypatch, **fake):
        self.fake = FakeAdb.create(root / "adb", **fake)
        self.benchmark = write_benchmark_standin(root / "benchmark_model")
        monkeypatch.setenv("HWNAS_ADB", self.fake.command())
        monkeypatch.delenv("ANDROID_SERIAL", raising=False)
        monkeypatch.setattr(LiteRtDevice, "tflite_model", fake_tflite)

    def url(self, serial: str = SERIAL, benchmark: Path | None = None) -> str:
        return f"adb://{serial}?benchmark={benchmark or self.benchmark}"

    def leftovers(self, serial: str = SERIAL) -> list[str]:
        return sorted(p.name for p in self.fake.tmp(serial).iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A table built through the fake adb, interrupted by a dropped phone in its second batch, and resumed."""
    root = tmp_path_factory.mktemp("adb-build")
    with pytest.MonkeyPatch.context() as monkeypatch:
        phone = Phone(root, monkeypatch)
        path = root / "t.jsonl"

        from hwnas.profiler.android import AdbSession

        real = AdbSession.measure_blocks

        def measure_blocks(self, *args, **kwargs):  # the cable is pulled a few commands into the second batch
            result = real(self, *args, **kwargs)
            phone.fake.set(SERIAL, drop_after=5)
            return result

        monkeypatch.setattr(AdbSession, "measure_blocks", measure_blocks)
        lost = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", phone.url(), "-o", path)
        monkeypatch.setattr(AdbSession, "measure_blocks", real)
        interrupted = LookupTable.load(path)
        left_on_phone = phone.leftovers()
        phone.fake.reconnect(SERIAL)
        resumed = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", phone.url(), "-o", path)
        yield {"phone": phone, "path": path, "lost": lost, "interrupted": interrupted,
               "left_on_phone": left_on_phone, "resumed": resumed}


def test_a_dropped_phone_is_one_line_and_the_rerun_resumes_with_no_record_missing_or_twice(built):
    lost = built["lost"]
    assert lost.exit_code == 2, lost.output
    lines = [line for line in lost.output.splitlines() if not line.startswith("profiling spos on litert: ")]
    assert lines == [f"Error: lost the phone adb://{SERIAL} (error: device '{SERIAL}' not found); 12 records are kept "
                     f"in {built['path']}: run the same command again to resume"], lost.output
    assert len(built["interrupted"].records) == 12
    assert len(built["left_on_phone"]) == 1  # the lost phone kept the work folder ...
    assert built["resumed"].exit_code == 0, built["resumed"].output
    lines = [json.loads(line) for line in built["path"].read_text().splitlines()]
    keys = [line["key"] for line in lines[1:]]
    assert len(keys) == len(set(keys)) == len(space().all_blocks()) and set(keys) == {b.key for b in space().all_blocks()}
    assert built["phone"].leftovers() == []  # ... which the resumed run removed with its own


def test_entries_are_the_benchmark_programs_inference_average(built):
    table = LookupTable.load(built["path"])
    for block in space().all_blocks():
        record = table.records[block.key]
        assert record.extra["raw_ms"] == pytest.approx(expected_ms(block), rel=1e-9)
        assert record.latency_ms == pytest.approx(expected_ms(block), rel=1e-9)  # one level: nothing to correct


def test_every_adb_call_names_the_serial_before_its_command(built):
    calls = built["phone"].fake.calls()
    assert calls and all(call == ["devices"] or call[:2] == ["-s", SERIAL] for call in calls)
    shells = [call[3] for call in calls if call[2:3] == ["shell"]]
    runs = [s for s in shells if "--graph=" in s]
    assert runs and all(s.startswith("/data/local/tmp/hwnas-") and "--min_secs=0" in s and "--warmup_min_secs=0" in s
                        and "--use_xnnpack=true" in s and "--num_threads=1" in s for s in runs)


def test_the_header_records_the_phone_and_the_program(built):
    device = LookupTable.load(built["path"]).header["device"]
    assert device["name"] == "litert" and device["target"] == f"adb://{SERIAL}"
    info = device["info"]
    assert info["model"] == "Pixel 7" and info["soc"] == "Tensor G2" and info["abi"] == "arm64-v8a"
    assert info["android"] == "14" and info["governor"] == "performance" and info["cpus"] == list(range(8))
    assert info["cpu_max_mhz"] == [1803] * 4 + [2348] * 2 + [2850] * 2 and info["temperature_c"] == 41.2
    assert info["temperature_end_c"] == 41.2 and info["benchmark"] == "benchmark_model"
    assert {"model", "soc", "abi", "android", "benchmark_sha256", "litert_torch"} <= set(device["comparable"])


def test_validate_through_adb_with_pin_and_keep(built, monkeypatch):
    phone = built["phone"]
    monkeypatch.setenv("HWNAS_ADB", phone.fake.command())
    monkeypatch.setattr(LiteRtDevice, "tflite_model", fake_tflite)
    before = len(phone.fake.pinned(SERIAL))
    result = run("validate", built["path"], "--archs", "4", "--on", phone.url(), "--pin", "big", "--keep",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("{"):])["rows"]
    assert rows[0]["predictor"] == "table (raw sum)" and rows[0]["mean_abs_pct_error"] >= 0
    masks = phone.fake.pinned(SERIAL)[before:]
    assert masks and set(masks) == {"c0"}  # the big cores, 6 and 7
    kept = phone.leftovers()
    assert len(kept) == 1
    folder = phone.fake.tmp(SERIAL) / kept[0]
    assert (folder / "kept").exists() and (folder / "benchmark_model").exists() and any((folder / "models").iterdir())
    again = run("validate", built["path"], "--archs", "4", "--on", phone.url(), "--pin", "6")
    assert again.exit_code == 0, again.output
    assert phone.leftovers() == kept and set(phone.fake.pinned(SERIAL)[before + len(masks):]) == {"40"}
    import shutil

    shutil.rmtree(folder)


def test_the_session_keeps_the_session_contract(tmp_path, monkeypatch):
    from hwnas.profiler.android import AdbSession
    from hwnas.testing.sessions import check_session

    phone = Phone(tmp_path, monkeypatch)
    session = AdbSession(get_device("litert"), QUICK, parse_adb_target(phone.url()))
    try:
        check_session(session, space().all_blocks()[1:3])
    finally:
        session.close()
    session.close()  # twice: nothing left to do
    assert phone.leftovers() == []


def test_devices_on_a_phone(built, monkeypatch):
    phone = built["phone"]
    monkeypatch.setenv("HWNAS_ADB", phone.fake.command())
    before = len(phone.fake.calls())
    result = run("devices", "--on", phone.url(), "--format", "json")
    assert result.exit_code == 0, result.output
    calls = phone.fake.calls()[before:]  # the phone opened (adb devices) and fingerprinted once
    assert calls.count(["devices"]) == 1 and sum(FINGERPRINT_SCRIPT in call for call in calls) == 1, calls
    rows = json.loads(result.stdout[result.stdout.index("{"):])["rows"]
    assert rows[0]["model"] == "Pixel 7" and rows[0]["available"] is True and rows[0]["big_cores"] == "6,7"
    assert rows[0]["fingerprint.soc"] == "Tensor G2" and phone.leftovers() == []
    plain = run("devices", "--on", f"adb://{SERIAL}")
    assert plain.exit_code == 0 and "Pixel 7" in plain.output


def test_a_full_disk_is_one_line_and_the_build_resumes_once_there_is_room(tmp_path, monkeypatch):
    phone = Phone(tmp_path, monkeypatch)
    phone.fake.set(SERIAL, space_bytes=phone.benchmark.stat().st_size + 9000)
    path = tmp_path / "t.jsonl"
    result = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", phone.url(), "-o", path)
    assert result.exit_code == 2, result.output
    error = result.output.strip().splitlines()[-1]  # below the progress lines of the batches it measured
    kept = len(LookupTable.load(path).records)
    assert 0 < kept < len(space().all_blocks())
    assert re.fullmatch(rf"Error: the phone adb://{SERIAL} has no space left for [0-9a-f]+\.tflite in "
                        rf"/data/local/tmp/hwnas-[0-9a-f]+/models \(adb: remote No space left on device\): free "
                        rf"space on the phone's /data; {kept} records are kept in {re.escape(str(path))}: run the "
                        rf"same command again to resume", error), error
    assert phone.leftovers() == []  # the work folder went, though the run failed
    phone.fake.set(SERIAL, space_bytes=None)
    again = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", phone.url(), "-o", path)
    assert again.exit_code == 0, again.output
    assert set(LookupTable.load(path).records) == {b.key for b in space().all_blocks()} and phone.leftovers() == []


def _bad(phone: Phone, tmp_path: Path, url: str, message: str, device: str = "litert") -> None:
    path = tmp_path / "t.jsonl"
    result = run("profile", *SPACE, "--device", device, *CLI_QUICK, "--on", url, "-o", path)
    one_line_error(result, message)
    assert not path.exists()
    for serial in ("FAKE0001", "FAKE0002"):
        if phone.fake.phone(serial).exists():
            assert phone.leftovers(serial) == []


@pytest.mark.parametrize("setup, url, message", [
    (dict(serials=()), "adb://?benchmark={b}", "no Android device is connected: `adb devices` lists none"),
    (dict(state="unauthorized"), "adb://?benchmark={b}",
     "the Android device FAKE0001 is unauthorized: unlock the phone and accept the 'Allow USB debugging?' dialog"),
    (dict(state="offline"), "adb://FAKE0001?benchmark={b}", "the Android device FAKE0001 is offline"),
    (dict(serials=("FAKE0001", "FAKE0002")), "adb://?benchmark={b}",
     "several Android devices are connected (FAKE0001, FAKE0002): name one, e.g. --on adb://FAKE0001"),
    (dict(), "adb://NOPE42?benchmark={b}", "no Android device 'NOPE42' is connected (adb devices lists: FAKE0001 (device))"),
    (dict(), "adb://FAKE0001", "an adb target needs the benchmark program to run on the phone"),
    (dict(), "adb://FAKE0001?benchmark=/nowhere/benchmark_model", "the benchmark program /nowhere/benchmark_model does "
                                                                 "not exist here"),
    (dict(), "adb://FAKE0001?bench={b}", "an adb target takes ?benchmark=PATH"),
    (dict(), "adb://-sFAKE0001?benchmark={b}", "an adb target's serial must be letters, digits, '.', '_', ':' and '-', "
                                              "not starting with '-' (adb would read it as an option), but got '-sFAKE0001'"),
    (dict(), "adb://FAKE 0001?benchmark={b}", "but got 'FAKE 0001'"),
    (dict(), "adb://FAKE0001;reboot?benchmark={b}", "but got 'FAKE0001;reboot'"),
])
def test_bad_phones_and_targets_are_one_line(tmp_path, monkeypatch, setup, url, message):
    phone = Phone(tmp_path, monkeypatch, **setup)
    _bad(phone, tmp_path, url.format(b=phone.benchmark), message)


def test_no_adb_is_one_line(tmp_path, monkeypatch):
    phone = Phone(tmp_path, monkeypatch)
    monkeypatch.setenv("HWNAS_ADB", str(tmp_path / "no" / "adb"))
    _bad(phone, tmp_path, phone.url(), "adb is not installed here (no command ")


def test_a_program_that_does_not_run_on_the_phone_is_one_line(tmp_path, monkeypatch):
    phone = Phone(tmp_path, monkeypatch)
    other = tmp_path / "other" / "benchmark_model"
    other.parent.mkdir()
    other.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))  # a binary of an unknown machine: found by running it
    _bad(phone, tmp_path, phone.url(benchmark=other), f"the benchmark program benchmark_model is not executable on "
                                                      f"adb://{SERIAL} (ABI arm64-v8a): ")
    x86 = tmp_path / "x86" / "benchmark_model"
    x86.parent.mkdir()
    x86.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little") + bytes(200))  # x86-64
    _bad(phone, tmp_path, phone.url(benchmark=x86), f"the benchmark program {x86} cannot run on adb://{SERIAL}: it is "
                                                    f"built for x86_64, but the phone runs arm64-v8a; ?benchmark= must")


def test_a_program_missing_on_the_phone_is_one_line(tmp_path, monkeypatch):
    from hwnas.profiler import adb

    phone = Phone(tmp_path, monkeypatch)
    real = adb.Phone.push
    monkeypatch.setattr(adb.Phone, "push", lambda self, local, remote: None if local == str(phone.benchmark) else
                        real(self, local, remote))  # a phone that lost the file
    _bad(phone, tmp_path, phone.url(), "the benchmark program /data/local/tmp/hwnas-")
    assert "is missing on adb://FAKE0001 after it was copied there (ls: " in run(
        "profile", *SPACE, "--device", "litert", "--on", phone.url(), "-o", tmp_path / "t.jsonl").output


def test_only_litert_runs_on_a_phone_and_pins_must_exist(tmp_path, monkeypatch):
    phone = Phone(tmp_path, monkeypatch)
    _bad(phone, tmp_path, phone.url(), "an adb target times LiteRT models with the phone's benchmark_model: use "
                                       "--device litert, but got device 'ort-mobile'", device="ort-mobile")
    result = run("profile", *SPACE, "--device", "litert", *CLI_QUICK, "--on", phone.url(), "--pin", "9",
                 "-o", tmp_path / "t.jsonl")
    one_line_error(result, f"--pin 9 names CPUs that adb://{SERIAL} lacks: it has CPUs 0,1,2,3,4,5,6,7 (the big "
                           f"cores: 6,7)")
    assert phone.leftovers() == []


def test_targets_parse():
    target = parse_adb_target("adb://emulator-5554?benchmark=/opt/bm")
    assert (target.url, target.serial, target.benchmark) == ("adb://emulator-5554", "emulator-5554", "/opt/bm")
    assert parse_target("adb://").serial is None and parse_target("adb://192.168.1.7:5555").serial == "192.168.1.7:5555"
    with pytest.raises(ConfigError, match="a target must be local or ssh://.*or adb://"):
        parse_target("adb:/x")


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.txt")))
def test_real_benchmark_model_outputs_parse(name):
    timings = parse_benchmark_output((DATA / name).read_text())
    expected = {"tensorflow-issue-42507.txt": (33209.4, 855.0, 49060.0, 34825.1, 50),
                "yuenshome-issue-77.txt": (66767.6, 9933.0, None, 76605.9, 15)}[name]
    assert (timings.inference_avg_us, timings.init_us, timings.first_us, timings.warmup_avg_us,
            timings.runs) == expected


def test_outputs_without_timings_are_refused_and_the_standin_speaks_the_real_format(tmp_path):
    import subprocess

    with pytest.raises(ValueError, match="no 'Inference timings in us' line"):
        parse_benchmark_output("STARTING!\nERROR: Could not open 'x.tflite'.\nBenchmarking failed.\n")
    model = tmp_path / "m.tflite"
    model.write_bytes(bytes(1234))
    program = write_benchmark_standin(tmp_path / "benchmark_model")
    done = subprocess.run([str(program), f"--graph={model}", "--num_runs=7", "--warmup_runs=3"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout == ""  # it logs on stderr, as the real one does
    timings = parse_benchmark_output(done.stderr)
    assert timings.inference_avg_us == standin_us(1234) and timings.runs == 7 and timings.first_us == 3 * standin_us(1234)


def test_fingerprints_parse_from_what_phones_print():
    info = parse_fingerprint("prop model=SM-G991B\nprop board_platform=exynos2100\nprop soc_model=\n"
                             "cpu 0 schedutil 1200000 2210000\ncpu 4 schedutil 2000000 2810000\ncpu 7 - - -\n"
                             "thermal 38500 cpu-0\nthermal 45 battery\nthermal -273000 unused\nthermal 0 x\n")
    assert info["model"] == "SM-G991B" and info["soc"] == "exynos2100" and info["cpus"] == [0, 4, 7]
    assert info["governor"] == "schedutil" and info["cpu_max_mhz"] == [2210, 2810, None]
    assert info["temperature_c"] == 45.0


@pytest.mark.slow
def test_real_conversions_are_pushed_once_and_timed_through_the_program(tmp_path, monkeypatch):
    """The real litert-torch conversion, then the fake phone: each model pushed once, timed from its own file."""
    import torch

    from hwnas.profiler.android import AdbSession

    phone = Phone(tmp_path, monkeypatch)
    monkeypatch.setattr(LiteRtDevice, "tflite_model", REAL_TFLITE)  # real conversions
    block = space().all_blocks()[1]
    device = get_device("litert")
    session = AdbSession(device, QUICK, parse_adb_target(phone.url()))
    try:
        module, example = block.build().eval(), torch.randn(block.input_shape)
        first = session.measure_blocks([block])
        again = [session.measure({"again": (module, example)}, reference=None)["again"] for _ in range(2)]
        models = sorted((phone.fake.tmp(SERIAL) / session.workdir.rsplit("/", 1)[-1] / "models").iterdir())
        pushes = [c for c in phone.fake.calls() if c[2:3] == ["push"] and c[3].endswith(".tflite")]
        assert len(models) == len(pushes) == 3  # the block, the reference and the other copy, each once
        assert all(m.read_bytes()[4:8] == b"TFL3" for m in models)
        timed = {standin_us(m.stat().st_size) for m in models}
        assert round(first[block.key].min_ms * 1e3, 6) in timed and round(again[0].min_ms * 1e3, 6) in timed
        assert again[0].min_ms == again[1].min_ms
    finally:
        session.close()
    assert phone.leftovers() == []


def test_the_fake_adb_keeps_adbs_command_contract(tmp_path):
    import shlex
    import subprocess

    fake = FakeAdb.create(tmp_path / "adb", serials=("AAA1", "BBB2"))
    fake.add_phone("CCC3", state="unauthorized")

    def adb(*args):
        done = subprocess.run([*shlex.split(fake.command()), *args], capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    assert adb("devices") == (0, "List of devices attached\nAAA1\tdevice\nBBB2\tdevice\nCCC3\tunauthorized\n\n", "")
    assert adb("shell", "true") == (1, "", "error: more than one device/emulator\n")
    assert adb("-s", "ZZZ9", "shell", "true") == (1, "", "error: device 'ZZZ9' not found\n")
    code, _, err = adb("-s", "CCC3", "shell", "true")
    assert code == 1 and err.splitlines() == ["error: device unauthorized.", "This adb server's $ADB_VENDOR_KEYS is not "
                                              "set", "Try 'adb kill-server' if that seems wrong.",
                                              "Otherwise check for a confirmation dialog on your device."]
    assert adb("-s", "AAA1", "get-state") == (0, "device\n", "")
    assert adb("-s", "AAA1", "shell", "echo", "hi", ">", "/data/local/tmp/x;", "exit", "3") == (3, "", "")
    assert (fake.tmp("AAA1") / "x").read_text() == "hi\n"
    code, out, _ = adb("-s", "AAA1", "pull", "/data/local/tmp/x", str(tmp_path / "back"))
    assert code == 0 and (tmp_path / "back").read_text() == "hi\n" and "1 file pulled" in out
    assert adb("-s", "AAA1", "shell", "getprop", "ro.product.model") == (0, "Pixel 7\n", "")
    fake.set("AAA1", drop_after=1)
    assert adb("-s", "AAA1", "shell", "true")[0] == 0
    assert adb("-s", "AAA1", "shell", "true") == (1, "", "error: device 'AAA1' not found\n")
    assert "AAA1" not in adb("devices")[1]
    fake.set("BBB2", space_bytes=10)
    (tmp_path / "big").write_bytes(bytes(11))
    assert adb("-s", "BBB2", "push", str(tmp_path / "big"), "/data/local/tmp/big") == (
        1, "", f"adb: error: failed to copy '{tmp_path / 'big'}' to '/data/local/tmp/big': remote No space left on "
               f"device\n")
    fake.set("BBB2", state="gone")
    fake.set("CCC3", state="gone")
    assert adb("shell", "true") == (1, "", "error: no devices/emulators found\n")
