"""Batches caught by a burst of other work are timed again (`measure_modules` with ``steady_ms``)."""

import pytest
import torch

from hwnas.devices import Measurement, Protocol, get_device
from hwnas.profiler import build


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
