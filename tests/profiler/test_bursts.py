"""Bursts of other work (`hwnas.timing.protocol.CalmWatch` and `measure_batch`) on scripted runners and a
scripted clock: batches wait for bursts to pass within a per-batch limit and a per-run budget, are timed
again when caught by one, and keep the attempt beside the fastest reference."""

import pytest

from hwnas.timing import protocol as protocol_module
from hwnas.timing.protocol import CalmWatch, Measurement, Protocol, Runner, measure_batch
from hwnas.testing import SequenceRunner


class FakeClock:
    """A clock that only sleeping moves."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- waiting for calm ---------------------------------------------------------------------------


@pytest.mark.parametrize("ms, calm, pauses", [
    ([5.0, 1.0], True, 0),                   # the first (warm-up) block is never judged
    ([5.0, 1.25], True, 0),                  # exactly at the tolerance counts as calm
    ([5.0, 1.8, 1.9, 1.05], True, 2),        # a burst: waits until the reference is within tolerance again
    ([5.0] + [1.8] * 20, False, 4),          # a burst longer than the deadline: gives up
])
def test_waiting_for_a_burst_to_pass(ms, calm, pauses):
    runner, clock = SequenceRunner(ms), FakeClock()
    protocol = Protocol(min_block_s=0.02, steady_tolerance=0.25, calm_pause_s=0.5)
    watch = CalmWatch(protocol, clock=clock.clock, sleep=clock.sleep)
    assert watch.wait(runner, 1.0, deadline=2.0) is calm
    assert clock.sleeps == [0.5] * pauses
    assert watch.waited_s == 0.5 * pauses
    assert set(runner.numbers) == {20}  # blocks of min_block_s at the steady latency
    assert len(runner.numbers) == 2 + pauses  # a warm-up block, then one look per pause and one more


def test_a_batch_waits_at_most_calm_wait_s():
    clock = FakeClock()
    clock.now = 100.0
    watch = CalmWatch(Protocol(calm_wait_s=2.0, calm_pause_s=0.5, calm_budget_s=300), clock=clock.clock,
                      sleep=clock.sleep)
    assert watch.deadline() == 102.0
    assert watch.wait(SequenceRunner([5.0] + [1.8] * 20), 1.0, watch.deadline()) is False
    assert clock.now == 102.0 and watch.waited_s == 2.0


def test_the_run_budget_caps_waiting_across_batches():
    """Once ``calm_budget_s`` is spent, later batches look once and are timed at once; ``waited_s`` adds up."""
    clock = FakeClock()
    watch = CalmWatch(Protocol(calm_wait_s=2.0, calm_pause_s=0.5, calm_budget_s=3.0), clock=clock.clock,
                      sleep=clock.sleep)
    pauses, waited = [], []
    for _ in range(3):
        before = len(clock.sleeps)
        assert watch.wait(SequenceRunner([5.0] + [1.8] * 20), 1.0, watch.deadline()) is False
        pauses.append(len(clock.sleeps) - before)
        waited.append(watch.waited_s)
    assert pauses == [4, 2, 0]  # 2 s (the batch's limit), 1 s (the budget left), nothing
    assert waited == [2.0, 3.0, 3.0]


def test_waiting_never_passes_the_deadline_between_two_looks():
    clock = FakeClock()
    watch = CalmWatch(Protocol(calm_wait_s=10.0, calm_pause_s=0.5, calm_budget_s=1.2), clock=clock.clock,
                      sleep=clock.sleep)
    assert watch.wait(SequenceRunner([5.0] + [1.8] * 20), 1.0, watch.deadline()) is False
    assert watch.waited_s == pytest.approx(1.2)  # the last pause is cut short, not 1.5 s
    assert clock.sleeps[:2] == [0.5, 0.5] and clock.sleeps[2] == pytest.approx(0.2)


# --- one batch: waiting, timing again, keeping the calmest attempt -------------------------------


def scripted_attempts(monkeypatch, reference_ms: list[float]) -> list[int]:
    """Make each interleaved measurement return the next reference time (and the block at twice it); returns
    the seeds the attempts were made with."""
    calls, seeds = iter(reference_ms), []

    def fake(runners, protocol, *, reference=None, seed=0):
        seeds.append(seed)
        ref = next(calls)
        return {key: Measurement.from_times([ref] * 3, 1) if key == reference else
                Measurement(2 * ref, 0.0, 3, 1, [2 * ref] * 3, reference_ms=ref) for key in runners}

    monkeypatch.setattr(protocol_module, "interleaved_measure", fake)
    return seeds


def calm_runners() -> dict[str, Runner]:
    return {"block": SequenceRunner([2.0] * 100), "ref": SequenceRunner([1.0] * 100)}


@pytest.mark.parametrize("times, kept, steady", [
    ([1.0], 1.0, 1.0),              # steady: measured once
    ([1.08], 1.08, 1.0),            # within the 10 % tolerance: kept
    ([1.8, 1.0], 1.0, 1.0),         # a burst: timed again, the calm attempt kept
    ([1.8, 1.9, 1.7], 1.7, 1.0),    # bursts throughout: the fastest of 1 + remeasure attempts kept
    ([1.5, 1.9, 1.6], 1.5, 1.0),    # ... even when that is the first
    ([1.8], 1.8, None),             # no steady level known: nothing retried
])
def test_a_batch_slowed_by_a_burst_is_timed_again(monkeypatch, times, kept, steady):
    seeds = scripted_attempts(monkeypatch, times + [99.0])  # 99: a further attempt that must not happen
    protocol = Protocol(remeasure=2, calm_wait_s=0)
    runners, clock = calm_runners(), FakeClock()
    watch = CalmWatch(protocol, clock=clock.clock, sleep=clock.sleep)
    result = measure_batch(runners, protocol, reference="ref", seed=10, steady_ms=steady, watch=watch)
    assert result["ref"].min_ms == kept and result["block"].min_ms == 2 * kept
    assert seeds == [10 + i for i in range(len(times))]  # each attempt shuffles its rounds anew
    # the machine is looked at (a warm-up block and a look) before every attempt, when a level is known
    assert len(runners["ref"].numbers) == (2 * len(times) if steady else 0)


@pytest.mark.parametrize("protocol, reference, watched", [
    (Protocol(remeasure=0, calm_wait_s=0), "ref", True),  # no further attempts allowed
    (Protocol(remeasure=2, calm_wait_s=0), "ref", False),  # no watch (drift correction off)
    (Protocol(remeasure=2, calm_wait_s=0), None, True),  # no reference
])
def test_a_batch_is_timed_once_without_remeasure_watch_or_reference(monkeypatch, protocol, reference, watched):
    seeds = scripted_attempts(monkeypatch, [1.8, 99.0])
    runners, clock = calm_runners(), FakeClock()
    watch = CalmWatch(protocol, clock=clock.clock, sleep=clock.sleep) if watched else None
    result = measure_batch(runners, protocol, reference=reference, steady_ms=1.0, watch=watch)
    assert seeds == [0] and result["block"].min_ms == 3.6


class Machine:
    """A simulated machine: its clock moves as runners time blocks and as the watch sleeps, and during
    ``bursts`` (clock intervals) of other work every call takes ``factor`` times longer."""

    def __init__(self, bursts: list[tuple[float, float]], factor: float = 1.8):
        self.now, self.bursts, self.factor, self.sleeps = 0.0, bursts, factor, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def runner(self, ms: float) -> Runner:
        machine = self

        class Simulated(Runner):
            def time_block(self, number: int) -> float:
                slow = any(start <= machine.now < end for start, end in machine.bursts)
                per_call = ms / 1e3 * (machine.factor if slow else 1.0)
                machine.now += per_call * number
                return per_call

            def close(self) -> None:
                pass

        return Simulated()


SIMULATED = Protocol(warmup_s=0, min_block_s=0.01, rounds=3, rotate=1, remeasure=2, calm_pause_s=0.5)


def measure_on(machine: Machine, protocol: Protocol, watch: CalmWatch, monkeypatch) -> tuple[dict, int]:
    """One batch (a 2 ms block beside a 1 ms reference, steady at 1 ms) and how many attempts it took."""
    attempts = []
    real = protocol_module.interleaved_measure
    monkeypatch.setattr(protocol_module, "interleaved_measure", lambda *a, **k: attempts.append(1) or real(*a, **k))
    runners = {"block": machine.runner(2.0), "ref": machine.runner(1.0)}
    result = measure_batch(runners, protocol, reference="ref", steady_ms=1.0, watch=watch)
    return result, len(attempts)


def test_a_batch_waits_out_a_burst_and_is_timed_once_in_calm(monkeypatch):
    machine = Machine(bursts=[(0.0, 3.0)])
    protocol = Protocol(**{**SIMULATED.to_dict(), "calm_wait_s": 30.0})
    watch = CalmWatch(protocol, clock=machine.clock, sleep=machine.sleep)
    result, attempts = measure_on(machine, protocol, watch, monkeypatch)
    assert attempts == 1
    assert result["ref"].min_ms == pytest.approx(1.0) and result["block"].min_ms == pytest.approx(2.0)
    assert result["block"].reference_ms == pytest.approx(1.0)
    assert 3.0 <= watch.waited_s <= 3.0 + protocol.calm_pause_s + 0.1


def test_a_burst_longer_than_the_wait_is_timed_again_and_the_fastest_kept(monkeypatch):
    machine = Machine(bursts=[(0.0, 1000.0)])
    protocol = Protocol(**{**SIMULATED.to_dict(), "calm_wait_s": 1.0})
    watch = CalmWatch(protocol, clock=machine.clock, sleep=machine.sleep)
    result, attempts = measure_on(machine, protocol, watch, monkeypatch)
    assert attempts == 1 + protocol.remeasure
    assert result["block"].reference_ms == pytest.approx(1.8) and result["block"].min_ms == pytest.approx(3.6)
    assert sum(machine.sleeps) <= 1.0  # later attempts of the batch look once and do not wait again


def test_a_burst_ending_between_attempts_keeps_the_calm_attempt(monkeypatch):
    machine = Machine(bursts=[(0.0, 1e9)])
    protocol = Protocol(**{**SIMULATED.to_dict(), "calm_wait_s": 0.0})  # timed at once, in the burst
    watch = CalmWatch(protocol, clock=machine.clock, sleep=machine.sleep)
    attempts = []
    real = protocol_module.interleaved_measure

    def attempt_then_calm(*args, **kwargs):
        attempts.append(real(*args, **kwargs))
        machine.bursts = []  # the burst ends right after the first attempt
        return attempts[-1]

    monkeypatch.setattr(protocol_module, "interleaved_measure", attempt_then_calm)
    result = measure_batch({"block": machine.runner(2.0), "ref": machine.runner(1.0)}, protocol, reference="ref",
                           steady_ms=1.0, watch=watch)
    assert len(attempts) == 2 and machine.sleeps == []
    assert attempts[0]["block"].reference_ms == pytest.approx(1.8)
    assert result["block"].reference_ms == pytest.approx(1.0) and result["block"].min_ms == pytest.approx(2.0)


def test_the_budget_is_shared_by_the_batches_of_a_run(monkeypatch):
    machine = Machine(bursts=[(0.0, 1e9)])  # never calm
    protocol = Protocol(**{**SIMULATED.to_dict(), "calm_wait_s": 1.0, "calm_budget_s": 1.5})
    watch = CalmWatch(protocol, clock=machine.clock, sleep=machine.sleep)
    slept = []
    for _ in range(3):
        before = sum(machine.sleeps)
        result, attempts = measure_on(machine, protocol, watch, monkeypatch)
        slept.append(sum(machine.sleeps) - before)
        assert attempts == 1 + protocol.remeasure and result["ref"].min_ms == pytest.approx(1.8)
    # the first batch waits its own limit, the second what is left of the run's budget, the third not at all
    assert 0.9 <= slept[0] <= 1.0 and 0.3 <= slept[1] <= 0.5 and slept[2] == 0
    assert protocol.calm_budget_s <= watch.waited_s <= protocol.calm_budget_s + 0.1  # looks take a little time
