"""Tables others published, imported as hwnas lookup tables: HW-NAS-Bench's FBNet tables.

HW-NAS-Bench (Li et al., "HW-NAS-Bench: Hardware-Aware Neural Architecture Search Benchmark", ICLR 2021)
published per-block latency (ms) and energy (mJ) of exactly hwnas's FBNet space (width 1.0) for real devices
(Pixel 3, Raspberry Pi 4, an edge GPU and TPU) and accelerators' simulators (Eyeriss, an FPGA), at CIFAR and
ImageNet inputs. Its JSON maps ``{device}_{metric}`` to ``{block key: value}``, a key naming one block with
its input size, as its own ``fbnet_get_metrics`` sums them (stem + 22 layer entries + head conv + pooling +
classifier):

- ``ConvNorm_H{h}_W{w}_Cin{c}_Cout{c}_kernel{k}_stride{s}_group{g}``: the stem and the head's 1x1 conv;
- ``ConvBlock_H{h}_W{w}_Cin{c}_Cout{c}_exp{e}_kernel{k}_stride{s}_group{g}``: one candidate op of a layer;
- ``Skip_H{h}_W{w}_Cin{c}_Cout{c}_stride{s}``: the skip candidate of a layer;
- ``AvgP_H{h}_W{w}_Cin{c}_Cout{c}_kernel{k}_stride1`` and ``FC_Cin{c}_Cout{classes}``: pooling, classifier.

An imported table holds one record per hwnas block whose latency is the sum of the source's entries for it
(the head block: conv + pooling + classifier), so it predicts exactly the source's sum for every
architecture; MACs and params are hwnas's own counts. The header says where every figure came from and
that nothing was measured; ``energy_mj`` rides in the records when the source has it.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from hwnas import __version__
from hwnas.errors import ConfigError, TableError, quoted
from hwnas.readers import parse_json, read_text
from hwnas.space import SearchSpace, block_cost, get_space
from hwnas.space.block import BlockSpec
from hwnas.tables.table import KIND, MAX_BLOCK, SCHEMA_VERSION, LookupTable, Record

SOURCE = "hw-nas-bench"
CITATION = "HW-NAS-Bench (Li et al., ICLR 2021), FBNet space"
METRICS = {"latency": "ms", "energy": "mJ"}
#: input profiles HW-NAS-Bench's FBNet tables cover (its CIFAR keys at 32x32, its ImageNet keys at 224x224)
INPUTS = ("cifar10", "cifar100", "imagenet")
ENERGY = "energy_mj"
#: the copy of HW-NAS-Bench's FBNet tables bundled with hwnas (provenance in its README)
BUNDLED = Path(__file__).parent / "published" / "hw-nas-bench-fbnet.json"


def read_source(path: str | Path) -> dict[str, dict[str, float]]:
    """HW-NAS-Bench's JSON: ``{device}_{metric}`` -> ``{block key: number}``; anything else is one TableError
    naming the file and what is wrong."""
    path = Path(path)
    what = "HW-NAS-Bench's FBNet JSON"
    data = parse_json(read_text(path, what, TableError), path, what, TableError)
    tables = {k: v for k, v in data.items() if _metric_of(k)} if isinstance(data, dict) else {}
    if not tables:
        found = (", ".join(sorted(data)[:4]) or "nothing") if isinstance(data, dict) else type(data).__name__
        raise TableError(f"{what} maps keys such as pixel3_latency to per-block figures, but {path} holds {found}")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise TableError(f"{what} maps {name} to an object of block keys, but {path} maps it to "
                             f"{type(table).__name__}")
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
                raise TableError(f"{what} holds finite figures >= 0, but {path} has {name}[{quoted(key)}] = {quoted(value)}")
            if value > MAX_BLOCK:
                raise TableError(f"{what} holds figures of at most {MAX_BLOCK:g} per block, but {path} has "
                                 f"{name}[{quoted(key)}] = {quoted(value)}")
    return tables


def _metric_of(name: str) -> str | None:
    device, _, metric = name.rpartition("_")
    return metric if device and metric in METRICS else None


def devices_of(tables: dict[str, dict]) -> dict[str, list[str]]:
    """Device -> the metrics the source holds for it."""
    out: dict[str, list[str]] = {}
    for name in sorted(tables):
        device, _, metric = name.rpartition("_")
        out.setdefault(device, []).append(metric)
    return out


def source_keys(space: SearchSpace, block: BlockSpec, role: str) -> list[str]:
    """The source's keys whose figures sum to ``block``'s: ``role`` is "stem", "layer" or "head"."""
    h, w, cin, cout, s = block.height, block.width, block.cin, block.cout, block.stride
    op = block.op.kwargs
    if role == "stem":
        return [f"ConvNorm_H{h}_W{w}_Cin{cin}_Cout{cout}_kernel{op.get('k', 3)}_stride{s}_group1"]
    if role == "head":
        feat = op["feat"]
        return [f"ConvNorm_H{h}_W{w}_Cin{cin}_Cout{feat}_kernel1_stride1_group1",
                f"AvgP_H{h}_W{w}_Cin{feat}_Cout{feat}_kernel{h}_stride1", f"FC_Cin{feat}_Cout{cout}"]
    if block.op.family == "skip":
        return [f"Skip_H{h}_W{w}_Cin{cin}_Cout{cout}_stride{s}"]
    return [f"ConvBlock_H{h}_W{w}_Cin{cin}_Cout{cout}_exp{op['e']}_kernel{op['k']}_stride{s}_group{op.get('g', 1)}"]


def import_space(input_name: str) -> SearchSpace:
    """The FBNet space HW-NAS-Bench's tables describe: width 1.0, hwnas's defaults, at ``input_name``."""
    if input_name not in INPUTS:
        raise ConfigError(f"HW-NAS-Bench's FBNet tables cover inputs {', '.join(INPUTS)}, but got {quoted(input_name)}")
    return get_space("fbnet", input_name)


def import_hw_nas_bench(path: str | Path, device: str, input_name: str, *,
                        metrics: tuple[str, ...] = ("latency",)) -> LookupTable:
    """An hwnas table of the FBNet space (width 1.0) at ``input_name`` from HW-NAS-Bench's JSON at ``path``:
    latency per block from ``{device}_latency``, and with ``"energy"`` in ``metrics`` energy per block from
    ``{device}_energy``. A device, metric or block key the source lacks is one TableError naming it."""
    path = Path(path)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"a metric must be one of {', '.join(METRICS)}, but got {unknown[0]!r}")
    space = import_space(input_name)
    tables = read_source(path)
    devices = devices_of(tables)
    if device not in devices:
        raise TableError(f"a device must be one of those {path} holds ({', '.join(devices)}), but got {quoted(device)}")
    wanted = ("latency", *[m for m in metrics if m != "latency"])  # every table predicts latency
    for metric in wanted:
        if metric not in devices[device]:
            raise TableError(f"{path} must hold {device}_{metric} for --metric {metric}, but holds only "
                             f"{', '.join(f'{device}_{m}' for m in devices[device])}")
    roles = [("stem", f.block) for f in space.stem] + [("head", f.block) for f in space.head]
    roles += [("layer", layer.block(op)) for layer in space.layers for op in layer.op_names]
    records: dict[str, Record] = {}
    for role, block in roles:
        if block.key in records:
            continue
        keys = source_keys(space, block, role)
        figures = {}
        for metric in wanted:
            table = tables[f"{device}_{metric}"]
            missing = next((k for k in keys if k not in table), None)
            if missing is not None:
                raise TableError(f"{path} must hold every block of the {input_name} FBNet space, but "
                                 f"{device}_{metric} lacks {missing} ({role} block {block.key})")
            figures[metric] = math.fsum(float(table[k]) for k in keys)
            if figures[metric] > MAX_BLOCK:
                raise TableError(f"a block's {metric} must be at most {MAX_BLOCK:g}, but {path}'s {device}_{metric} "
                                 f"sums to {figures[metric]:g} for {block.key}")
        cost = block_cost(block)
        extra = {"source_keys": keys, **({ENERGY: figures["energy"]} if "energy" in figures else {})}
        records[block.key] = Record(block, figures["latency"], 0.0, 0, 0, cost.macs, cost.params, extra)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    imported = {"source": SOURCE, "citation": CITATION, "file": str(path), "sha256": digest, "device": device,
                "metrics": {m: {"key": f"{device}_{m}", "unit": METRICS[m]} for m in wanted},
                "note": "imported, not measured: figures as published, summed per block"}
    header = {"type": "header", "kind": KIND, "schema": SCHEMA_VERSION, "hwnas": __version__,
              "device": {"name": device, "comparable": {"device": device, "source": SOURCE},
                         "info": {"device": device, "source": CITATION}},
              "space": space.describe(), "protocol": {"imported": SOURCE}, "batch": 1, "dtype": "float32",
              "calibration": None, "imported": imported}
    return LookupTable(header, records.values())


def imported_from(table: LookupTable) -> str | None:
    """"source (device), imported, not measured" for an imported table, None for a measured one."""
    info = table.header.get("imported")
    if not isinstance(info, dict):
        return None
    return f"{info.get('citation', info.get('source', '?'))}, device {info.get('device', '?')}: imported, not measured"
