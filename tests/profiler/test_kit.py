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
    result = run("validate", table.path, "--export", "10", "--seed", "4", "-o", out, "--format", "json")
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


@pytest.mark.parametrize("args,message", [
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
