"""A measurement kit: random whole networks of a table's space, to be timed where hwnas cannot run.

`hwnas validate TABLE --export N -o KIT` writes

- ``models/net_000.onnx`` ...: N distinct random architectures of the table's space, each one self-contained
  ONNX file (opset 18, fp32, the table's batch, input ``input0``), freshly initialised from a seed (latency
  does not depend on the weights' values; parameters that are exactly zero, such as the last BN scale of a
  fresh residual block, get small random values, since converters remove a branch that computes zeros);
- with ``litert`` (the default where the hwnas[litert] extra is installed) also ``models/net_000.tflite`` ...:
  the same networks converted by litert-torch, for LiteRT's ``benchmark_model`` or an app;
- ``manifest.json``: the table (path, digest, device), the space, the input shape, the seed, and per network
  its file, sha256, architecture, MACs, params and the table's prediction;
- ``measured.csv``: columns ``file`` (the ONNX file), ``litert_file`` (with litert), ``arch`` and ``latency_ms``,
  the last empty: time each file on the
  device in the runtime you ship with, write its latency in milliseconds, and `hwnas table adapt TABLE
  KIT/measured.csv -o ADAPTED` reads it back (its ``file`` column is ignored there);
- ``README.txt``: those steps.

The kit is written into a temporary directory beside KIT and renamed into place, into a KIT that does not
exist or is empty, so a kit whose measured.csv was being filled in is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hwnas import __version__
from hwnas.errors import ConfigError, OutputError
from hwnas.files import dump_json, write_atomic
from hwnas.outputs import check_output_dir
from hwnas.progress import ProgressCallback, report
from hwnas.space import Architecture, arch_cost
from hwnas.tables import LookupTable
from hwnas.timing.runners import package_version

KIND = "hwnas-measurement-kit"
MODELS, MANIFEST, MEASURED, README = "models", "manifest.json", "measured.csv", "README.txt"
#: networks `hwnas table adapt` needs
ADAPT_NEEDS = 10

README_TEXT = """hwnas measurement kit: {n} random networks of the {space} space ({input}) for {device}

