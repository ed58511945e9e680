import dataclasses
import json
import random
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from hwnas.errors import TableError
from hwnas.space import block_cost
from hwnas.space import get_space
from hwnas.tables import Calibration, LookupTable, Record, TableWriter, make_header


def fake_table(space, path=None, drop=()):
    """A table whose latencies are a made-up function of MACs: tests of the table logic need no device."""
    header = make_header(device={"name": "fake", "fingerprint": {"cpu": "test"}}, space=space,
                         protocol={"rounds": 3}, batch=1, dtype="float32")
    records = []
    for i, block in enumerate(space.all_blocks()):
        if block.key in drop:
            continue
        cost = block_cost(block)
        records.append(Record(block, 0.01 + cost.macs * 1e-8 + 0.001 * (i % 5), 0.001, 5, 10, cost.macs, cost.params))
    table = LookupTable(header, records)
    if path is not None:
        with TableWriter(path, header) as writer:
            for r in records:
                writer.append(r)
        table.path = path
    return table


@pytest.fixture
def space():
    return get_space("proxylessnas", "cifar10", width=0.5)


def test_round_trip_and_pandas(tmp_path, space):
    path = tmp_path / "t.jsonl"
    table = fake_table(space, path)
    loaded = LookupTable.load(path)
    assert loaded.records == table.records and loaded.header == table.header
    frame = pd.read_json(path, lines=True)
    assert len(frame) == 1 + len(space.all_blocks())
    assert set(frame["type"]) == {"header", "block"}
    assert (frame.loc[frame["type"] == "block", "latency_ms"] > 0).all()


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path, space):
    path = tmp_path / "t.jsonl"
    fake_table(space, path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # a kill in the middle of writing the last record
    with pytest.warns(UserWarning, match="dropped a truncated last line"):
        table = LookupTable.load(path)
    assert len(table.records) == len(space.all_blocks()) - 1
    # appending after the kill first drops the torn line, so the file stays valid JSON Lines
    with TableWriter(path) as writer:
        writer.append(next(iter(table.records.values())))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LookupTable.load(path)


@pytest.mark.parametrize("content,message", [
    ("", "is empty"),
    ("not json\n", "line 1 is not JSON"),
    ('{"type": "header"}\n', "is not an hwnas lookup table"),
])
def test_corrupt_files(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TableError, match=message):
        LookupTable.load(path)


def test_missing_file_and_schema(tmp_path, space):
    with pytest.raises(TableError, match="must exist, but .*nope.jsonl does not"):
        LookupTable.load(tmp_path / "nope.jsonl")
    path = tmp_path / "t.jsonl"
    fake_table(space, path)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["schema"] = 99
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(TableError, match="schema version must be 2, but .* has schema=99"):
        LookupTable.load(path)


def test_corrupt_middle_line(tmp_path, space):
    path = tmp_path / "t.jsonl"
    fake_table(space, path)
    lines = path.read_text().splitlines()
    lines[3] = lines[3][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match="line 4 is not"):
        LookupTable.load(path)


def test_other_space_or_profile_is_refused(space):
    table = fake_table(space)
    with pytest.raises(TableError, match="built for space 'proxylessnas', but space 'fbnet' was asked for"):
        table.check_space(get_space("fbnet", "cifar10"))
    with pytest.raises(TableError, match="built for input 'cifar10', but input 'cifar100' was asked for"):
        table.check_space(get_space("proxylessnas", "cifar100", width=0.5))


def test_missing_blocks_are_named(space):
    victim = space.layers[2].block("k7_e6")
    table = fake_table(space, drop={victim.key})
    arch = ["k7_e6"] * len(space.layers)
    with pytest.raises(TableError, match=r"lacks 1: mbconv\(e=6,k=7\) 16>16 s1 32x32"):
        table.predict(arch)
    with pytest.raises(TableError, match="lacks 1"):
        table.check_space(space)


def test_predictions_agree(space):
    table = fake_table(space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(20)]
    for arch in archs:
        p = table.predict(arch)
        blocks = [b for _, b in space.blocks(arch)]
        assert p.latency_ms == pytest.approx(sum(table.records[b.key].latency_ms for b in blocks))
        assert p.macs == sum(block_cost(b).macs for b in blocks)
        # differentiable expectation equals the discrete sum for one-hot probabilities
        one_hot = [torch.nn.functional.one_hot(torch.tensor(i), n).double()
                   for i, n in zip(space.indices(arch), space.num_ops)]
        assert table.expected(one_hot).item() == pytest.approx(p.latency_ms)
    vectorised = table.predict_indices(np.array([space.indices(a) for a in archs]))
    np.testing.assert_allclose(vectorised, [table.predict(a).latency_ms for a in archs])


def test_expected_latency_has_gradients(space):
    table = fake_table(space)
    alphas = [torch.zeros(n, requires_grad=True) for n in space.num_ops]
    expected = table.expected([a.softmax(0) for a in alphas])
    expected.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    # uniform probabilities give the mean op latency per layer
    fixed, per_layer = table.latency_matrix()
    assert expected.item() == pytest.approx(fixed + sum(lat.mean() for lat in per_layer))


def test_calibration_is_applied_and_saved(tmp_path, space):
    path = tmp_path / "t.jsonl"
    table = fake_table(space, path)
    arch = space.sample(random.Random(1))
    raw = table.predict(arch).latency_ms
    table.set_calibration(Calibration(0.5, 0.25, fitted_on=10))
    table.save()
    loaded = LookupTable.load(path)
    p = loaded.predict(arch)
    assert p.raw_latency_ms == pytest.approx(raw) and p.latency_ms == pytest.approx(0.5 * raw + 0.25)
    assert loaded.minimum_latency() <= p.latency_ms
    one_hot = [torch.nn.functional.one_hot(torch.tensor(i), n).double()
               for i, n in zip(space.indices(arch), space.num_ops)]
    assert loaded.expected(one_hot).item() == pytest.approx(p.latency_ms)


def test_minimum_latency_is_the_fastest_architecture(space):
    table = fake_table(space)
    fixed, per_layer = table.latency_matrix()
    fastest = space.from_indices(int(lat.argmin()) for lat in per_layer)
    assert table.minimum_latency() == pytest.approx(table.predict(fastest).latency_ms)


def test_a_table_is_checked_against_the_space_a_search_uses(space):
    table = fake_table(space)
    table.check_built_for(get_space("proxylessnas", "cifar10", width=0.5))  # the space it was built for
    with pytest.raises(TableError, match=r"must be built for the search space, but its proxylessnas space differs: "
                                         r"width 0\.5 != 1\.0 \(table != search\)"):
        table.check_built_for(get_space("proxylessnas", "cifar10"))
    with pytest.raises(TableError, match="built for space 'proxylessnas', but space 'fbnet' was asked for"):
        table.check_built_for(get_space("fbnet", "cifar10"))
    with pytest.raises(TableError, match="built for input 'cifar10', but input 'cifar100' was asked for"):
        table.check_built_for(get_space("proxylessnas", "cifar100", width=0.5))
    victim = space.layers[2].block("k7_e6")
    with pytest.raises(TableError, match=r"lacks 1: mbconv\(e=6,k=7\) 16>16 s1 32x32"):
        fake_table(space, drop={victim.key}).check_built_for(space)


def test_the_digest_covers_what_a_table_predicts_from_and_not_where_it_lies(tmp_path, space):
    table = fake_table(space, tmp_path / "a.jsonl")
    digest = table.digest()
    assert len(digest) == 16 and int(digest, 16) >= 0
    table.save(tmp_path / "b.jsonl")
    assert LookupTable.load(tmp_path / "a.jsonl").digest() == LookupTable.load(tmp_path / "b.jsonl").digest() == digest
    table.set_calibration(Calibration(1.1, 0.0))
    assert table.digest() != digest
    table.set_calibration(None)
    assert table.digest() == digest
    first = next(iter(table.records.values()))
    slower = LookupTable(table.header, [dataclasses.replace(first, latency_ms=first.latency_ms + 1e-6),
                                        *list(table.records.values())[1:]])
    assert slower.digest() != digest
    assert LookupTable({**table.header, "batch": 2}, table.records.values()).digest() != digest


def test_a_table_is_one_pandas_line_away(tmp_path):
    """`to_pandas` and the README's pandas-only line give the same frame (columns, order, dtypes)."""
    import re
    from pathlib import Path

    from test_readme import README

    from hwnas.space import get_space
    from hwnas.testing import synthetic_table

    table = synthetic_table(get_space("fbnet", "cifar10", width=0.25), path=tmp_path / "t.jsonl")
    mine = table.to_pandas()
    line = re.search(r"and so do pandas and the standard library alone: `(pd\.DataFrame\(.*?\))`",
                     " ".join(README.read_text().split())).group(1)
    alone = eval(line, {"pd": pd, "json": json, "Path": Path, "path": tmp_path / "t.jsonl"})
    assert len(mine) == len(table.records) and list(mine["key"]) == list(table.records)
    pd.testing.assert_frame_equal(mine, alone)
    assert mine["macs"].dtype == "int64"


@pytest.mark.parametrize("field", ["latency_ms", "iqr_ms", "median_ms", "energy_mj"])
@pytest.mark.parametrize("value", [1e308, 1.5e7])
def test_a_block_figure_above_the_bound_is_refused_naming_it_and_the_line(tmp_path, space, field, value):
    from hwnas.tables.table import MAX_BLOCK

    path = tmp_path / "t.jsonl"
    fake_table(space, path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[4])
    record[field] = value
    lines[4] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TableError, match=rf"line 5 is not a valid block record \({field} must be at most 1e\+07 "
                                         rf"for one block .*but got {re.escape(json.dumps(value))}\)"):
        LookupTable.load(path)
    record[field] = MAX_BLOCK  # the bound itself loads
    lines[4] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    assert LookupTable.load(path).records[record["key"]].to_json()[field] == MAX_BLOCK


def test_tables_with_a_huge_block_are_one_line_errors_on_the_command_line(tmp_path, space):
    from cli_helpers import one_line_error, run

    path, huge = tmp_path / "t.jsonl", tmp_path / "huge.jsonl"
    fake_table(space, path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["latency_ms"] = 1e308
    lines[2] = json.dumps(record)
    huge.write_text("\n".join(lines) + "\n")
    message = f"{huge} line 3 is not a valid block record (latency_ms must be at most 1e+07 for one block"
    one_line_error(run("table", "compare", path, huge), message)
    one_line_error(run("table", "show", huge), message)


def test_a_table_load_would_refuse_is_not_written(tmp_path, space):
    table = fake_table(space)
    key = next(iter(table.records))
    table.records[key] = dataclasses.replace(table.records[key], latency_ms=2e7)
    with pytest.raises(TableError, match=rf"is not written: its block .*\(latency_ms must be at most 1e\+07"):
        table.save(tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()
