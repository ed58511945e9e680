"""The measuring session shared by table builds and validations, on the scripted device (tests/profiler/
conftest.py), and the helpers that say which device a table was measured on."""

import pytest

from hwnas.devices import get_device
from hwnas.errors import DeviceError, TableError
from hwnas.timing import protocol as protocol_module
from hwnas.profiler import session as session_module
from hwnas.profiler.build import table_header
from hwnas.timing.protocol import Protocol
from hwnas.profiler.session import (REFERENCE_KEY, MeasuringSession, check_same_device, header_mismatches,
                                    reference_block, table_device)
from hwnas.space import get_space
from hwnas.tables import LookupTable

QUICK = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, calm_wait_s=0)


@pytest.fixture
def batches(monkeypatch):
    """Spies on the batches the session hands to the protocol: (entry keys, reference, steady_ms, watch)."""
    seen = []
    real = session_module.measure_batch

    def spy(runners, protocol, *, reference=None, seed=0, steady_ms=None, watch=None):
        seen.append((sorted(k for k in runners if k != reference), reference, steady_ms, watch))
        return real(runners, protocol, reference=reference, seed=seed, steady_ms=steady_ms, watch=watch)

    monkeypatch.setattr(session_module, "measure_batch", spy)
    return seen


def test_a_session_times_a_batch_beside_the_reference_and_closes_its_runners(device, timed):
    session = MeasuringSession(device, QUICK)
    assert session.steady_ms() is None  # nothing measured yet
    result = session.measure({"a": timed(2.0), "b": timed(3.0), REFERENCE_KEY: timed(1.0)})
    assert {key: m.min_ms for key, m in result.items()} == pytest.approx({"a": 2.0, "b": 3.0, REFERENCE_KEY: 1.0})
    assert result["a"].reference_ms == result["b"].reference_ms == pytest.approx(1.0)
    assert len(device.runners) == 3 and all(r.closed for r in device.runners)
    assert session.references == pytest.approx([1.0]) and session.steady_ms() == pytest.approx(1.0)


def test_each_batch_is_judged_against_the_fastest_reference_so_far(device, timed, batches, monkeypatch):
    attempts = []
    real = protocol_module.interleaved_measure
    monkeypatch.setattr(protocol_module, "interleaved_measure", lambda *a, **k: attempts.append(1) or real(*a, **k))
    session = MeasuringSession(device, Protocol(**{**QUICK.to_dict(), "remeasure": 2}))
    per_batch = []
    for factor in (1.5, 1.0, 1.2, 1.05):  # a burst, calm, a burst, calm within the tolerance
        device.factor = factor
        session.measure({"a": timed(2.0), REFERENCE_KEY: timed(1.0)}, seed=7)
        per_batch.append(len(attempts) - sum(per_batch))
    assert session.references == pytest.approx([1.5, 1.0, 1.2, 1.05])
    assert session.steady_ms() == pytest.approx(1.0)
    steady = [s for _, _, s, _ in batches]
    assert steady == [None, pytest.approx(1.5), pytest.approx(1.0), pytest.approx(1.0)]
    assert all(watch is session.watch for _, _, _, watch in batches)  # one budget for the whole run
    # the first batch has no level to be judged against; the third is caught and timed 1 + remeasure times
    assert per_batch == [1, 1, 3, 1]
    assert len(device.runners) == 4 * 2 and all(r.closed for r in device.runners)  # prepared once per batch


def test_without_drift_correction_nothing_is_watched(device, timed, batches):
    session = MeasuringSession(device, Protocol(**{**QUICK.to_dict(), "drift_correction": False}))
    for _ in range(2):
        session.measure({"a": timed(2.0), REFERENCE_KEY: timed(1.0)})
    assert [(s, w) for _, _, s, w in batches] == [(None, None), (None, None)]
    assert session.steady_ms() is None


def test_a_batch_without_reference_leaves_the_level_alone(device, timed, batches):
    session = MeasuringSession(device, QUICK)
    session.measure({"a": timed(2.0), REFERENCE_KEY: timed(1.0)})
    result = session.measure({"a": timed(2.0), "b": timed(4.0)}, reference=None)
    assert result["b"].min_ms == pytest.approx(4.0) and result["b"].reference_ms is None
    assert session.references == pytest.approx([1.0])
    assert batches[1][1:3] == (None, None)  # no reference: nothing judged


def test_a_given_steady_level_overrides_the_sessions(device, timed, batches):
    session = MeasuringSession(device, QUICK)
    session.measure({"a": timed(2.0), REFERENCE_KEY: timed(1.0)})
    session.measure({"a": timed(2.0), REFERENCE_KEY: timed(1.0)}, steady_ms=0.5)
    assert batches[1][2] == 0.5


@pytest.mark.parametrize("failing_ms, error", [(None, DeviceError), (-1.0, RuntimeError)])
def test_runners_are_closed_when_preparing_or_timing_fails(device, timed, failing_ms, error):
    session = MeasuringSession(device, QUICK)
    with pytest.raises(error):
        session.measure({"a": timed(2.0), "b": timed(failing_ms), REFERENCE_KEY: timed(1.0)})
    assert device.runners and all(r.closed for r in device.runners)
    assert session.references == []


def test_blocks_are_measured_beside_the_reference_block(device, block_ms):
    space = get_space("spos", "cifar10", width=0.25)
    blocks = space.all_blocks()[:3]
    result = MeasuringSession(device, QUICK).measure_blocks(blocks)
    assert set(result) == {b.key for b in blocks} | {REFERENCE_KEY}
    reference = reference_block(1, "float32")
    assert device.examples[-1] == reference.input_shape
    assert result[REFERENCE_KEY].min_ms == pytest.approx(block_ms(reference))
    for block in blocks:
        assert result[block.key].min_ms == pytest.approx(block_ms(block))
        assert result[block.key].reference_ms == pytest.approx(block_ms(reference))


# --- which device a table was measured on -------------------------------------------------------


@pytest.fixture
def header(device):
    return table_header(get_space("spos", "cifar10", width=0.25), device, QUICK)


def test_header_mismatches_name_what_differs(device, header):
    assert header_mismatches(header, header) == []
    other_device = {**header["device"], "comparable": {**header["device"]["comparable"], "threads": 2}}
    other = {**header, "batch": 2, "protocol": {**header["protocol"], "rounds": 5}, "device": other_device}
    diffs = header_mismatches(header, other)
    assert len(diffs) == 3 and diffs[1:] == ["batch 1 != 2", "threads 1 != 2"]
    assert diffs[0].startswith("protocol {") and "'rounds': 3" in diffs[0] and "'rounds': 5" in diffs[0]


def test_validation_refuses_another_device(device, header):
    table = LookupTable(header, [], None)
    check_same_device(table, device)  # the same device: accepted
    with pytest.raises(TableError, match="must run on the device the table was measured on, but threads 1 != 2"):
        check_same_device(table, type(device)(threads=2))


def test_a_tables_device_is_rebuilt_with_its_settings():
    device = get_device("ort-mobile", precision="int8", batch_size=2)
    header = table_header(get_space("spos", "cifar10", width=0.25), device, QUICK)
    rebuilt = table_device(LookupTable(header, [], None))
    assert (rebuilt.name, rebuilt.precision, rebuilt.batch_size, rebuilt.threads) == ("ort-mobile", "int8", 2, 1)
    assert header["dtype"] == "int8" and header["reference_block"] == reference_block(2, "int8").key
