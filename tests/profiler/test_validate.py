"""Validation (`hwnas.profiler.validate`) on the scripted device (tests/profiler/conftest.py). There a module
takes 0.1 ms plus a time proportional to its parameters, so a whole network of 22 blocks takes exactly its
table sum minus 21 x 0.1 ms, and every figure validation reports is known."""

import random

import numpy as np
import pytest

from hwnas.errors import ConfigError, TableError
from hwnas.profiler import session as session_module
from hwnas.profiler import validate
from hwnas.profiler.build import profile_space
from hwnas.timing.protocol import Measurement, Protocol
from hwnas.space import get_space
from hwnas.tables import LookupTable
from hwnas.testing import synthetic_table

QUICK = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, calm_wait_s=0)
OFFSET_MS = -21 * 0.1  # a network's time minus its table sum: one fixed 0.1 ms instead of 22


@pytest.fixture
def table(device, tmp_path) -> LookupTable:
    return profile_space(get_space("spos", "cifar10", width=0.25), device, tmp_path / "t.jsonl", protocol=QUICK)


def networks_ms(table, archs, module_ms) -> np.ndarray:
    return np.array([module_ms(table.space.build(a)) for a in archs])


def test_validation_is_exact_on_a_machine_slower_than_when_the_table_was_built(table, device, module_ms):
    device.factor = 1.5  # every call 1.5x slower today: drift correction brings networks to the table's level
    report = validate.validate_table(table, device, archs=8, seed=3)
    expected = networks_ms(table, report.archs, module_ms)
    assert len({str(a) for a in report.archs}) == 8
    assert report.measured_ms == pytest.approx(expected, rel=1e-6)
    assert report.timed_ms == pytest.approx(1.5 * expected, rel=1e-6)
    assert report.table_ms == pytest.approx(expected - OFFSET_MS, rel=1e-9)
    assert sorted([*report.fit_index, *report.test_index]) == list(range(8)) and len(report.test_index) == 4
    assert (report.calibration.scale, report.calibration.offset_ms) == pytest.approx((1.0, OFFSET_MS), abs=1e-6)
    assert report.calibration.fitted_on == 4
    measured = expected[report.test_index]
    assert report.raw.mean_abs_pct == pytest.approx(100 * np.mean(-OFFSET_MS / measured))
    assert report.raw.kendall_tau == 1.0
    assert report.calibrated.mean_abs_pct == pytest.approx(0, abs=1e-4)
    assert (report.calibrated.within_5, report.calibrated.within_10, report.calibrated.kendall_tau) == (1, 1, 1)
    assert [row["predictor"] for row in report.rows()] == ["table (raw sum)", "table (calibrated)", "MACs (fitted)"]
    assert table.calibration is None  # validating fits a calibration; only the caller stores it


def test_repeats_measure_every_network_again_and_report_the_noise_floor(table, device, module_ms):
    progress = []
    report = validate.validate_table(table, device, archs=6, repeats=2, on_progress=progress.append)
    expected = networks_ms(table, report.archs, module_ms)
    assert report.runs_ms.shape == (2, 6) and report.runs_ms == pytest.approx(np.stack([expected] * 2), rel=1e-6)
    assert (report.repeat.mean_abs_pct, report.repeat.kendall_tau) == (pytest.approx(0, abs=1e-4), 1.0)
    assert report.rows()[-1]["predictor"] == "repeat (noise floor)"
    assert [(p.done, p.total) for p in progress] == [(6, 12), (12, 12)]  # one task over both repeats


@pytest.mark.parametrize("archs, repeats, message", [
    (3, 1, "needs at least 4 architectures"), (4, 0, "measures every architecture at least once")])
def test_validation_needs_enough_networks_and_runs(table, device, archs, repeats, message):
    with pytest.raises(ConfigError, match=message):
        validate.validate_table(table, device, archs=archs, repeats=repeats)


@pytest.mark.parametrize("drift_correction", [True, False])
def test_networks_are_drift_corrected_when_the_protocol_says_so(table, device, module_ms, drift_correction):
    archs = validate.sample_archs(table, 3, seed=0)
    device.factor = 1.5
    protocol = Protocol(**{**QUICK.to_dict(), "drift_correction": drift_correction})
    measured = validate.measure_archs(table, device, archs, protocol, chunk=2)
    expected = networks_ms(table, archs, module_ms)
    assert measured == pytest.approx(expected * (1.0 if drift_correction else 1.5), rel=1e-6)


