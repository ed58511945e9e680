"""The measurement protocol (`hwnas.timing.protocol`) on scripted runners: settings, summaries, calibration,
interleaved rounds and re-measurement. The watch for bursts of other work is tested in test_bursts.py.
Nothing here times real work, so every figure is exact."""

import itertools
import json
import subprocess
import sys

import pytest

from hwnas.errors import ConfigError
from hwnas.timing.protocol import (Measurement, Protocol, Runner, batch_reference_ms, calibrate, caught_in_bursts,
                                     interleaved_measure)
from hwnas.testing import SequenceRunner


class ScriptedRunner(Runner):
    """Returns scripted seconds per call and logs which runner ran, to test the protocol exactly."""

    def __init__(self, name: str, per_call: float, log: list[str], jitter: float = 0.0):
        self.name, self.per_call, self.log, self.jitter = name, per_call, log, jitter
        self.blocks: list[int] = []
        self.closed = False

    def time_block(self, number: int) -> float:
        self.log.append(self.name)
        self.blocks.append(number)
        # alternate slow and fast blocks when jitter is set, so that IQR/median is large
        return self.per_call * (1 + self.jitter * (len(self.blocks) % 2))

    def close(self) -> None:
        self.closed = True


# --- settings and summaries ---------------------------------------------------------------------


def test_the_protocol_module_imports_no_torch():
    """It runs on devices that have only numpy and onnxruntime."""
    code = ("import sys, hwnas.timing.protocol; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_protocol_round_trips_and_rejects_unknown_settings():
    protocol = Protocol(rounds=5, rotate=2, steady_tolerance=0.2, calm_wait_s=3.0, calm_pause_s=0.1, calm_budget_s=9)
    assert Protocol.from_dict(json.loads(json.dumps(protocol.to_dict()))) == protocol
    assert {"steady_tolerance", "calm_wait_s", "calm_pause_s", "calm_budget_s"} <= set(protocol.to_dict())
    with pytest.raises(ConfigError, match=r"has unknown \['repeats'\]"):
        Protocol.from_dict({**protocol.to_dict(), "repeats": 3})


def test_a_protocol_from_a_table_must_name_every_setting():
    assert Protocol.from_dict(Protocol().to_dict()) == Protocol()
    old = {k: v for k, v in Protocol().to_dict().items() if k != "calm_budget_s"}
    with pytest.raises(ConfigError, match=r"lacks \['calm_budget_s'\] and has unknown \[\]"):
        Protocol.from_dict(old)
    with pytest.raises(ConfigError, match=r"lacks \[\] and has unknown \['rounds_per_block'\]"):
        Protocol.from_dict({**Protocol().to_dict(), "rounds_per_block": 3})


@pytest.mark.parametrize("setting, message", [
    ({"rounds": 2}, "rounds must be >= 3, but got rounds=2"),
    ({"rotate": 0}, "rotate must be >= 1, but got rotate=0"),
    ({"min_block_s": 0}, "min_block_s must be > 0, but got min_block_s=0"),
    ({"warmup_s": -1}, "warmup_s must be >= 0, but got warmup_s=-1"),
    ({"max_rel_iqr": 0}, "max_rel_iqr must be > 0, but got max_rel_iqr=0"),
    ({"remeasure": -1}, "remeasure must be >= 0, but got remeasure=-1"),
    ({"steady_tolerance": 0}, "steady_tolerance must be > 0, but got steady_tolerance=0"),
    ({"calm_wait_s": -1}, "calm_wait_s must be >= 0, but got calm_wait_s=-1"),
    ({"calm_pause_s": -0.5}, "calm_pause_s must be >= 0, but got calm_pause_s=-0.5"),
    ({"calm_budget_s": -2}, "calm_budget_s must be >= 0, but got calm_budget_s=-2"),
    ({"statistic": "mean"}, "statistic must be one of min, median, but got statistic='mean'"),
])
def test_protocol_validates_its_settings(setting, message):
    with pytest.raises(ConfigError, match=message):
        Protocol(**setting)


def test_measurement_statistics_and_json():
    m = Measurement.from_times([1.0, 2.0, 3.0, 4.0, 100.0], calls_per_block=10)
    assert (m.median_ms, m.iqr_ms, m.rounds, m.min_ms) == (3.0, 2.0, 5, 1.0)
    assert m.rel_iqr == pytest.approx(2 / 3)
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with pytest.raises(ConfigError, match="needs at least one timed block"):
        Measurement.from_times([], calls_per_block=1)


def test_the_protocol_statistic_picks_the_latency():
    m = Measurement.from_times([3.0, 1.0, 2.0, 9.0], calls_per_block=1)
    assert Protocol(statistic="min").latency_ms(m) == m.min_ms == 1.0
    assert Protocol(statistic="median").latency_ms(m) == m.median_ms == 2.5
    assert Protocol().statistic == "min" and Protocol().drift_correction


# --- calibration and interleaved rounds ---------------------------------------------------------


def test_calibration_sizes_blocks_to_the_target_after_warmup():
    runner = ScriptedRunner("a", per_call=1e-4, log=[])
    number = calibrate(runner, Protocol(warmup_s=0.05, min_block_s=0.01))
    assert number == 100
    assert sum(n * 1e-4 for n in runner.blocks) >= 0.05


def test_calibration_ignores_the_first_slow_calls_and_zero_readings():
    # lazy initialisation makes the first call slow; a coarse clock then reads 0 s for a short block
    runner = SequenceRunner(itertools.chain([50.0, 0.0], itertools.repeat(0.1)))
    assert calibrate(runner, Protocol(warmup_s=0.1, min_block_s=0.01)) == 100  # from the fastest real reading
    assert runner.numbers[:5] == [1, 1, 2, 20, 100]  # doubling, then sized from the fastest real reading


def test_interleaved_rounds_time_every_runner_once_per_round():
    log: list[str] = []
    runners = {key: ScriptedRunner(key, per_call, log) for key, per_call in [("a", 1e-3), ("b", 2e-3), ("c", 5e-4)]}
    protocol = Protocol(warmup_s=0.0, min_block_s=0.004, rounds=5)
    results = interleaved_measure(runners, protocol)
    assert set(results) == {"a", "b", "c"}
    timed = log[-15:]  # calibration comes first, then 5 rounds of 3 blocks
    assert all(sorted(timed[i:i + 3]) == ["a", "b", "c"] for i in range(0, 15, 3))
    assert len({tuple(timed[i:i + 3]) for i in range(0, 15, 3)}) > 1  # the order is shuffled per round
    assert results["b"].median_ms == pytest.approx(2.0)
    assert results["b"].calls_per_block == 2
    assert all(m.rounds == 5 and m.attempts == 1 and m.reference_ms is None for m in results.values())
    assert not any(r.closed for r in runners.values())  # the caller owns the runners


@pytest.mark.parametrize("statistic", ["median", "min"])
def test_noisy_entries_are_remeasured_and_reference_joins_every_round(statistic):
    log: list[str] = []
    runners = {
        "calm": ScriptedRunner("calm", 1e-3, log),
        "noisy": ScriptedRunner("noisy", 1e-3, log, jitter=0.5),
        "ref": ScriptedRunner("ref", 1e-3, log),
    }
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=2, statistic=statistic)
    results = interleaved_measure(runners, protocol, reference="ref")
    assert results["calm"].attempts == 1 and results["calm"].rounds == 3
    assert results["noisy"].attempts == 3 and results["noisy"].rounds == 3
    assert results["ref"].rounds == 9  # every round of all three attempts
    assert log.count("calm") == 1 + 3  # one calibration block, then only the first attempt
    assert results["calm"].reference_ms == results["noisy"].reference_ms == pytest.approx(1.0)
    assert results["ref"].reference_ms is None


