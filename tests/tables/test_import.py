"""`hwnas table import hw-nas-bench`: HW-NAS-Bench's published FBNet tables as hwnas tables, energy as a
search constraint and a chart axis.

The expected sums are computed here from HW-NAS-Bench's own layer list (its FBNet definition: channels and
strides per layer, CIFAR inputs keeping the stem and the first stride-2 layer at stride 1), independently of
how hwnas lays out its space, so a mapping that put a block at the wrong size would be caught.
"""

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

import hwnas.search  # noqa: F401  (imported before a test replaces open_evaluator, which it imports by name)
import hwnas.training
from hwnas.errors import ConfigError, TableError
from hwnas.space import REFERENCES
from hwnas.tables import LookupTable
from hwnas.tables.imports import BUNDLED, import_hw_nas_bench
from hwnas.testing import SyntheticEvaluator
from cli_helpers import run, one_line_error

# HW-NAS-Bench's FBNet: (layers, channels, stride) per stage after a 16-channel stem; kernel, expansion, group
STAGES = [(1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1)]
OPS = {"k3_e1": (3, 1, 1), "k3_e1_g2": (3, 1, 2), "k3_e3": (3, 3, 1), "k3_e6": (3, 6, 1), "k5_e1": (5, 1, 1),
       "k5_e1_g2": (5, 1, 2), "k5_e3": (5, 3, 1), "k5_e6": (5, 6, 1)}
SOURCE = json.loads(BUNDLED.read_text())


def source_sum(ops, device_metric: str, input_name: str) -> float:
    """HW-NAS-Bench's figure of an architecture, from its key format and layer list."""
    table = SOURCE[device_metric]
    cifar = input_name != "imagenet"
    size = 32 if cifar else 224
    classes = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[input_name]
    head = 1504 if cifar else 1984
    stem_stride = 1 if cifar else 2
    total = table[f"ConvNorm_H{size}_W{size}_Cin3_Cout16_kernel3_stride{stem_stride}_group1"]
    size //= stem_stride
    cin, layer = 16, 0
    for stage, (n, cout, stride) in enumerate(STAGES):
        for i in range(n):
            s = stride if i == 0 and not (cifar and stage == 1) else 1
            op = ops[layer]
            if op == "skip":
                total += table[f"Skip_H{size}_W{size}_Cin{cin}_Cout{cout}_stride{s}"]
            else:
                k, e, g = OPS[op]
                total += table[f"ConvBlock_H{size}_W{size}_Cin{cin}_Cout{cout}_exp{e}_kernel{k}_stride{s}_group{g}"]
            cin, size, layer = cout, -(-size // s), layer + 1
    total += table[f"ConvNorm_H{size}_W{size}_Cin352_Cout{head}_kernel1_stride1_group1"]
    total += table[f"AvgP_H{size}_W{size}_Cin{head}_Cout{head}_kernel{size}_stride1"]
    return total + table[f"FC_Cin{head}_Cout{classes}"]


def architectures(space, n=300, seed=0):
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    return archs + [space.validate(REFERENCES.get(name).arch) for name in ("FBNet-A", "FBNet-B", "FBNet-C")]


@pytest.mark.parametrize("device,input_name", [("pixel3", "cifar100"), ("raspi4", "cifar10"),
                                               ("pixel3", "imagenet"), ("fpga", "imagenet")])
def test_an_imported_table_predicts_the_sources_sum_for_every_architecture(device, input_name, tmp_path):
    result = run("table", "import", "hw-nas-bench", "--device", device, "--input", input_name,
                 "-o", tmp_path / "t.jsonl")
    assert result.exit_code == 0, result.output
    table = LookupTable.load(tmp_path / "t.jsonl")
    space = table.space
    assert (space.name, space.profile.name, space.config["width"]) == ("fbnet", input_name, 1.0)
    assert len(table.records) == len(space.all_blocks())
    archs = architectures(space)
    expected = np.array([source_sum(a.ops, f"{device}_latency", input_name) for a in archs])
    one_by_one = np.array([table.predict(a).latency_ms for a in archs])
    at_once = table.predict_indices(np.array([space.indices(a) for a in archs]))
    np.testing.assert_allclose(one_by_one, expected, rtol=1e-12)
    np.testing.assert_allclose(at_once, expected, rtol=1e-12)
    # provenance in the header, and MACs are hwnas's own counts
    imported = table.header["imported"]
    assert imported["source"] == "hw-nas-bench" and imported["device"] == device
    assert imported["metrics"] == {"latency": {"key": f"{device}_latency", "unit": "ms"}}
    assert "not measured" in imported["note"] and len(imported["sha256"]) == 64
    assert table.device_name == device and not table.has_energy
    assert all(r.macs > 0 for r in table.records.values() if r.block.op.family != "skip")


def test_energy_is_carried_and_predicted(tmp_path):
    table = import_hw_nas_bench(BUNDLED, "eyeriss", "cifar100", metrics=("energy",))
    assert table.has_energy and set(table.header["imported"]["metrics"]) == {"latency", "energy"}
    table.save(tmp_path / "e.jsonl")
    table = LookupTable.load(tmp_path / "e.jsonl")
    archs = architectures(table.space, 100)
    energy = np.array([source_sum(a.ops, "eyeriss_energy", "cifar100") for a in archs])
    np.testing.assert_allclose([table.predict_energy(a) for a in archs], energy, rtol=1e-12)
    np.testing.assert_allclose(table.energy_indices(np.array([table.space.indices(a) for a in archs])), energy,
                               rtol=1e-12)
    latency = np.array([source_sum(a.ops, "eyeriss_latency", "cifar100") for a in archs])
    np.testing.assert_allclose([table.predict(a).latency_ms for a in archs], latency, rtol=1e-12)


def test_a_record_with_a_negative_energy_is_refused(tmp_path):
    table = import_hw_nas_bench(BUNDLED, "fpga", "cifar10", metrics=("latency", "energy"))
    table.save(tmp_path / "e.jsonl")
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    record = json.loads(lines[3])
    record["energy_mj"] = -1.0
    lines[3] = json.dumps(record)
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match="energy_mj must be a finite number >= 0"):
        LookupTable.load(tmp_path / "bad.jsonl")
    with pytest.raises(TableError, match="latency only"):
        import_hw_nas_bench(BUNDLED, "pixel3", "cifar10").require_energy()