1. Time every network on the device, in the runtime you ship with: models/net_*.onnx for ONNX Runtime{litert}
   (convert the ONNX file with your runtime's converter where it reads neither), at the input shape {shape}
   (float32), each with a warm-up and enough runs that the median is steady; interleave the files rather
   than timing each in one go, so that the device's state (clock, temperature) does not follow the file order.
2. Write each median, in milliseconds, in the latency_ms column of measured.csv (the file column names the
   model; remove the rows of networks you did not time).
3. hwnas table adapt {table} {kit}/measured.csv -o adapted.jsonl
   fits the table to them (it needs {needs} networks; more make the table better) and prints its
   cross-validated error beside plain scale + offset.
"""


@dataclass(frozen=True)
class Kit:
    directory: Path
    archs: tuple[Architecture, ...]
    predicted_ms: tuple[float, ...]
    litert: bool = False


def check_kit_dir(path: str | os.PathLike) -> Path:
    """KIT must not exist, or be an empty directory: a kit being filled in is never overwritten."""
    path = check_output_dir(path, "a measurement kit")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(f"a measurement kit is written into a new or empty directory, but {path} holds files "
                          f"(a kit whose measured.csv is being filled in is never overwritten)")
    return path


def sample_archs(table: LookupTable, n: int, seed: int) -> list[Architecture]:
    """``n`` distinct random architectures of the table's space (fewer only if the space is smaller)."""
    space = table.space
    if n < 1:
        raise ConfigError(f"a measurement kit holds at least one network, but got {n}")
    n = min(n, space.size)
    rng = random.Random(seed)
    seen: dict[str, Architecture] = {}
    while len(seen) < n:
        arch = space.sample(rng)
        seen.setdefault(str(arch), arch)
    return list(seen.values())


def litert_available() -> bool:
    """Whether the hwnas[litert] extra (litert-torch, the converter) is installed here."""
    import importlib.util

    return importlib.util.find_spec("litert_torch") is not None


def export_kit(table: LookupTable, n: int, directory: str | os.PathLike, *, seed: int = 0, litert: bool | None = None,
               on_progress: ProgressCallback | None = None) -> Kit:
    """Write a measurement kit of ``n`` random architectures of ``table``'s space (see the module docstring);
    ``litert`` adds .tflite files (None: where the litert extra is installed)."""
    from hwnas.devices.litert import convert, no_zero_weights
    from hwnas.devices.ort_mobile import OPSET, export_onnx

    if litert is None:
        litert = litert_available()
    elif litert and not litert_available():
        raise ConfigError("a kit with LiteRT models needs the litert-torch converter: pip install 'hwnas[litert]'")

    directory = check_kit_dir(directory)
    space = table.space
    table.check_space(space)
    archs = sample_archs(table, n, seed)
    batch = table.header["batch"]
    shape = (batch, space.profile.channels, space.profile.resolution, space.profile.resolution)
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (work / MODELS).mkdir()
        networks, predicted = [], []
        for i, arch in enumerate(archs):
            report(on_progress, "exporting the measurement kit", i, len(archs))
            torch.manual_seed(seed * 100003 + i)
            model = space.build(arch).eval()
            no_zero_weights(model, seed=seed * 100003 + i)
            name = f"{MODELS}/net_{i:03d}.onnx"
            export_onnx(model, (torch.zeros(shape),), work / name, "torchscript")
            cost = arch_cost(space, arch)
            ms = table.predict(arch).latency_ms
            predicted.append(ms)
            network = {"file": name, "sha256": hashlib.sha256((work / name).read_bytes()).hexdigest(),
                       "arch": str(arch), "macs": cost.macs, "params": cost.params, "table_ms": ms}
            if litert:
                data = convert(model, (torch.zeros(shape),))
                network["litert_file"] = f"{MODELS}/net_{i:03d}.tflite"
                write_atomic(work / network["litert_file"], data)
                network["litert_sha256"] = hashlib.sha256(data).hexdigest()
            networks.append(network)
        report(on_progress, "exporting the measurement kit", len(archs), len(archs))
        manifest = {"kind": KIND, "version": 1, "hwnas": __version__,
                    "table": {"path": str(table.path.resolve()) if table.path else None, "digest": table.digest(),
                              "device": table.device_name},
                    "space": space.describe(), "seed": seed,
                    "input": {"name": "input0", "shape": list(shape), "dtype": "float32"},
                    "format": {"onnx": {"opset": OPSET, "precision": "fp32"},
                               **({"litert": {"converter": "litert-torch", "precision": "fp32",
                                              "litert_torch": package_version("litert-torch")}} if litert else {})},
                    "networks": networks}
        write_atomic(work / MANIFEST, dump_json(manifest, indent=2) + "\n")
        frame = pd.DataFrame({"file": [n["file"] for n in networks],
                              **({"litert_file": [n["litert_file"] for n in networks]} if litert else {}),
                              "arch": [n["arch"] for n in networks], "latency_ms": [""] * len(networks)})
        write_atomic(work / MEASURED, frame.to_csv(index=False))
        write_atomic(work / README, README_TEXT.format(
            n=len(archs), space=space.name, input=space.profile.name, device=table.device_name,
            litert=", models/net_*.tflite for LiteRT (e.g. its benchmark_model --graph=FILE)" if litert else "",
            shape="x".join(map(str, shape)), table=table.path or "TABLE", kit=directory, needs=ADAPT_NEEDS))
        check_kit_dir(directory)  # still new or empty: nothing was written there meanwhile
        if directory.is_dir():
            directory.rmdir()
        os.replace(work, directory)
    except OutputError as error:  # a full disk: said of the kit, not of its temporary directory
        shutil.rmtree(work, ignore_errors=True)
        raise OutputError(f"the measurement kit {directory} could not be written ({error.reason}); nothing was left "
                          f"there", error.reason) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Kit(directory, tuple(archs), tuple(float(p) for p in np.asarray(predicted)), litert)
