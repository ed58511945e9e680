"""Conformance suite of measuring sessions: the `hwnas.profiler.session.Session` contract that table builds and
validations rely on, whatever the session measures on (this host, a board over ssh, a phone over adb).

`check_session(session, blocks)` checks, on an open session and a few small blocks of one dtype:

- ``device_header()`` names the session's device, has ``comparable`` and ``info`` dicts, survives JSON and is
  the same on every call (a table's header is compared with it on resume);
- ``measure_blocks`` answers one `Measurement` per block plus the reference block under ``REFERENCE_KEY``, each
  of ``protocol.rounds`` positive finite blocks (more when re-measured), the blocks' with the reference's level;
  it appends the batch's reference level to ``references`` and, with drift correction, ``steady_ms()`` is the
  fastest of them (None without);
- ``measure`` with ``reference=None`` times modules under the caller's own (hashable, not only string) keys and
  leaves ``references`` alone;
- ``temperature_c()`` is None or a number;
- the session leaves the caller's blocks' specs and the reference module's example shape as they were.

Closing is the caller's business (`hwnas.profiler.remote.open_session` closes what it opens); call the suite
inside it. A new session kind: make it a `Session`, open one on a small space and run `check_session`.
"""

from __future__ import annotations

import json
import math

import torch

from hwnas.profiler.session import REFERENCE_KEY, Session
from hwnas.space import BlockSpec
from hwnas.timing.protocol import Measurement


def check_session(session: Session, blocks: list[BlockSpec]) -> None:
    """Every check of this module on ``session`` (open) with ``blocks`` (two or more, of one dtype)."""
    assert isinstance(session, Session), f"{type(session).__name__} must be a hwnas.profiler.session.Session"
    assert len(blocks) >= 2 and len({b.dtype for b in blocks}) == 1, "the suite needs two blocks or more of one dtype"
    check_header(session)
    check_measure_blocks(session, blocks)
    check_measure_without_reference(session, blocks[0])
    temperature = session.temperature_c()
    assert temperature is None or (isinstance(temperature, (int, float)) and math.isfinite(temperature)), \
        f"{type(session).__name__}.temperature_c() must be None or a number, but returned {temperature!r}"


def check_header(session: Session) -> None:
    header = session.device_header()
    assert header.get("name") == session.device.name, \
        f"device_header() must name the device {session.device.name!r}, but has {header.get('name')!r}"
    assert isinstance(header.get("comparable"), dict) and isinstance(header.get("info"), dict), \
        f"device_header() must hold 'comparable' and 'info' dicts, but has {sorted(header)}"
    assert json.loads(json.dumps(header)) == header, "device_header() must survive JSON (it goes in a table header)"
    assert session.device_header() == header, "device_header() must not change between calls"


def _check_measurement(what: str, m: Measurement, rounds: int) -> None:
    assert isinstance(m, Measurement), f"{what} must be a Measurement, but is {type(m).__name__}"
    assert m.rounds >= rounds and len(m.times_ms) == m.rounds, \
        f"{what} must hold at least the protocol's {rounds} rounds, but has {m.rounds} ({len(m.times_ms)} times)"
    assert all(math.isfinite(t) and t > 0 for t in m.times_ms) and m.median_ms > 0, \
        f"{what} must be positive finite milliseconds, but got {m.times_ms}"


def check_measure_blocks(session: Session, blocks: list[BlockSpec]) -> None:
    before = list(session.references)
    keys = [b.key for b in blocks]
    result = session.measure_blocks(blocks, seed=3)
    assert set(result) == {*keys, REFERENCE_KEY}, \
        f"measure_blocks must answer each block and the reference, but answered {sorted(map(str, result))}"
    for key, m in result.items():
        _check_measurement(f"the measurement of {key}", m, session.protocol.rounds)
        if key != REFERENCE_KEY:
            assert m.reference_ms is not None and m.reference_ms > 0, \
                f"the measurement of {key} must carry the reference's level of its rounds, but has {m.reference_ms}"
    assert session.references[:len(before)] == before and len(session.references) == len(before) + 1, \
        f"measure_blocks must append one reference level, but references went from {before} to {session.references}"
    steady = session.steady_ms()
    if session.protocol.drift_correction:
        assert steady == min(session.references), \
            f"steady_ms() must be the fastest reference level {min(session.references)}, but is {steady}"
    else:
        assert steady is None, f"without drift correction steady_ms() must be None, but is {steady}"
    assert [b.key for b in blocks] == keys, "measure_blocks must leave the caller's blocks alone"


def check_measure_without_reference(session: Session, block: BlockSpec) -> None:
    before = list(session.references)
    module, example = session.reference_module(block.dtype)
    shape = tuple(example.shape)
    keys = [("mine", 1), ("mine", 2)]
    modules = {keys[0]: (module, example), keys[1]: (block.build().eval(), torch.randn(block.input_shape))}
    result = session.measure(modules, reference=None, seed=1)
    assert set(result) == set(keys), f"measure must answer under the caller's keys {keys}, but answered {list(result)}"
    for key, m in result.items():
        _check_measurement(f"the measurement of {key}", m, session.protocol.rounds)
    assert session.references == before, "measure(reference=None) must not add a reference level"
    assert tuple(example.shape) == shape, "measure must leave the caller's example alone"
