"""Building a lookup table: every distinct block of a space measured once on one device.

Blocks are measured in batches of interleaved rounds (`hwnas.devices.interleaved_measure`), each batch
together with a fixed reference block, and every finished batch is appended to the table file at once,
so an interrupted run resumes where it stopped. A file measured on another device fingerprint, with
another protocol, or for another space is refused unless the caller forces a fresh start (the old file
is then kept beside it as ``.bak``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from hwnas.devices import Device, Measurement, Protocol, interleaved_measure
from hwnas.errors import TableError
from hwnas.profiler.counting import block_cost
from hwnas.supernet.ops import OpSpec
from hwnas.supernet.space import BlockSpec, SearchSpace
from hwnas.tables import LookupTable, Record, TableWriter, make_header

PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
REFERENCE_KEY = "__reference__"


def reference_block(batch: int, dtype: str) -> BlockSpec:
    """A fixed mid-sized block, the same in every table, timed in every batch to expose machine drift."""
    return BlockSpec(OpSpec.of("mbconv", k=3, e=6), 32, 32, 1, 16, 16, batch, dtype)


def device_header(device: Device) -> dict:
    return {"name": device.name, "comparable": device.fingerprint_key(), "info": device.info()}


def table_header(space: SearchSpace, device: Device, protocol: Protocol) -> dict:
    dtype = PRECISION_DTYPES[device.precision]
    header = make_header(device=device_header(device), space=space, protocol=protocol.to_dict(),
                         batch=device.batch_size, dtype=dtype)
    header["reference_block"] = reference_block(device.batch_size, dtype).key
    return header


def header_mismatches(old: dict, new: dict) -> list[str]:
    """What differs between two table headers in ways that make their measurements incomparable."""
    diffs = []
    for name, a, b in (("space", old.get("space"), new["space"]), ("protocol", old.get("protocol"), new["protocol"]),
                       ("batch", old.get("batch"), new["batch"]), ("dtype", old.get("dtype"), new["dtype"])):
        if a != b:
            diffs.append(f"{name} {a} != {b}")
    old_dev, new_dev = old.get("device", {}).get("comparable", {}), new["device"]["comparable"]
    for key in sorted(set(old_dev) | set(new_dev)):
        if old_dev.get(key) != new_dev.get(key):
            diffs.append(f"{key} {old_dev.get(key)!r} != {new_dev.get(key)!r}")
    return diffs


def measure_modules(modules: dict[str, tuple[torch.nn.Module, torch.Tensor]], device: Device, protocol: Protocol, *,
                    reference: str | None = None, seed: int = 0) -> dict[str, Measurement]:
    """Prepare every (module, example) on ``device``, time them in interleaved rounds, and release them."""
    runners = {}
    try:
        for key, (module, example) in modules.items():
            runners[key] = device.prepare(module, example, protocol)
        return interleaved_measure(runners, protocol, reference=reference, seed=seed)
    finally:
        for runner in runners.values():
            runner.close()


def measure_blocks(blocks: list[BlockSpec], device: Device, protocol: Protocol, seed: int = 0) -> dict[str, Measurement]:
    """Measure one batch of blocks together with the reference block (under `REFERENCE_KEY`)."""
    specs = {b.key: b for b in blocks}
    specs[REFERENCE_KEY] = reference_block(device.batch_size, blocks[0].dtype)
    modules = {key: (block.build().eval(), torch.randn(block.input_shape)) for key, block in specs.items()}
    return measure_modules(modules, device, protocol, reference=REFERENCE_KEY, seed=seed)


def profile_space(space: SearchSpace, device: Device, path: str | Path, *, protocol: Protocol | None = None,
                  force: bool = False, batch_blocks: int = 12, seed: int = 0,
                  on_progress: Callable[[int, int], None] | None = None) -> LookupTable:
    """Measure every block of ``space`` on ``device`` into the table at ``path`` (resuming it if it exists).

    ``on_progress(done, total)`` is called after each batch of blocks is written.
    """
    protocol = protocol or Protocol()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = table_header(space, device, protocol)
    done: set[str] = set()
    if path.exists() and path.stat().st_size > 0:
        existing = LookupTable.load(path)
        diffs = header_mismatches(existing.header, header)
        if diffs and not force:
            raise TableError(f"table {path} must be resumed with the same device, protocol and space, but "
                             f"{'; '.join(diffs[:3])}; pass --force to start it again (the old file is kept "
                             f"as {path.name}.bak)")
        if diffs:
            os.replace(path, path.with_name(path.name + ".bak"))
        else:
            done = set(existing.records)
    blocks = space.all_blocks(header["batch"], header["dtype"])
    todo = [b for b in blocks if b.key not in done]
    total = len(blocks)
    writer = TableWriter(path) if done else TableWriter(path, header)
    with writer:
        if on_progress:
            on_progress(total - len(todo), total)
        for start in range(0, len(todo), batch_blocks):
            batch = todo[start:start + batch_blocks]
            measured = measure_blocks(batch, device, protocol, seed=seed + start)
            ref_ms = measured[REFERENCE_KEY].median_ms
            for block in batch:
                m = measured[block.key]
                cost = block_cost(block.with_(batch=1, dtype="float32"))
                writer.append(Record(block, m.median_ms, m.iqr_ms, m.rounds, m.calls_per_block, cost.macs,
                                     cost.params, {"attempts": m.attempts, "reference_ms": round(ref_ms, 6)}))
            if on_progress:
                on_progress(total - len(todo) + start + len(batch), total)
    return LookupTable.load(path)
