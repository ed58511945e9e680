"""Building a lookup table: every distinct block of a space measured once on one device.

Blocks are measured in batches of interleaved rounds (`hwnas.devices.interleaved_measure`), each batch
together with a fixed reference block, and every finished batch is appended to the table file at once,
so an interrupted run resumes where it stopped. Before each batch the machine is checked for bursts of
other work (the reference block running slow), and the batch waits for calm. Once the table is complete,
entries still measured during a burst are measured again (:func:`remeasure_bursts`) and every latency is
scaled by the reference's drift (``Protocol.drift_correction``, :func:`correct_drift`); ``raw_ms``,
``median_ms`` and ``iqr_ms`` stay as timed. A file measured on another device fingerprint, with another
protocol, or for another space is refused unless the caller forces a fresh start (the old file is then
kept beside it as ``.bak``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hwnas.devices import Device, Measurement, Protocol, Runner, interleaved_measure
from hwnas.errors import TableError
from hwnas.profiler.counting import block_cost
from hwnas.supernet.ops import OpSpec
from hwnas.supernet.space import BlockSpec, SearchSpace
from hwnas.tables import LookupTable, Record, TableWriter, make_header

PRECISION_DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}
REFERENCE_KEY = "__reference__"
#: How much slower than usual the reference may come out before its batch is timed again. Bursts of other
#: work on a shared machine slow everything by 1.6-1.9x; between them the reference varies by a few %.
STEADY_TOLERANCE = 0.10
#: The longest a batch waits, over all its attempts, for a burst of other work to pass before it is timed anyway.
CALM_WAIT_S = 30.0
#: The pause between two looks at the reference while waiting for calm.
CALM_PAUSE_S = 0.5


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
                    reference: str | None = None, seed: int = 0,
                    steady_ms: float | None = None) -> dict[str, Measurement]:
    """Prepare every (module, example) on ``device``, time them in interleaved rounds, and release them.

    With ``steady_ms`` (the reference's usual latency) the machine is checked before each attempt: while
    the reference runs more than ``STEADY_TOLERANCE`` slower, a burst of other work is going on and the
    batch waits for it to pass (:func:`wait_for_calm`, at most ``CALM_WAIT_S`` per batch). A batch whose
    reference still came out too slow is timed again, at most ``protocol.remeasure`` more times, and the
    attempt whose reference was fastest is kept.
    """
    runners = {}
    try:
        for key, (module, example) in modules.items():
            runners[key] = device.prepare(module, example, protocol)
        watch = reference is not None and steady_ms is not None
        deadline = time.monotonic() + CALM_WAIT_S
        best = None
        for attempt in range(protocol.remeasure + 1):
            if watch:
                wait_for_calm(runners[reference], steady_ms, protocol, deadline)
            result = interleaved_measure(runners, protocol, reference=reference, seed=seed + attempt)
            if best is None or batch_reference_ms(result, reference) < batch_reference_ms(best, reference):
                best = result
            if not watch or batch_reference_ms(best, reference) <= steady_ms * (1 + STEADY_TOLERANCE):
                break
        return best
    finally:
        for runner in runners.values():
            runner.close()


def wait_for_calm(runner: Runner, steady_ms: float, protocol: Protocol, deadline: float, *,
                  sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> bool:
    """Time short blocks of the reference ``runner`` until one runs within ``STEADY_TOLERANCE`` of
    ``steady_ms``, pausing ``CALM_PAUSE_S`` between tries, or until ``clock()`` passes ``deadline``.

    Returns whether the machine was calm. Waiting costs nothing when it is; during a burst of other
    tenants' work (seconds to a minute on a shared VM) measuring would only record the burst.
    """
    number = max(1, math.ceil(protocol.min_block_s / (steady_ms / 1e3)))
    runner.time_block(number)  # untimed warm-up: a runner's first calls are slow
    while True:
        if 1e3 * runner.time_block(number) <= steady_ms * (1 + STEADY_TOLERANCE):
            return True
        if clock() >= deadline:
            return False
        sleep(CALM_PAUSE_S)


def caught_in_bursts(reference_ms: dict) -> list:
    """The keys whose reference ran more than ``STEADY_TOLERANCE`` above the fastest of them: measured during
    a burst of other work, and worth measuring again."""
    level = min(reference_ms.values())
    return [key for key, ref in reference_ms.items() if ref > level * (1 + STEADY_TOLERANCE)]


def batch_reference_ms(results: dict[str, Measurement], reference: str | None) -> float:
    """The reference's latency over the rounds the entries of a batch kept (the median over entries);
    0 without a reference, so that the first attempt is kept."""
    if reference is None:
        return 0.0
    return float(np.median([m.reference_ms for key, m in results.items() if key != reference]))


def measure_blocks(blocks: list[BlockSpec], device: Device, protocol: Protocol, seed: int = 0,
                   steady_ms: float | None = None) -> dict[str, Measurement]:
    """Measure one batch of blocks together with the reference block (under `REFERENCE_KEY`)."""
    specs = {b.key: b for b in blocks}
    specs[REFERENCE_KEY] = reference_block(device.batch_size, blocks[0].dtype)
    modules = {key: (block.build().eval(), torch.randn(block.input_shape)) for key, block in specs.items()}
    return measure_modules(modules, device, protocol, reference=REFERENCE_KEY, seed=seed, steady_ms=steady_ms)


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
    header["reference_level_ms"] = None  # set when a complete table is drift-corrected
    writer = TableWriter(path) if done else TableWriter(path, header)
    # the reference's times in this run: a batch whose reference is well above their minimum waits for calm and is
    # timed again (a resumed table's earlier records may come from another state of the machine; remeasure_bursts
    # and correct_drift bring the whole table to one level at the end)
    references: list[float] = []
    with writer:
        if on_progress:
            on_progress(total - len(todo), total)
        for start in range(0, len(todo), batch_blocks):
            batch = todo[start:start + batch_blocks]
            steady = min(references) if protocol.drift_correction and references else None
            measured = measure_blocks(batch, device, protocol, seed=seed + start, steady_ms=steady)
            references.append(batch_reference_ms(measured, REFERENCE_KEY))
            for block in batch:
                writer.append(make_record(block, measured[block.key], protocol))
            if on_progress:
                on_progress(total - len(todo) + start + len(batch), total)
    table = LookupTable.load(path)
    if protocol.drift_correction and table.header.get("reference_level_ms") is None:
        table = correct_drift(remeasure_bursts(table, device, protocol, batch_blocks=batch_blocks, seed=seed), protocol)
    return table


def make_record(block: BlockSpec, m: Measurement, protocol: Protocol) -> Record:
    """The table record of one measured block: its latency as timed (drift correction comes later), the
    median, attempts and reference time beside it, and its MACs and parameters."""
    raw = protocol.latency_ms(m)
    cost = block_cost(block.with_(batch=1, dtype="float32"))
    return Record(block, raw, m.iqr_ms, m.rounds, m.calls_per_block, cost.macs, cost.params,
                  {"raw_ms": raw, "median_ms": m.median_ms, "attempts": m.attempts,
                   "reference_ms": round(m.reference_ms, 6)})


def remeasure_bursts(table: LookupTable, device: Device, protocol: Protocol, *, batch_blocks: int = 12,
                     seed: int = 0) -> LookupTable:
    """Measure again every entry of a complete table whose reference ran more than ``STEADY_TOLERANCE``
    above the fastest reference in the table, and rewrite the file atomically.

    Such entries were timed during a burst of other work that outlasted their batch's attempts (or came
    before any steady level was known, in the first batch). Drift correction scales them, but a burst
    does not slow every kind of block by exactly the reference's factor, so a calm measurement is better.
    A new measurement replaces the old one only if its reference ran faster. Nothing is measured again
    when ``protocol.remeasure`` is 0.
    """
    records = dict(table.records)
    refs = {key: r.extra.get("reference_ms") for key, r in records.items()}
    if protocol.remeasure == 0 or not refs or not all(refs.values()):
        return table  # correct_drift says what is missing
    level = min(refs.values())
    slow = [records[key].block for key in caught_in_bursts(refs)]
    if not slow:
        return table
    for start in range(0, len(slow), batch_blocks):
        batch = slow[start:start + batch_blocks]
        measured = measure_blocks(batch, device, protocol, seed=seed + len(records) + start, steady_ms=level)
        for block in batch:
            again = make_record(block, measured[block.key], protocol)
            if again.extra["reference_ms"] < refs[block.key]:
                records[block.key] = again
    updated = LookupTable(table.header, list(records.values()), table.path)
    updated.save()
    return updated


def correct_drift(table: LookupTable, protocol: Protocol) -> LookupTable:
    """Scale every record of a complete table by (the reference level) / (the reference time over the
    rounds it was measured in), store that level in the header, and rewrite the file atomically.

    The level follows the protocol's statistic: the fastest reference time over the records under
    ``"min"`` (a burst of other work can last longer than half a table build, and then the median would
    be a slow state), the median under ``"median"``.

    Each record keeps ``raw_ms`` as timed, so the correction can always be undone or redone.
    """
    refs = [r.extra.get("reference_ms") for r in table.records.values()]
    if not refs or not all(refs):
        raise TableError(f"drift correction needs the reference time of every record, but table {table.path} "
                         f"lacks some; profile it again with --force")
    level = round(float(min(refs) if protocol.statistic == "min" else np.median(refs)), 6)
    corrected = LookupTable({**table.header, "reference_level_ms": level},
                            [dataclasses.replace(r, latency_ms=r.extra["raw_ms"] * level / r.extra["reference_ms"])
                             for r in table.records.values()], table.path)
    corrected.save()
    return corrected
