"""Bursts of other work: batches wait for them to pass, are timed again when caught, and entries still
measured in one are measured again once the table is complete."""

import pytest
import torch

from hwnas.devices import Measurement, Protocol, Runner, get_device
from hwnas.profiler import build
from hwnas.supernet.spaces import get_space
from hwnas.tables import LookupTable, Record


def scripted(monkeypatch, reference_ms: list[float]):
    """Make each interleaved measurement return the next reference time (and the block at twice it)."""
    calls = iter(reference_ms)

    def fake(runners, protocol, *, reference=None, seed=0):
        ref = next(calls)
        return {key: Measurement.from_times([ref] * 3, 1) if key == reference else
                Measurement(2 * ref, 0.0, 3, 1, [2 * ref] * 3, reference_ms=ref) for key in runners}

    monkeypatch.setattr(build, "interleaved_measure", fake)


def modules():
    block = torch.nn.Conv2d(3, 3, 1)
    return {"block": (block, torch.randn(1, 3, 4, 4)), "ref": (block, torch.randn(1, 3, 4, 4))}


@pytest.mark.parametrize("times, kept, steady", [
    ([1.0], 1.0, 1.0),              # steady: measured once
    ([1.08], 1.08, 1.0),            # within the 10 % tolerance: kept
    ([1.8, 1.0], 1.0, 1.0),         # a burst: timed again, the calm attempt kept
    ([1.8, 1.9, 1.7], 1.7, 1.0),    # bursts throughout: the fastest of 1 + remeasure attempts kept
    ([1.8], 1.8, None),             # no steady level known: nothing retried
])
def test_a_batch_slowed_by_a_burst_is_timed_again(monkeypatch, times, kept, steady):
    scripted(monkeypatch, times + [99.0])  # 99: a further attempt that must not happen
    protocol = Protocol(remeasure=2)
    result = build.measure_modules(modules(), get_device("cpu"), protocol, reference="ref", steady_ms=steady)
    assert result["ref"].min_ms == kept and result["block"].min_ms == 2 * kept


class ScriptedRunner(Runner):
    """A reference runner whose blocks take the given milliseconds per call, in turn."""

    def __init__(self, ms: list[float]):
        self.ms, self.numbers = iter(ms), []

    def time_block(self, number: int) -> float:
        self.numbers.append(number)
        return next(self.ms) / 1e3

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("ms, calm, pauses", [
    ([5.0, 1.0], True, 0),                   # the first (warm-up) block is never judged
    ([5.0, 1.8, 1.9, 1.05], True, 2),        # a burst: waits until the reference is within 10 % again
    ([5.0] + [1.8] * 20, False, 4),          # a burst longer than the deadline: gives up
])
def test_waiting_for_a_burst_to_pass(ms, calm, pauses):
    runner, clock = ScriptedRunner(ms), FakeClock()
    protocol = Protocol(min_block_s=0.02)
    deadline = 4 * build.CALM_PAUSE_S
    assert build.wait_for_calm(runner, 1.0, protocol, deadline, sleep=clock.sleep, clock=lambda: clock.now) is calm
    assert len(clock.sleeps) == pauses
    assert set(runner.numbers) == {20}  # blocks of min_block_s at the steady latency


def record(key_block, ref):
    return Record(key_block, 2 * ref, 0.0, 3, 1, 0, 0, {"raw_ms": 2 * ref, "median_ms": 2 * ref, "attempts": 1,
                                                         "reference_ms": ref})


def test_entries_measured_in_a_burst_are_measured_again(monkeypatch, tmp_path):
    space = get_space("spos", "cifar10", width=0.25)
    blocks = space.all_blocks()[:4]
    refs = {blocks[0].key: 1.0, blocks[1].key: 1.05, blocks[2].key: 1.6, blocks[3].key: 1.7}
    again = {blocks[2].key: 1.02, blocks[3].key: 1.9}  # calm the second time / a burst again
    table = LookupTable({"space": {}}, [record(b, refs[b.key]) for b in blocks], tmp_path / "t.jsonl")
    asked = []

    def fake_measure_blocks(batch, device, protocol, seed=0, steady_ms=None):
        asked.append(([b.key for b in batch], steady_ms))
        return {b.key: Measurement(2 * again[b.key], 0.0, 3, 1, [2 * again[b.key]] * 3, reference_ms=again[b.key])
                for b in batch}

    monkeypatch.setattr(build, "measure_blocks", fake_measure_blocks)
    monkeypatch.setattr(LookupTable, "save", lambda self, path=None: self.path)
    result = build.remeasure_bursts(table, get_device("cpu"), Protocol())
    assert asked == [([blocks[2].key, blocks[3].key], 1.0)]  # only those > 10 % above the fastest reference
    got = {key: r.extra["reference_ms"] for key, r in result.records.items()}
    assert got == {**refs, blocks[2].key: 1.02}  # the calmer attempt replaces; the slower one does not
