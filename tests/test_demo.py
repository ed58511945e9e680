"""`hwnas demo` end to end on a tiny Fashion-MNIST written by the test."""

import functools
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hwnas import demo
from hwnas.cli import cli
from hwnas.profiler.protocol import Protocol
from hwnas.tables import LookupTable


def test_demo_runs_the_whole_pipeline(tmp_path, write_fashion_mnist, monkeypatch):
    data = write_fashion_mnist(tmp_path / "fashion", 160, 20)
    out = tmp_path / "demo"
    # the demo's own protocol is about a minute on a real space; the pipeline is what is tested here
    quick = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, remeasure=0)
    monkeypatch.setattr(demo, "DemoSettings", functools.partial(demo.DemoSettings, protocol=quick))
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--data-root", str(data), "--space", "spos",
                                      "--width", "0.25", "--resolution", "8", "--device", "cpu", "--epochs", "1",
                                      "--population", "4", "--generations", "2"])
    assert result.exit_code == 0, result.output
    table = LookupTable.load(out / "spos-fashion-mnist-cpu.jsonl")
    assert table.space.profile.resolution == 8 and table.space.profile.channels == 1
    config = json.loads((out / "supernet" / "config.json").read_text())
    assert config["config"]["resolution"] == 8 and config["config"]["weight_sharing"] == "entangled"
    sweep = sorted(p for p in (out / "search").iterdir() if p.is_dir())
    assert len(sweep) == 3
    for search in sweep:
        candidates = pd.read_csv(search / "candidates.csv")
        best = json.loads((search / "best.json").read_text())
        assert len(candidates) >= 4 and candidates["feasible"].all()
        target = json.loads((search / "config.json").read_text())["target_latency_ms"]
        assert best["latency_ms"]["cpu"] <= target
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "hwnas train --space spos --dataset fashion-mnist --width 0.25 --resolution 8" in result.output
    assert "total" in result.output
    assert pytest.approx(table.header["protocol"]["min_block_s"]) == 0.001


def test_demo_refuses_bad_settings_before_any_work(tmp_path, write_fashion_mnist):
    data = write_fashion_mnist(tmp_path / "fashion", 20, 10)
    result = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "demo"), "--data-root", str(data),
                                      "--epochs", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: epochs must be >= 1, but got epochs=0"]
    assert not (tmp_path / "demo" / "supernet").exists()