def test_show_compare_and_adapt_take_imported_tables(tmp_path):
    for device in ("pixel3", "raspi4"):
        assert run("table", "import", "hw-nas-bench", BUNDLED, "--device", device, "--input", "cifar100",
                   "-o", tmp_path / f"{device}.jsonl").exit_code == 0
    shown = run("table", "show", tmp_path / "pixel3.jsonl")
    assert shown.exit_code == 0 and "imported, not measured" in shown.output and "HW-NAS-Bench" in shown.output
    compared = run("table", "compare", tmp_path / "pixel3.jsonl", tmp_path / "raspi4.jsonl", "--archs", "200",
                   "--format", "json")
    assert compared.exit_code == 0, compared.output
    assert 0.5 < json.loads(compared.output)["summary"]["arch_kendall_tau"] <= 1
    # the Raspberry Pi's sums of 12 networks adapt the Pixel 3's table
    pixel3, raspi4 = (LookupTable.load(tmp_path / f"{d}.jsonl") for d in ("pixel3", "raspi4"))
    archs = architectures(pixel3.space, 12, seed=3)[:12]
    pd.DataFrame({"arch": [str(a) for a in archs],
                  "latency_ms": [raspi4.predict(a).latency_ms for a in archs]}).to_csv(tmp_path / "m.csv", index=False)
    adapted = run("table", "adapt", tmp_path / "pixel3.jsonl", tmp_path / "m.csv", "-o", tmp_path / "a.jsonl")
    assert adapted.exit_code == 0, adapted.output
    assert LookupTable.load(tmp_path / "a.jsonl").header["imported"]["device"] == "pixel3"


def test_validate_refuses_an_imported_table(tmp_path):
    assert run("table", "import", "hw-nas-bench", "--device", "pixel3", "--input", "cifar10",
               "-o", tmp_path / "p.jsonl").exit_code == 0
    one_line_error(run("validate", tmp_path / "p.jsonl", "--archs", "4"), "was imported (hw-nas-bench, device pixel3)")


