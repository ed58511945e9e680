"""Stand-ins for tests, benchmarks and notebooks: a lookup table made without measuring, and an evaluator
whose "accuracy" is a deterministic function of the architecture. Search code that works with these
works with measured tables and supernet evaluators; `hwnas.testing.search` runs every registered strategy
on them.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

from hwnas.timing.protocol import Protocol, Runner
from hwnas.space import Architecture, SearchSpace, arch_cost, block_cost
from hwnas.supernet.evaluator import Evaluator
from hwnas.tables import LookupTable, Record, TableWriter, make_header


def _unit(text: str) -> float:
    """A stable number in [0, 1) from a string (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode()) / 2**32


def synthetic_table(space: SearchSpace, *, device: str = "synthetic", ms_per_mmac: float = 0.02,
                    overhead_ms: float = 0.01, jitter: float = 0.2, path: str | Path | None = None,
                    device_header: dict | None = None, protocol: dict | None = None) -> LookupTable:
    """A table whose block latency is ``overhead_ms + ms_per_mmac * MMACs``, times a per-block factor in
    ``1 ± jitter`` drawn from the block key and ``device`` (so two "devices" rank blocks differently).

    ``device_header`` replaces the made-up device description (pass a real one, e.g.
    `hwnas.profiler.session.device_header`, to let ``hwnas plot --measured`` measure on that device).
    """
    header = make_header(device=device_header or {"name": device, "comparable": {"device": device}, "info": {}},
                         space=space, protocol=protocol or Protocol().to_dict(), batch=1, dtype="float32")
    records = []
    for block in space.all_blocks():
        cost = block_cost(block)
        factor = 1 + jitter * (2 * _unit(f"{device} {block.key}") - 1)
        latency = (overhead_ms + ms_per_mmac * cost.macs / 1e6) * factor
        records.append(Record(block, latency, 0.01 * latency, 7, 10, cost.macs, cost.params))
    table = LookupTable(header, records)
    if path is not None:
        with TableWriter(path, header) as writer:
            for record in records:
                writer.append(record)
        table = LookupTable.load(path)
    return table


class SyntheticEvaluator(Evaluator):
    """"Accuracy" that grows with an architecture's MACs (saturating), plus a fixed per-architecture
    offset of up to ± ``noise`` points: the accuracy-latency trade-off of a real search, without a network."""

    def __init__(self, space: SearchSpace, *, noise: float = 1.5):
        super().__init__()
        self.space, self.noise = space, noise
        smallest = arch_cost(space, space.from_indices([0] * len(space.layers))).macs
        self._scale = max(1.0, float(smallest))

    def _evaluate(self, arch: Architecture) -> float:
        macs = arch_cost(self.space, arch).macs
        base = 50 + 40 * (1 - math.exp(-macs / (2 * self._scale)))
        return base + self.noise * (2 * _unit(str(arch)) - 1)

    def describe(self) -> dict:
        return {"kind": "synthetic", "space": self.space.name, "noise": self.noise}


def tiny_supernet_run(run_dir: str | Path, *, space: str = "spos", width: float = 0.25, epochs: int = 1,
                      synthetic_size: int = 256, batch_size: int = 32, seed: int = 0) -> Path:
    """Train a small supernet on synthetic cifar10-shaped data into ``run_dir`` (seconds on a CPU): a real
    run directory for `hwnas search --supernet`, its tests and benchmarks."""
    from hwnas.training import RunConfig, train

    config = RunConfig(space=space, dataset="synthetic", width=width, epochs=epochs, batch_size=batch_size,
                       synthetic_size=synthetic_size, eval_paths=0, bn_batches=2, seed=seed)
    train(config, run_dir)
    return Path(run_dir)


class SequenceRunner(Runner):
    """A `hwnas.timing.protocol.Runner` whose timed blocks take the scripted milliseconds per call, one value
    per block, in turn; ``numbers`` logs the calls asked for in each block. Protocol code tested on it needs no
    clock and no device."""

    def __init__(self, ms):
        self.ms, self.numbers = iter(ms), []

    def time_block(self, number: int) -> float:
        self.numbers.append(number)
        return next(self.ms) / 1e3

    def close(self) -> None:
        pass
