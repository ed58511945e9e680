"""End-to-end validation of a lookup table: does the sum of blocks predict whole networks?

Random architectures of the table's space are built as whole networks and measured on the same device
with the same protocol, drift-corrected to the table's reference level as its blocks were. A calibration
(latency = scale * table sum + offset) is fitted by least squares on one half and every figure is
reported on the other half, so it says how well the table predicts architectures it was not fitted on.
MACs, fitted the same way, are printed beside as the baseline that a latency table has to beat.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from hwnas.devices import Device
from hwnas.errors import ConfigError, TableError, require
from hwnas.timing.protocol import Protocol, caught_in_bursts
from hwnas.profiler.remote import RemoteSession, open_session
from hwnas.profiler.session import REFERENCE_KEY, MeasuringSession, check_same_device
from hwnas.profiler.targets import Target

Session = MeasuringSession | RemoteSession
from hwnas.progress import ProgressCallback, report
from hwnas.space import Architecture, SearchSpace
from hwnas.tables import Calibration, LookupTable
from hwnas.tables.accuracy import Errors


@dataclass
class ValidationReport:
    archs: list[Architecture]
    measured_ms: np.ndarray
    table_ms: np.ndarray
    macs: np.ndarray
    fit_index: np.ndarray
    test_index: np.ndarray
    calibration: Calibration
    raw: Errors
    calibrated: Errors
    macs_baseline: Errors
    timed_ms: np.ndarray | None = None  # as timed, before drift correction (None: measured_ms is as timed)
    #: each end-to-end measurement, one row per repeat (measured_ms is their mean)
    runs_ms: np.ndarray | None = None
    #: the second measurement of the held-out networks against the first: the noise floor of any predictor
    repeat: Errors | None = None

    def rows(self) -> list[dict]:
        """One row per predictor (and the repeat's agreement, if measured), for `hwnas.cli.output.render`."""
        named = [("table (raw sum)", self.raw), ("table (calibrated)", self.calibrated),
                 ("MACs (fitted)", self.macs_baseline)]
        if self.repeat is not None:
            named.append(("repeat (noise floor)", self.repeat))
        return [{"predictor": name, "mean_abs_pct_error": round(e.mean_abs_pct, 2),
                 "within_5pct": round(e.within_5, 3), "within_10pct": round(e.within_10, 3),
                 "kendall_tau": round(e.kendall_tau, 4)} for name, e in named]

    def arch_rows(self) -> list[dict]:
        held_out = set(self.test_index.tolist())
        timed = self.measured_ms if self.timed_ms is None else self.timed_ms
        rows = [{"arch": str(a), "measured_ms": float(m), "timed_ms": float(raw), "table_ms": float(t),
                 "calibrated_ms": float(self.calibration.apply(t)), "macs": int(c),
                 "split": "test" if i in held_out else "fit"}
                for i, (a, m, raw, t, c) in enumerate(zip(self.archs, self.measured_ms, timed, self.table_ms,
                                                          self.macs))]
        if self.runs_ms is not None and len(self.runs_ms) > 1:
            for i, row in enumerate(rows):
                row.update({f"run{r + 1}_ms": float(run[i]) for r, run in enumerate(self.runs_ms)})
        return rows


def sample_archs(table: LookupTable, n: int, seed: int) -> list[Architecture]:
    """``n`` distinct random architectures (fewer only if the space is smaller)."""
    space, rng = table.space, random.Random(seed)
    target = min(n, space.size)
    seen: dict[str, Architecture] = {}
    for _ in range(100 * target):
        arch = space.sample(rng)
        seen.setdefault(str(arch), arch)
        if len(seen) == target:
            break
    return list(seen.values())


def measure_archs(table: LookupTable, device: Device, archs: list[Architecture], protocol: Protocol,
                  chunk: int = 6, seed: int = 0, on_progress: ProgressCallback | None = None,
                  spaces: Sequence[SearchSpace] | None = None) -> np.ndarray:
    """End-to-end latency of whole networks, measured in interleaved chunks like table entries.

    When ``protocol.drift_correction`` is on and the table records its reference level, every chunk is
    measured beside the reference block and scaled to that level exactly as the table's batches were.
    ``spaces`` gives the space each network is built in (default: the table's), for networks of other
    channels at the table's input profile, such as reference architectures.
    """
    if spaces is not None:
        require(len(spaces) == len(archs), f"one space per architecture, but got {len(spaces)} for {len(archs)}")
        for other in spaces:
            require(other.profile == table.space.profile, f"networks are timed at the table's input profile "
                    f"{table.space.profile}, but one is of {other.profile}")
    with open_session(device, protocol) as session:
        return _measure_corrected(table, session, archs, chunk, seed, on_progress, spaces)[0]


def _measure_corrected(table: LookupTable, session: Session, archs: list[Architecture], chunk: int, seed: int,
                       on_progress: ProgressCallback | None,
                       spaces: Sequence[SearchSpace] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(latencies drift-corrected as the table's were, the times as taken -- None when nothing was corrected)."""
    level = table.header.get("reference_level_ms") if session.protocol.drift_correction else None
    timed, reference_ms = _measure_chunks(table, session, archs, chunk, seed, on_progress, with_reference=bool(level),
                                          spaces=spaces)
    return (timed * level / reference_ms, timed) if level else (timed, None)


def _measure_chunks(table: LookupTable, session: Session, archs: list[Architecture], chunk: int, seed: int,
                    on_progress: ProgressCallback | None, with_reference: bool,
                    spaces: Sequence[SearchSpace] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each network's latency and, ``with_reference``, that of the reference block timed in its chunk.

    With the reference, chunks wait for bursts of other work to pass and are timed again when caught by
    one (judged against the fastest reference of this measurement so far); networks whose reference still
    ran more than ``steady_tolerance`` above the fastest are measured once more at the end (unless
    ``protocol.remeasure`` is 0), and the attempt beside the faster reference is kept.
    """
    space, device, protocol = table.space, session.device, session.protocol
    shape = (device.batch_size, space.profile.channels, space.profile.resolution, space.profile.resolution)
    measured, reference_ms = np.full(len(archs), np.nan), np.full(len(archs), np.nan)

    def measure(indices: list[int], chunk_seed: int) -> None:
        modules = {str(i): ((space if spaces is None else spaces[i]).build(archs[i]).eval(), torch.randn(shape))
                   for i in indices}
        if with_reference:
            modules[REFERENCE_KEY] = session.reference_module(table.header["dtype"])
        results = session.measure(modules, reference=REFERENCE_KEY if with_reference else None, seed=chunk_seed)
        for i in indices:
            m = results[str(i)]
            if np.isnan(measured[i]) or m.reference_ms < reference_ms[i]:  # first, or beside a faster reference
                measured[i], reference_ms[i] = protocol.latency_ms(m), m.reference_ms or np.nan

    task = f"measuring {len(archs)} architectures on {device.name}"
    for start in range(0, len(archs), chunk):
        measure(list(range(start, min(start + chunk, len(archs)))), seed + start)
        report(on_progress, task, min(start + chunk, len(archs)), len(archs))
    if with_reference and archs and protocol.remeasure > 0:
        slow = caught_in_bursts(dict(enumerate(reference_ms.tolist())), protocol.steady_tolerance)
        for start in range(0, len(slow), chunk):
            measure(slow[start:start + chunk], seed + len(archs) + start)
    return measured, reference_ms


def reference_level(table: LookupTable) -> float | None:
    """The reference block's level ``table`` was drift-corrected to; for tables made without drift correction
    the median of the reference's times over their batches (None if none were recorded)."""
    if table.header.get("reference_level_ms"):
        return float(table.header["reference_level_ms"])
    refs = [r.extra.get("reference_ms") for r in table.records.values()]
    refs = [float(v) for v in refs if v]
    return float(np.median(refs)) if refs else None


def measure_archs_against_reference(table: LookupTable, device: Device, archs: list[Architecture],
                                    protocol: Protocol, chunk: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end latency of whole networks, raw and normalised to the table's reference level.

    The table's reference block is timed with every chunk of networks; each chunk's times are scaled by
    (the table's reference level) / (the reference's time beside this chunk), whatever the protocol's
    ``drift_correction`` says, so that both figures can be compared.
    """
    level = reference_level(table)
    if level is None:
        raise TableError(f"table {table._name()} records no reference block times; profile it again")
    with open_session(device, protocol) as session:
        raw, reference_ms = _measure_chunks(table, session, archs, chunk, seed, None, with_reference=True)
    return raw, raw * level / reference_ms


def check_measurable(table: LookupTable) -> None:
    """Refuse a table adapted from whole-network measurements or imported: no device here times what it predicts."""
    if table.header.get("adapted"):
        raise TableError(f"table {table.path} was adapted to another target from whole-network measurements: it is "
                         f"judged by the cross-validation `hwnas table adapt` reported, not by measuring here")
    if table.header.get("imported"):
        raise TableError(f"table {table.path} was imported ({table.header['imported'].get('source', '?')}, device "
                         f"{table.device_name}), not measured: no device here times what it predicts; measure whole "
                         f"networks on the device and correct it with `hwnas table adapt`")


def validate_table(table: LookupTable, device: Device, *, archs: int = 100, seed: int = 0,
                   protocol: Protocol | None = None, repeats: int = 1, on_progress: ProgressCallback | None = None,
                   target: Target | None = None, keep: bool = False, pin: list[int] | None = None) -> ValidationReport:
    """Measure ``archs`` random architectures end to end and report how well ``table`` predicts them.

    With ``repeats`` > 1 every network is measured that many times, each time in chunks of other
    networks (fresh sessions or copies, another moment) and the mean is the measured latency; the
    second measurement against the first is reported as ``repeat``, the agreement that measurement
    noise allows any predictor. With ``target`` the networks are timed there (the table must come from it).
    """
    if archs < 4:
        raise ConfigError(f"validation needs at least 4 architectures (2 to fit, 2 to test), but got archs={archs}")
    if repeats < 1:
        raise ConfigError(f"validation measures every architecture at least once, but got repeats={repeats}")
    check_measurable(table)
    protocol = protocol or Protocol.from_dict(table.header["protocol"])
    if target is None:
        check_same_device(table, device)  # before any connection or measurement
    with open_session(device, protocol, target, keep=keep, pin=pin) as session:
        return _validate(table, session, archs, seed, repeats, on_progress)


def _validate(table: LookupTable, session: Session, archs: int, seed: int, repeats: int,
              on_progress: ProgressCallback | None) -> ValidationReport:
    check_same_device(table, session.device_header())
    table.check_space(table.space)
    sampled = sample_archs(table, archs, seed)
    calibration_before = table.calibration
    table.set_calibration(None)  # predictions below are raw sums; the fit is what calibrates them
    try:
        predictions = [table.predict(a) for a in sampled]
    finally:
        table.set_calibration(calibration_before)
    table_ms = np.array([p.raw_latency_ms for p in predictions])
    macs = np.array([p.macs for p in predictions], dtype=float)
    runs, timed_runs = [], []
    for r in range(repeats):
        # a repeat measures the networks in another order, so each lands in a chunk of other networks
        order = np.arange(len(sampled)) if r == 0 else np.random.default_rng([seed, r]).permutation(len(sampled))
        progress = None if on_progress is None else (
            lambda p, r=r: on_progress(dataclasses.replace(p, done=r * p.total + p.done, total=repeats * p.total)))
        corrected, timed = _measure_corrected(table, session, [sampled[i] for i in order], 6, seed + 7919 * r,
                                              progress)
        runs.append(np.empty(len(sampled)))
        runs[-1][order] = corrected
        if timed is not None:
            timed_runs.append(np.empty(len(sampled)))
            timed_runs[-1][order] = timed
    measured = np.mean(runs, axis=0)
    timed = np.mean(timed_runs, axis=0) if timed_runs else None

    order = np.random.default_rng(seed).permutation(len(sampled))
    fit, test = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    scale, offset = np.polyfit(table_ms[fit], measured[fit], 1)
    calibration = Calibration(float(scale), float(offset), fitted_on=len(fit))
    mac_scale, mac_offset = np.polyfit(macs[fit], measured[fit], 1)
    return ValidationReport(
        sampled, measured, table_ms, macs, fit, test, calibration,
        raw=Errors.of(table_ms[test], measured[test]),
        calibrated=Errors.of(calibration.apply(table_ms[test]), measured[test]),
        macs_baseline=Errors.of(mac_scale * macs[test] + mac_offset, measured[test]),
        timed_ms=timed, runs_ms=np.array(runs),
        repeat=Errors.of(runs[1][test], runs[0][test]) if repeats > 1 else None)
