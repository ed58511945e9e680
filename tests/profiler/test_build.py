"""Building a table (`hwnas.profiler.build`) on the scripted device (tests/profiler/conftest.py): batches
written as they finish, a build stopped between batches and resumed, bursts of other work timed again and
corrected for, and the records and header that come out. Every figure is known, so every figure is checked."""

import json
import warnings

import pytest

from hwnas.errors import TableError
from hwnas.profiler.build import correct_drift, make_record, profile_space, remeasure_bursts, table_header
from hwnas.timing.protocol import Measurement, Protocol
from hwnas.profiler.session import reference_block
from hwnas.progress import Progress
from hwnas.space import block_cost, get_space
from hwnas.tables import LookupTable, Record

QUICK = Protocol(warmup_s=0, min_block_s=0.001, rounds=3, rotate=1, calm_wait_s=0)


@pytest.fixture
def space():
    return get_space("spos", "cifar10", width=0.25)  # 34 blocks: batches of 12, 12 and 10


class Stop(Exception):
    pass


def test_a_build_writes_every_block_once_and_reports_each_batch(space, device, block_ms, tmp_path):
    progress, written = [], []
    table = profile_space(space, device, tmp_path / "t.jsonl", protocol=QUICK, on_progress=progress.append,
                          on_batch=written.append)
    task = "profiling spos on scripted"
    assert progress == [Progress(task, done, 34) for done in (0, 12, 24, 34)]
    assert written == [12, 24, 34]
    blocks = space.all_blocks()
    assert list(table.records) == [b.key for b in blocks]  # in the space's order
    level = block_ms(reference_block(1, "float32"))
    assert table.header["reference_level_ms"] == pytest.approx(level, abs=1e-6)
    assert table.header["protocol"] == QUICK.to_dict() and table.header["device"]["name"] == "scripted"
    for block in blocks:
        record = table.records[block.key]
        assert record.extra["raw_ms"] == pytest.approx(block_ms(block)) and record.extra["attempts"] == 1
        assert record.latency_ms == pytest.approx(block_ms(block))  # a calm machine: nothing to correct
    assert LookupTable.load(tmp_path / "t.jsonl").records == table.records


@pytest.mark.parametrize("remeasure", [2, 0])
def test_a_burst_during_a_batch_is_measured_again_or_corrected(space, device, block_ms, tmp_path, remeasure):
    """The second batch runs 1.5x slower throughout (a burst outlasting all its attempts). With ``remeasure``
    its blocks are measured again once the table is complete, in calm; without, drift correction scales them
    by the reference beside them. Either way every latency comes out as on a calm machine."""
    factors = {12: 1.5, 24: 1.0}

    def burst(written):
        device.factor = factors.get(written, device.factor)

    protocol = Protocol(**{**QUICK.to_dict(), "remeasure": remeasure})
    table = profile_space(space, device, tmp_path / "t.jsonl", protocol=protocol, on_batch=burst)
    level = block_ms(reference_block(1, "float32"))
    assert table.header["reference_level_ms"] == pytest.approx(level, abs=1e-6)
    in_burst = {b.key for b in space.all_blocks()[12:24]}
    for block in space.all_blocks():
        record, slow = table.records[block.key], block.key in in_burst and not remeasure
        assert record.extra["raw_ms"] == pytest.approx(block_ms(block) * (1.5 if slow else 1.0))
        assert record.extra["reference_ms"] == pytest.approx(level * (1.5 if slow else 1.0), abs=1e-6)
        assert record.latency_ms == pytest.approx(block_ms(block), rel=1e-5)
    assert LookupTable.load(tmp_path / "t.jsonl").records == table.records  # the file was rewritten


