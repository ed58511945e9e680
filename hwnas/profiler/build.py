"""Building a lookup table: every distinct block of a space measured once on one device.

Blocks are measured in batches of interleaved rounds by a `MeasuringSession`, each batch together with a
fixed reference block, and every finished batch is appended to the table file at once, so an interrupted
run resumes where it stopped. Before each batch the machine is checked for bursts of other work (the
reference block running slow), and the batch waits for calm (within the protocol's budget). Once the table
is complete, entries still measured during a burst are measured again (:func:`remeasure_bursts`) and every
latency is scaled by the reference's drift (``Protocol.drift_correction``, :func:`correct_drift`);
``raw_ms``, ``median_ms`` and ``iqr_ms`` stay as timed. A file measured on another device fingerprint, with
another protocol, or for another space is refused unless the caller forces a fresh start (the old file is
then kept beside it as ``.bak``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwnas.devices import Device
from hwnas.errors import HwnasError, TableError, TargetError
from hwnas.outputs import check_output_file, file_lock
from hwnas.timing.protocol import Measurement, Protocol, caught_in_bursts
from hwnas.profiler.remote import RemoteSession, open_session
from hwnas.profiler.session import PRECISION_DTYPES, MeasuringSession, device_header, header_mismatches, reference_block
from hwnas.profiler.targets import Target
from hwnas.progress import ProgressCallback, report
from hwnas.space import BlockSpec, SearchSpace, block_cost
from hwnas.tables import LookupTable, Record, TableWriter, make_header


def table_header(space: SearchSpace, device: Device, protocol: Protocol, measured_on: dict | None = None) -> dict:
    """The header of a table of ``space`` timed by ``device`` (on this host, or ``measured_on``: a session's
    `device_header`)."""
    dtype = PRECISION_DTYPES[device.precision]
    header = make_header(device=measured_on or device_header(device), space=space, protocol=protocol.to_dict(),
                         batch=device.batch_size, dtype=dtype)
    header["reference_block"] = reference_block(device.batch_size, dtype).key
    return header


def profile_space(space: SearchSpace, device: Device, path: str | Path, *, protocol: Protocol | None = None,
                  force: bool = False, batch_blocks: int = 12, seed: int = 0,
                  on_progress: ProgressCallback | None = None, on_batch: Callable[[int], None] | None = None,
                  target: Target | None = None, keep: bool = False, pin: list[int] | None = None) -> LookupTable:
    """Measure every block of ``space`` on ``device`` into the table at ``path`` (resuming it if it exists).

    With ``target`` the blocks are timed there (`hwnas.profiler.remote`; ``pin``: its CPUs, ``keep``: leave
    its work directory). One writer at a time: a second gets a one-line error naming the first's process.
    ``on_progress`` gets a `hwnas.progress.Progress` after each batch of blocks is
    written; ``on_batch(records written)`` is called at the same moment (tests stop a build there, as a
    kill would). A connection lost midway is a one-line TargetError saying how many records are kept.
    """
    protocol = protocol or Protocol()
    path = check_output_file(path, "a lookup table")
    with file_lock(path, "table"), open_session(device, protocol, target, keep=keep, pin=pin) as session:
        try:
            return _build(space, device, path, session, protocol, force, batch_blocks, seed, on_progress, on_batch)
        except TargetError as exc:
            kept = len(LookupTable.load(path).records) if path.exists() and path.stat().st_size else 0
            raise TargetError(f"{exc}; {kept} records are kept in {path}: run the same command again to resume") \
                from None


def _build(space: SearchSpace, device: Device, path: Path, session, protocol: Protocol, force: bool,
           batch_blocks: int, seed: int, on_progress: ProgressCallback | None,
           on_batch: Callable[[int], None] | None) -> LookupTable:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = table_header(space, device, protocol, session.device_header())
    done: set[str] = set()
    if path.exists() and path.stat().st_size > 0:
        try:
            existing = LookupTable.load(path)
        except HwnasError as exc:
            if not force:
                raise TableError(f"{exc}; pass --force to start the table again (the old file is kept as "
                                 f"{path.name}.bak)") from None
            existing = LookupTable({"unreadable": str(exc)})  # --force: start again, keeping the file as .bak
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
    task = f"profiling {space.name} on {device.name}"
    header["reference_level_ms"] = None  # set when a complete table is drift-corrected
    # a resumed table's earlier records may come from another state of the machine; remeasure_bursts and
    # correct_drift bring the whole table to one level at the end
    with TableWriter(path) if done else TableWriter(path, header) as writer:
        report(on_progress, task, total - len(todo), total)
        for start in range(0, len(todo), batch_blocks):
            batch = todo[start:start + batch_blocks]
            measured = session.measure_blocks(batch, seed=seed + start)
            for block in batch:
                writer.append(make_record(block, measured[block.key], protocol))
            written = total - len(todo) + start + len(batch)
            report(on_progress, task, written, total)
            if on_batch is not None:
                on_batch(written)
    table = LookupTable.load(path)
    if protocol.drift_correction and table.header.get("reference_level_ms") is None:
        table = correct_drift(remeasure_bursts(table, session, batch_blocks=batch_blocks, seed=seed), protocol)
    if not isinstance(session, MeasuringSession) and todo:  # a board's (a phone's) temperature at the end of the run
        table.header["device"]["info"]["temperature_end_c"] = session.temperature_c()
        table.save()
    return table


def make_record(block: BlockSpec, m: Measurement, protocol: Protocol) -> Record:
    """The table record of one measured block: its latency as timed (drift correction comes later), the
    median, attempts and reference time beside it, and its MACs and parameters."""
    raw = protocol.latency_ms(m)
    cost = block_cost(block.with_(batch=1, dtype="float32"))
    return Record(block, raw, m.iqr_ms, m.rounds, m.calls_per_block, cost.macs, cost.params,
                  {"raw_ms": raw, "median_ms": m.median_ms, "attempts": m.attempts,
                   "reference_ms": round(m.reference_ms, 6)})


def remeasure_bursts(table: LookupTable, session: MeasuringSession | RemoteSession, *, batch_blocks: int = 12,
                     seed: int = 0) -> LookupTable:
    """Measure again every entry of a complete table whose reference ran more than the protocol's
    ``steady_tolerance`` above the fastest reference in the table, and rewrite the file atomically.

    Such entries were timed during a burst of other work that outlasted their batch's attempts (or came
    before any steady level was known, in the first batch). Drift correction scales them, but a burst
    does not slow every kind of block by exactly the reference's factor, so a calm measurement is better.
    A new measurement replaces the old one only if its reference ran faster. Nothing is measured again
    when ``protocol.remeasure`` is 0.
    """
    protocol = session.protocol
    records = dict(table.records)
    refs = {key: r.extra.get("reference_ms") for key, r in records.items()}
    if protocol.remeasure == 0 or not refs or not all(refs.values()):
        return table  # correct_drift says what is missing
    level = min(refs.values())
    slow = [records[key].block for key in caught_in_bursts(refs, protocol.steady_tolerance)]
    if not slow:
        return table
    for start in range(0, len(slow), batch_blocks):
        batch = slow[start:start + batch_blocks]
        measured = session.measure_blocks(batch, seed=seed + len(records) + start, steady_ms=level)
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

