"""Taking a found architecture away: architecture JSON, PyTorch weights with a recipe to rebuild the
module, and an ONNX file checked against PyTorch in ONNX Runtime.

``DIR`` receives

- ``arch.json``: the architecture and its space (readable by ``hwnas arch SPACE DIR/arch.json``);
- ``model.pt``: the state_dict, tensors only (``torch.load(..., weights_only=True)`` reads it);
- ``model.json``: how to rebuild the module (``space_from_description(space).build(arch)``), where the
  weights come from (the supernet, inherited through ``SuperNet.subnet``, or a seeded fresh
  initialisation), the input shape, the search figures when exported from a search, and the ONNX check;
- ``load_model.py``: that recipe as a script;
- ``model.onnx``: one self-contained file, batch dimension dynamic, with the largest absolute
  difference from PyTorch's output on a random batch recorded in ``model.json``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.errors import CheckpointError, ConfigError, HwnasError
from hwnas.files import dump_json, write_atomic
from hwnas.search.results import BEST, CONFIG, SWEEP, SWEEP_FIELDS, read_best, read_search_json, write_json
from hwnas.space import Architecture, SearchSpace, space_from_description

OPSET = 18
ONNX_ATOL = 1e-4

LOAD_SCRIPT = '''"""Rebuild the exported network: python load_model.py (needs hwnas installed)."""
import json
from pathlib import Path

import torch

from hwnas.space import space_from_description

here = Path(__file__).parent
meta = json.loads((here / "model.json").read_text())
model = space_from_description(meta["space"]).build(meta["arch"])
model.load_state_dict(torch.load(here / "model.pt", weights_only=True))
model.eval()

if __name__ == "__main__":
    with torch.inference_mode():
        print(model(torch.randn(meta["input_shape"])).shape)
'''


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files: tuple[str, ...]
    onnx_max_abs_diff: float | None


def arch_from_search(path: str | Path) -> tuple[SearchSpace, Architecture, dict]:
    """The best architecture of a search directory (or its best.json), its space and its search figures."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"a search directory or its best.json must exist, but {path} does not")
    if path.is_dir() and (path / SWEEP).exists():
        names = read_search_json(path / SWEEP, "a sweep's sweep.json", SWEEP_FIELDS)["searches"]
        raise CheckpointError(f"{path} is a sweep over several targets; export one of its searches: "
                              f"{', '.join(str(path / n) for n in names)}")
    best_path = path / BEST if path.is_dir() else path
    if not best_path.is_file():
        hint = " (no feasible candidate was found)" if (path / CONFIG).exists() else ""
        raise CheckpointError(f"exporting a search needs its {BEST}, but {best_path} does not exist{hint}")
    best = read_best(best_path)
    try:
        space = space_from_description(best["space"])
    except (HwnasError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"a search's best.json must describe a space hwnas can build, but {best_path} does "
                              f"not ({' '.join(str(exc).split())})") from None
    arch = space.validate(Architecture(tuple(best["ops"])))
    figures = {k: best[k] for k in ("accuracy", "latency_ms", "macs", "params", "target_latency_ms") if k in best}
    return space, arch, {"search": str(path), **figures}


def export_architecture(space: SearchSpace, arch: Architecture | str, directory: str | Path, *, supernet: Any = None,
                        supernet_path: str | None = None, seed: int = 0, batch_size: int = 1,
                        extra: dict | None = None, onnx: bool = True) -> ExportResult:
    """Write ``arch`` of ``space`` to ``directory`` (see the module docstring).

    With ``supernet`` (a `SuperNet` of the same space) the weights are the supernet's, inherited
    through ``subnet(arch)``; otherwise a fresh initialisation seeded with ``seed``.
    """
    arch = space.validate(arch)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"the export directory must be a directory, but {directory} is a file")
    if supernet is not None:
        if supernet.space.describe() != space.describe():
            raise CheckpointError(f"the supernet must be of the architecture's space, but it was built for "
                                  f"{_space_name(supernet.space.describe())} and the architecture belongs to "
                                  f"{_space_name(space.describe())}")
        model = supernet.subnet(arch)
        weights = "supernet"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = space.build(arch)
        weights = "initialised"
    model = model.cpu().float().eval()
    # the recipe must rebuild exactly this module: check now rather than let a user find out
    rebuilt = space_from_description(space.describe()).build(arch)
    rebuilt.load_state_dict(model.state_dict())
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "arch.json", arch.to_json(space) + "\n")
    buffer = io.BytesIO()  # serialised first: torch's own writer reports a full disk as a RuntimeError
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buffer)
    write_atomic(directory / "model.pt", buffer.getvalue())
    shape = [batch_size, space.profile.channels, space.profile.resolution, space.profile.resolution]
    meta: dict[str, Any] = {
        "kind": "hwnas-export", "arch": str(arch), "ops": list(arch.ops), "space": space.describe(),
        "input_shape": shape, "state_dict": "model.pt",
        "build": "hwnas.space.space_from_description(space).build(arch); "
                 "load_state_dict(torch.load('model.pt', weights_only=True))",
        "weights": weights, "supernet": supernet_path, "seed": None if supernet is not None else seed,
        **({"search": extra} if extra else {}),
    }
    files = ["arch.json", "model.pt", "model.json", "load_model.py"]
    diff = None
    if onnx:
        diff = export_onnx(model, torch.randn(shape), directory / "model.onnx")
        meta["onnx"] = {"file": "model.onnx", "opset": OPSET, "max_abs_diff": diff,
                        "checked_on": "ONNX Runtime CPUExecutionProvider, one random batch of 2"}
        files.append("model.onnx")
    write_json(directory / "model.json", meta)
    write_atomic(directory / "load_model.py", LOAD_SCRIPT)
    return ExportResult(directory, tuple(files), diff)


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> float:
    """Export ``model`` (eval mode) to one ONNX file with a dynamic batch and return the largest absolute
    difference between ONNX Runtime's and PyTorch's outputs on a random batch of two."""
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                          dynamo=False, external_data=False)
    batch = torch.randn(2, *example.shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(batch).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": batch.numpy()})
    return float(np.abs(got - expected).max())


def _space_name(description: dict) -> str:
    extras = {k: v for k, v in description.items() if k not in ("space", "input")}
    return f"{description['space']}/{description['input']['name']} {dump_json(extras, sort_keys=True)}"