def test_networks_of_other_channels_are_built_in_their_own_space(table, device, module_ms):
    """A reference architecture of other channels (FBNet-B beside an FBNet-A-like space) is timed as it is
    built, at the table's input profile; a network of another input profile is refused."""
    wider = get_space("spos", "cifar10", width=0.5)
    archs = validate.sample_archs(table, 2, seed=2)
    measured = validate.measure_archs(table, device, archs, QUICK, spaces=[table.space, wider])
    expected = [module_ms(table.space.build(archs[0])), module_ms(wider.build(archs[1]))]
    assert measured == pytest.approx(expected, rel=1e-6) and expected[1] > expected[0]
    with pytest.raises(ConfigError, match="at the table's input profile"):
        validate.measure_archs(table, device, archs[:1], QUICK, spaces=[get_space("spos", "imagenet", width=0.25)])


def test_whole_networks_measured_against_the_tables_reference(table, device, module_ms):
    archs = validate.sample_archs(table, 3, seed=1)
    device.factor = 1.5
    raw, normalised = validate.measure_archs_against_reference(table, device, archs, QUICK, chunk=2)
    expected = networks_ms(table, archs, module_ms)
    assert raw == pytest.approx(1.5 * expected, rel=1e-6) and normalised == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TableError, match="records no reference block times"):
        validate.measure_archs_against_reference(synthetic_table(table.space), device, archs[:1], QUICK)


def test_the_reference_level_of_a_table(table):
    assert validate.reference_level(table) == table.header["reference_level_ms"]
    del table.header["reference_level_ms"]  # an older table, made without drift correction
    for ref, record in zip([4.0, 1.0, 2.0], table.records.values()):
        record.extra["reference_ms"] = ref
    for record in list(table.records.values())[3:]:
        del record.extra["reference_ms"]  # records without reference times are left out
    assert validate.reference_level(table) == 2.0  # the median of the references recorded
    assert validate.reference_level(synthetic_table(table.space)) is None


def test_networks_measured_in_a_burst_are_measured_again(table, device, monkeypatch):
    level = validate.reference_level(table)
    archs = [table.space.sample(random.Random(i)) for i in range(4)]
    # chunk 1 ran in a burst longer than its attempts; measured again at the end it is calm for arch 2 only
    script = iter([{"0": 1.0, "1": 1.01}, {"2": 1.5, "3": 1.5}, {"2": 1.02, "3": 1.7}])
    asked = []

    def scripted_batch(runners, protocol, *, reference=None, seed=0, steady_ms=None, watch=None):
        refs = next(script)
        asked.append((sorted(refs), steady_ms, watch))
        assert sorted(runners) == sorted([*refs, reference])  # the networks, prepared, beside the reference
        return {reference: Measurement.from_times([min(refs.values()) * level] * 3, 1),
                **{key: Measurement(3 * r * level, 0.0, 3, 1, [3 * r * level] * 3, reference_ms=r * level)
                   for key, r in refs.items()}}

    monkeypatch.setattr(session_module, "measure_batch", scripted_batch)
    session = validate.MeasuringSession(device, QUICK)
    timed, reference_ms = validate._measure_chunks(table, session, archs, 2, 0, None, with_reference=True)
    # judged against the fastest batch reference so far (none before the first chunk; a batch's reference is
    # the median over its networks), not the table's level, and all waiting comes out of one budget
    steady = 1.005 * level
    assert [(keys, s) for keys, s, _ in asked] == [(["0", "1"], None), (["2", "3"], pytest.approx(steady)),
                                                   (["2", "3"], pytest.approx(steady))]
    assert asked[0][2] is not None and all(watch is asked[0][2] for _, _, watch in asked)
    assert reference_ms / level == pytest.approx([1.0, 1.01, 1.02, 1.5])  # arch 3 keeps its first, faster attempt
    assert timed / reference_ms == pytest.approx([3.0] * 4)
    assert all(r.closed for r in device.runners)
