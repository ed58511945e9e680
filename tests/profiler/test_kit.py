"""`hwnas validate TABLE --export N -o KIT`: networks to measure where hwnas cannot run, read back by
`hwnas table adapt`."""

import hashlib
import json
import time

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from hwnas.space import get_space
from hwnas.tables import LookupTable
from hwnas.testing import synthetic_table
from cli_helpers import run, one_line_error

SPACE = get_space("fbnet", "cifar10", width=0.25, resolution=16)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return synthetic_table(SPACE, device="board", path=tmp_path_factory.mktemp("t") / "board.jsonl")


@pytest.fixture(scope="module")
def kit(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("k") / "kit"
    result = run("validate", table.path, "--export", "10", "--seed", "4", "-o", out, "--no-litert")
    assert result.exit_code == 0, result.output
    return out


def test_the_kit_holds_every_network_its_manifest_and_a_csv_to_fill(table, kit):
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["kind"] == "hwnas-measurement-kit" and manifest["table"]["digest"] == table.digest()
    assert manifest["space"] == SPACE.describe() and manifest["input"]["shape"] == [1, 3, 16, 16]
    networks = manifest["networks"]
    assert len(networks) == 10 == len({n["arch"] for n in networks})
    frame = pd.read_csv(kit / "measured.csv", keep_default_na=False)
    assert list(frame.columns) == ["file", "arch", "latency_ms"] and (frame["latency_ms"] == "").all()
    assert list(frame["arch"]) == [n["arch"] for n in networks]
    for n in networks:
        data = (kit / n["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == n["sha256"]
        assert n["table_ms"] == pytest.approx(table.predict(n["arch"]).latency_ms)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"input0": np.zeros((1, 3, 16, 16), np.float32)})
        assert out.shape == (1, 10)
    assert "hwnas table adapt" in (kit / "README.txt").read_text()
    assert not [p for p in kit.parent.iterdir() if p.name.startswith(".kit.")]  # no temporary left


def test_a_filled_kit_adapts_the_table(table, kit, tmp_path):
    """The "device" is ONNX Runtime here: each file timed, its median written in, read back by table adapt."""
    frame = pd.read_csv(kit / "measured.csv", keep_default_na=False)
    medians = []
    for name in frame["file"]:
        session = ort.InferenceSession(str(kit / name), providers=["CPUExecutionProvider"])
        feed = {"input0": np.zeros((1, 3, 16, 16), np.float32)}
        times = []
        for _ in range(7):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        medians.append(1e3 * float(np.median(times)))
    frame["latency_ms"] = medians
    frame.to_csv(tmp_path / "measured.csv", index=False)
    result = run("table", "adapt", table.path, tmp_path / "measured.csv", "-o", tmp_path / "adapted.jsonl")
    assert result.exit_code == 0, result.output
    adapted = LookupTable.load(tmp_path / "adapted.jsonl")
    assert adapted.header["adapted"]["measurements"]["networks"] == 10


def test_an_existing_kit_is_never_overwritten(table, kit):
    before = (kit / "measured.csv").read_bytes()
    one_line_error(run("validate", table.path, "--export", "3", "-o", kit), "holds files")
    assert (kit / "measured.csv").read_bytes() == before


def test_a_kit_with_litert_models_holds_the_same_networks_as_tflite(table, tmp_path):
    pytest.importorskip("litert_torch", reason="the hwnas[litert] extra is not installed here")
    from hwnas.timing.litert import outputs

    result = run("validate", table.path, "--export", "2", "-o", tmp_path / "kit", "--litert")
    assert result.exit_code == 0, result.output
    kit = tmp_path / "kit"
    manifest = json.loads((kit / "manifest.json").read_text())
    assert set(manifest["format"]) == {"onnx", "litert"}
    frame = pd.read_csv(kit / "measured.csv", keep_default_na=False)
    assert list(frame.columns) == ["file", "litert_file", "arch", "latency_ms"]
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    for n in manifest["networks"]:
        data = (kit / n["litert_file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == n["litert_sha256"] and n["litert_file"].endswith(".tflite")
        (lite,) = outputs(data, [x]).values()
        session = ort.InferenceSession(str(kit / n["file"]), providers=["CPUExecutionProvider"])
        (onnx_out,) = session.run(None, {"input0": x})
        np.testing.assert_allclose(lite, onnx_out, rtol=1e-3, atol=1e-3)  # one network in both formats
    assert "models/net_*.tflite" in (kit / "README.txt").read_text()


def test_a_kit_without_the_converter_names_the_extra(table, tmp_path, monkeypatch):
    from hwnas.profiler import kit as kit_module

    monkeypatch.setattr(kit_module, "litert_available", lambda: False)
    one_line_error(run("validate", table.path, "--export", "2", "-o", tmp_path / "kit", "--litert"),
                   "pip install 'hwnas[litert]'")
    assert not (tmp_path / "kit").exists()


@pytest.mark.parametrize("args,message", [
    (["--litert"], "--litert applies to a kit"),
    (["--export", "3"], "--export N and -o KIT go together"),
    (["-o", "KIT"], "--export N and -o KIT go together"),
    (["--export", "3", "-o", "KIT", "--save"], "but got --save, which measures here"),
    (["--export", "3", "-o", "KIT", "--repeats", "2"], "but got --repeats"),
    (["--export", "3", "-o", "KIT", "--on", "local"], "but got --on"),
    (["--export", "0", "-o", "KIT"], "--export"),
])
def test_bad_export_input_is_one_line(table, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error(run("validate", table.path, *args), message)
    assert not (tmp_path / "KIT").exists()


def test_a_full_disk_is_said_of_the_kit_and_leaves_nothing(table, tmp_path, monkeypatch):
    from hwnas.errors import OutputError
    from hwnas.profiler import kit as kit_module

    def full(path, data):
        raise OutputError(f"{path} could not be written (No space left on device); nothing was written",
                          "No space left on device")

    monkeypatch.setattr(kit_module, "write_atomic", full)
    result = run("validate", table.path, "--export", "2", "-o", tmp_path / "kit", "--no-litert")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == (  # after the progress line
        f"Error: the measurement kit {tmp_path / 'kit'} could not be written (No space left on device); nothing was "
        f"left there")
    assert list(tmp_path.iterdir()) == []