def _edited(tmp_path, edit):
    data = json.loads(BUNDLED.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("args,message", [
    (["--device", "iphone", "--input", "cifar100"], "a device must be one of those"),
    (["--device", "pixel3", "--metric", "energy", "--input", "cifar100"], "must hold pixel3_energy for --metric energy"),
    (["--device", "pixel3", "--metric", "power", "--input", "cifar100"], "Invalid value for '--metric'"),
    (["--device", "pixel3", "--input", "fashion-mnist"], "Invalid value for '--input'"),
])
def test_bad_import_is_one_line_exit_2_and_writes_nothing(args, message, tmp_path):
    one_line_error(run("table", "import", "hw-nas-bench", *args, "-o", tmp_path / "t.jsonl"), message)
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["pixel3_latency"].pop("FC_Cin1504_Cout100"), "pixel3_latency lacks FC_Cin1504_Cout100 (head block"),
    (lambda d: d["pixel3_latency"].pop("Skip_H32_W32_Cin16_Cout24_stride1"),
     "lacks Skip_H32_W32_Cin16_Cout24_stride1 (layer block"),
    (lambda d: d["pixel3_latency"].update({"FC_Cin1504_Cout100": -0.5}), "holds finite figures >= 0"),
    (lambda d: d["pixel3_latency"].update({"FC_Cin1504_Cout100": "fast"}), "holds finite figures >= 0"),
    (lambda d: d.update({"pixel3_latency": [1, 2]}), "maps it to list"),
    (lambda d: [d.pop(k) for k in list(d)] and d.update({"space": "fbnet"}), "but"),
])
def test_a_source_with_a_missing_or_bad_key_is_one_line(edit, message, tmp_path):
    source = _edited(tmp_path, edit)
    one_line_error(run("table", "import", "hw-nas-bench", source, "--device", "pixel3", "--input", "cifar100",
                       "-o", tmp_path / "t.jsonl"), message)
    assert not (tmp_path / "t.jsonl").exists()


def test_files_of_another_format_are_one_line(tmp_path):
    table = tmp_path / "table.jsonl"
    import_hw_nas_bench(BUNDLED, "pixel3", "cifar10").save(table)
    for source, message in ((table, "must be JSON"), (tmp_path / "missing.json", "must exist"),
                            (_edited(tmp_path, lambda d: None), None)):
        result = run("table", "import", "hw-nas-bench", source, "--device", "pixel3", "--input", "cifar10",
                     "-o", tmp_path / "out.jsonl")
        if message is None:
            assert result.exit_code == 0, result.output
        else:
            one_line_error(result, message)
            assert not (tmp_path / "out.jsonl").exists()
    source = _edited(tmp_path, lambda d: None)
    one_line_error(run("table", "import", "hw-nas-bench", source, "--device", "pixel3", "--input", "cifar10",
                       "-o", source), "must not replace its source")
    assert json.loads(source.read_text()) == SOURCE
    with pytest.raises(ConfigError, match="a metric must be one of latency, energy"):
        import_hw_nas_bench(BUNDLED, "pixel3", "cifar10", metrics=("power",))


# ----- energy as a search constraint and a chart axis ----------------------------------------------------------

@pytest.fixture
def fake_supernet(monkeypatch):
    monkeypatch.setattr(hwnas.training, "open_evaluator", lambda run_dir, *, space, **o: SyntheticEvaluator(space))


@pytest.fixture
def energy_tables(tmp_path):
    import_hw_nas_bench(BUNDLED, "eyeriss", "cifar100", metrics=("energy",)).save(tmp_path / "eyeriss.jsonl")
    import_hw_nas_bench(BUNDLED, "pixel3", "cifar100").save(tmp_path / "pixel3.jsonl")
    return tmp_path


FAST = ["--population", "12", "--generations", "3", "--parents", "4"]


@pytest.mark.usefixtures("one_thread", "fake_supernet")
@pytest.mark.parametrize("target", [None, "6ms"])
def test_search_under_an_energy_bound(energy_tables, target):
    root = energy_tables
    out = root / f"s-{target}"
    result = run("search", "--space", "fbnet", "--table", root / "eyeriss.jsonl", "--table", root / "pixel3.jsonl",
                 "--max-energy", "4.2mJ", *(["--target-latency", target] if target else []), "--supernet", "run/",
                 *FAST, "-o", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out / "candidates.csv")
    assert "energy_mj[eyeriss]" in frame and "energy_mj[pixel3]" not in frame
    table = LookupTable.load(root / "eyeriss.jsonl")
    energy = np.array([table.predict_energy(a.split("-")) for a in frame["arch"]])
    np.testing.assert_allclose(frame["energy_mj[eyeriss]"], energy, rtol=1e-9)
    latency = frame["latency_ms[eyeriss]"].to_numpy()
    limit = 6.0 if target else math.inf
    assert ((energy <= 4.2) & (latency <= limit) == frame["feasible"]).all() and frame["feasible"].all()
    # the bound binds: without it, the slowest architectures spend more than 4.2 mJ
    assert table.energy_indices(np.array([[3] * 22, [7] * 22])).min() > 4.2
    best = json.loads((out / "best.json").read_text())
    assert best["energy_mj"]["eyeriss"] <= 4.2
    config = json.loads((out / "config.json").read_text())
    assert config["max_energy_mj"] == 4.2
    chart = run("plot", out, "--x", "energy", "-o", root / "energy.png", "--format", "json")
    assert chart.exit_code == 0, chart.output
    assert (root / "energy.png").stat().st_size > 0
    points = json.loads(chart.output)["rows"]
    assert points and all(p["energy_mj"] <= 4.2 + 1e-9 for p in points)