def test_a_stopped_build_resumes_where_it_stopped(space, device, tmp_path):
    path = tmp_path / "t.jsonl"

    def stop(written):
        raise Stop(written)

    with pytest.raises(Stop):
        profile_space(space, device, path, protocol=QUICK, on_batch=stop)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header == {**table_header(space, device, QUICK), "reference_level_ms": None}
    assert [json.loads(line)["key"] for line in lines[1:]] == [b.key for b in space.all_blocks()[:12]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn
        stopped = LookupTable.load(path)

    progress = []
    table = profile_space(space, device, path, protocol=QUICK, on_progress=progress.append)
    assert [p.done for p in progress] == [12, 24, 34]
    assert len(table.records) == 34 and len(path.read_text().splitlines()) == 35
    assert {**table.header, "reference_level_ms": None} == header
    for key, record in stopped.records.items():  # what was written before the stop is kept
        assert table.records[key].extra == record.extra


def test_another_protocol_is_refused_unless_forced(space, device, tmp_path):
    path = tmp_path / "t.jsonl"
    profile_space(space, device, path, protocol=QUICK)
    before = path.read_text()
    other = Protocol(**{**QUICK.to_dict(), "rotate": 2})
    with pytest.raises(TableError, match=r"must be resumed with the same device, protocol and space, but protocol"):
        profile_space(space, device, path, protocol=other)
    assert path.read_text() == before
    table = profile_space(space, device, path, protocol=other, force=True)
    assert (tmp_path / "t.jsonl.bak").read_text() == before
    assert table.header["protocol"]["rotate"] == 2 and len(table.records) == 34


# --- after a build: bursts measured again, drift corrected --------------------------------------


def record(block, ref, raw=None):
    raw = 2 * ref if raw is None else raw
    return Record(block, raw, 0.0, 3, 1, 0, 0, {"raw_ms": raw, "median_ms": raw, "attempts": 1, "reference_ms": ref})


class ScriptedSession:
    """Stands in for a `MeasuringSession`: each block measured again gets the scripted reference time."""

    def __init__(self, protocol: Protocol, again: dict[str, float]):
        self.protocol, self.again, self.asked = protocol, again, []

    def measure_blocks(self, blocks, *, seed=0, steady_ms=None):
        self.asked.append(([b.key for b in blocks], seed, steady_ms))
        return {b.key: Measurement(2 * self.again[b.key], 0.0, 3, 1, [2 * self.again[b.key]] * 3,
                                   reference_ms=self.again[b.key]) for b in blocks}


@pytest.fixture
def burst_table(space, device, tmp_path):
    """Four records: two calm (reference 1.0, 1.05), two caught in bursts (1.6, 1.7)."""
    blocks = space.all_blocks()[:4]
    refs = dict(zip([b.key for b in blocks], [1.0, 1.05, 1.6, 1.7]))
    header = table_header(space, device, Protocol())
    return LookupTable(header, [record(b, refs[b.key]) for b in blocks], tmp_path / "t.jsonl"), blocks, refs


def test_entries_measured_in_a_burst_are_measured_again(burst_table):
    table, blocks, refs = burst_table
    session = ScriptedSession(Protocol(), {blocks[2].key: 1.02, blocks[3].key: 1.9})  # calm / a burst again
    result = remeasure_bursts(table, session, seed=5)
    # only those > 10 % above the fastest reference, judged against it, seeded past the table's batches
    assert session.asked == [([blocks[2].key, blocks[3].key], 5 + 4, 1.0)]
    got = {key: r.extra["reference_ms"] for key, r in result.records.items()}
    assert got == {**refs, blocks[2].key: 1.02}  # the calmer attempt replaces; the slower one does not
    assert result.records[blocks[2].key].extra["raw_ms"] == 2.04
    assert LookupTable.load(table.path).records == result.records


def test_entries_are_measured_again_in_batches(burst_table):
    table, blocks, _ = burst_table
    session = ScriptedSession(Protocol(), {blocks[2].key: 1.0, blocks[3].key: 1.0})
    remeasure_bursts(table, session, batch_blocks=1)
    assert session.asked == [([blocks[2].key], 4, 1.0), ([blocks[3].key], 5, 1.0)]


@pytest.mark.parametrize("case", ["remeasure 0", "a record without reference", "none in a burst"])
def test_nothing_is_measured_again(burst_table, case):
    table, blocks, _ = burst_table
    protocol = Protocol(remeasure=0) if case == "remeasure 0" else Protocol()
    if case == "a record without reference":
        table.records[blocks[0].key].extra.pop("reference_ms")
    if case == "none in a burst":
        table = LookupTable(table.header, [record(b, 1.0) for b in blocks], table.path)
    session = ScriptedSession(protocol, {})
    assert remeasure_bursts(table, session) is table
    assert session.asked == [] and not table.path.exists()  # nothing measured, nothing rewritten


@pytest.mark.parametrize("statistic, level, latencies", [("min", 1.0, [2.0, 2.0, 4.0]),
                                                          ("median", 1.5, [3.0, 3.0, 6.0])])
def test_drift_correction_scales_each_record_to_the_reference_level(space, device, tmp_path, statistic, level,
                                                                     latencies):
    blocks = space.all_blocks()[:3]
    header = table_header(space, device, Protocol(statistic=statistic))
    table = LookupTable(header, [record(b, ref, raw) for b, ref, raw in zip(blocks, [1.0, 2.0, 1.5], [2.0, 4.0, 6.0])],
                        tmp_path / "t.jsonl")
    corrected = correct_drift(table, Protocol(statistic=statistic))
    assert corrected.header["reference_level_ms"] == level
    assert [r.latency_ms for r in corrected.records.values()] == pytest.approx(latencies)
    assert [r.extra["raw_ms"] for r in corrected.records.values()] == [2.0, 4.0, 6.0]  # as timed, kept
    loaded = LookupTable.load(tmp_path / "t.jsonl")
    assert loaded.header["reference_level_ms"] == level and loaded.records == corrected.records


def test_drift_correction_needs_every_reference(space, device, tmp_path):
    blocks = space.all_blocks()[:2]
    table = LookupTable(table_header(space, device, Protocol()), [record(blocks[0], 1.0), record(blocks[1], 1.0)],
                        tmp_path / "t.jsonl")
    table.records[blocks[1].key].extra.pop("reference_ms")
    with pytest.raises(TableError, match="needs the reference time of every record, but table .*t.jsonl lacks some"):
        correct_drift(table, Protocol())


@pytest.mark.parametrize("statistic, raw", [("min", 1.0), ("median", 2.0)])
def test_a_record_keeps_what_was_timed(space, statistic, raw):
    block = space.all_blocks()[5]
    m = Measurement.from_times([3.0, 1.0, 2.0], calls_per_block=7, attempts=2, reference_ms=1.23456789)
    r = make_record(block, m, Protocol(statistic=statistic))
    cost = block_cost(block)
    assert (r.block, r.latency_ms, r.iqr_ms, r.rounds, r.calls_per_block) == (block, raw, 1.0, 3, 7)
    assert (r.macs, r.params) == (cost.macs, cost.params)
    assert r.extra == {"raw_ms": raw, "median_ms": 2.0, "attempts": 2, "reference_ms": 1.234568}