def test_each_entry_records_the_reference_of_the_rounds_it_kept():
    # the reference is slow (2 ms) in the first attempt and fast (1 ms) in the re-measurement
    ref = SequenceRunner([1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    noisy = SequenceRunner([1.0, 3.0, 3.0, 3.6, 1.5, 1.5, 1.8])
    calm = SequenceRunner([1.0, 4.0, 4.0, 4.0])
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=1)
    results = interleaved_measure({"ref": ref, "noisy": noisy, "calm": calm}, protocol, reference="ref")
    assert results["calm"].reference_ms == 2.0 and results["calm"].min_ms == 4.0
    assert results["noisy"].reference_ms == 1.0 and results["noisy"].min_ms == 1.5
    assert results["ref"].times_ms == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    # a batch's reference is the median over its entries of the reference beside each
    assert batch_reference_ms(results, "ref") == 1.5
    assert batch_reference_ms(results, None) == 0.0


@pytest.mark.parametrize("statistic, kept", [("median", [2.0, 2.0, 2.4]), ("min", [1.0, 2.0, 2.4])])
def test_remeasuring_keeps_the_calmest_attempt_or_the_fastest(statistic, kept):
    first, second = [2.0, 2.0, 2.4], [1.0, 2.0, 2.4]  # the second is noisier but has the fastest block
    runner = SequenceRunner([50.0, *first, *second])  # a calibration block comes first
    protocol = Protocol(warmup_s=0.0, min_block_s=0.001, rounds=3, max_rel_iqr=0.05, remeasure=1, statistic=statistic)
    result = interleaved_measure({"x": runner}, protocol)["x"]
    assert result.times_ms == pytest.approx(kept) and result.attempts == 2


def test_reference_must_be_a_runner_key():
    with pytest.raises(ConfigError, match="reference must be one of the runner keys, but got reference='z'"):
        interleaved_measure({"a": ScriptedRunner("a", 1e-3, [])}, Protocol(), reference="z")


def test_entries_caught_in_bursts_are_those_beyond_the_tolerance():
    refs = {"a": 1.0, "b": 1.25, "c": 1.26, "d": 2.0}
    assert caught_in_bursts(refs, 0.25) == ["c", "d"]  # exactly at the tolerance is still steady
    assert caught_in_bursts(refs, 1.0) == []