@pytest.mark.usefixtures("one_thread", "fake_supernet")
@pytest.mark.parametrize("args,message", [
    (["--table", "pixel3.jsonl", "--max-energy", "4mJ"], "holds latency only"),
    (["--table", "eyeriss.jsonl", "--max-energy", "0.1mJ"], "the energy_mj bound must be reachable"),
    (["--table", "eyeriss.jsonl", "--max-energy", "4 watts"], "an energy bound must be a positive energy"),
    (["--table", "eyeriss.jsonl"], "a search needs a bound: --target-latency, or --max-energy alone"),
    (["--table", "eyeriss.jsonl", "--max-energy", "4mJ", "--strategy", "differentiable"],
     "--max-energy filters the candidates of random and evolution search"),
])
def test_bad_energy_bounds_are_one_line(energy_tables, args, message, monkeypatch):
    monkeypatch.chdir(energy_tables)
    one_line_error(run("search", "--space", "fbnet", *args, "--supernet", "run/", *FAST, "-o", "out"), message)
    assert not (energy_tables / "out").exists()


@pytest.mark.usefixtures("one_thread", "fake_supernet")
def test_an_energy_chart_needs_energy(energy_tables):
    root = energy_tables
    assert run("search", "--space", "fbnet", "--table", root / "pixel3.jsonl", "--target-latency", "20ms",
               "--supernet", "run/", *FAST, "-o", root / "s").exit_code == 0
    one_line_error(run("plot", root / "s", "--x", "energy", "-o", root / "c.png"), "an energy chart needs")
    one_line_error(run("plot", root / "s", "--x", "energy", "--measured", "-o", root / "c.png"),
                   "--measured times each front's latency")
    assert not (root / "c.png").exists()


@pytest.mark.usefixtures("one_thread")
def test_search_and_report_on_an_imported_table_with_a_real_supernet(tmp_path):
    """The whole path a user without the phone takes: import the Pixel 3's CIFAR-10 table, search on it with a
    (tiny, one-epoch, synthetic-data) fbnet supernet of that space, and retrain what it found in `report`."""
    from hwnas.testing import tiny_supernet_run

    supernet = tiny_supernet_run(tmp_path / "supernet", space="fbnet", width=1.0, synthetic_size=16, batch_size=8)
    assert run("table", "import", "hw-nas-bench", "--device", "pixel3", "--input", "cifar10",
               "-o", tmp_path / "p3.jsonl").exit_code == 0
    table = LookupTable.load(tmp_path / "p3.jsonl")
    target = float(np.percentile([table.predict(a).latency_ms for a in architectures(table.space, 200)], 30))
    found = run("search", "--space", "fbnet", "--table", tmp_path / "p3.jsonl", "--target-latency", f"{target:.4f}ms",
                "--supernet", supernet, "--strategy", "random", "--samples", "3", "--val-batches", "1",
                "--no-references", "-o", tmp_path / "s")
    assert found.exit_code == 0, found.output
    best = json.loads((tmp_path / "s" / "best.json").read_text())
    assert best["latency_ms"]["pixel3"] <= target
    assert best["latency_ms"]["pixel3"] == pytest.approx(source_sum(best["ops"], "pixel3_latency", "cifar10"))
    reported = run("report", tmp_path / "s", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                   "--no-progress", "--threads", "1", "--random", "0", "--no-references", "-o", tmp_path / "r")
    assert reported.exit_code == 0, reported.output
    frame = pd.read_csv(tmp_path / "r" / "report.csv")
    assert frame["latency_ms[pixel3]"].tolist() == pytest.approx([best["latency_ms"]["pixel3"]])
